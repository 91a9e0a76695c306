import { inspect } from 'node:util'
import type { Test } from 'tap'
import { existingCluster, parseStoreList } from '../../lib/local-cluster/existing-cluster.js'
import {
  startLocalCluster,
  type LocalCluster,
  type LocalStoreConfig,
} from '../../lib/local-cluster/index.js'

const STORES_VARIABLE = 'SESSION_SHARDS_TEST_STORES'

/** The stores a test runs against; `canCrash` is false when they are servers the test did not start. */
export interface TestCluster extends LocalCluster {
  readonly canCrash: boolean
}

/**
 * Starts local stores for this test and stops them at its teardown. With
 * `SESSION_SHARDS_TEST_STORES=id=mysql://user:pass@host:port/db,...` it uses those running
 * servers instead (the first `stores`/`storeIds.length` of them, renamed to `storeIds`), which
 * cannot be crashed.
 */
export async function startTestCluster(
  t: Test,
  options: { stores?: number; storeIds?: string[] } = {},
): Promise<TestCluster> {
  const existing = process.env[STORES_VARIABLE]
  if (existing !== undefined && existing !== '') {
    const configs = parseStoreList(existing, STORES_VARIABLE)
    const wanted = options.storeIds?.length ?? options.stores ?? configs.length
    if (configs.length < wanted) {
      throw new Error(
        `${STORES_VARIABLE} lists ${configs.length} stores; this test needs ${wanted}.`,
      )
    }
    const chosen = configs
      .slice(0, wanted)
      .map((config, index) => ({ ...config, id: options.storeIds?.[index] ?? config.id }))
    return { ...existingCluster(chosen), canCrash: false }
  }
  const cluster = await startLocalCluster(options)
  t.teardown(async () => {
    const stopping = { done: false }
    reportIfStillRunning(cluster, stopping)
    await cluster.stop()
    stopping.done = true
  })
  return Object.assign(cluster, { canCrash: true })
}

const LINGER_MILLIS = 30_000

/**
 * The stores stop within seconds, and then a test file's process has nothing left to wait
 * for. If it still runs, say what holds it (instead of a bare timeout long after every test
 * passed), and fail the file.
 */
function reportIfStillRunning(cluster: LocalCluster, stopping: { done: boolean }): void {
  setTimeout(() => {
    const open = process.getActiveResourcesInfo().filter((kind) => kind !== 'TTYWrap')
    const stores = cluster.stores.map((store) => inspect(store)).join(', ')
    process.stderr.write(
      `Still running ${LINGER_MILLIS / 1000} s after the last teardown began; the stores ` +
        `${stopping.done ? 'stopped' : `did not stop (${stores})`}; open: ${open.join(', ')}\n`,
    )
    process.exit(1)
  }, LINGER_MILLIS).unref()
}

/**
 * A store's connection settings for mysql2 itself: its config without the store id, which
 * mysql2 warns about as an unknown option.
 */
export function driverOptions(config: LocalStoreConfig): Omit<LocalStoreConfig, 'id'> {
  const { host, port, user, password, database } = config
  return { host, port, user, password, database }
}
