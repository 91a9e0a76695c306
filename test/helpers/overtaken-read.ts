import type { Test } from 'tap'
import type { RepairResult, SessionManager, SessionManagerOptions } from '../../lib/index.js'
import type { TestCluster } from './cluster.js'
import { proxiesFor } from './gray.js'
import { sleep } from './wait.js'

/** What {@link readOvertakenByMove} saw: the read's answer and what the rebalance moved. */
export interface OvertakenRead {
  read: unknown
  moved: RepairResult
}

/**
 * Reads session `id` during a change of the store list from `before` to `after` through an app
 * server whose statements to the session's old stores (`oldPair`) are held back 1.5 s, while
 * another app server's rebalance moves the session: the move overtakes the read between its
 * look at the new placement (at once) and its look at the old one (after the move).
 */
export async function readOvertakenByMove(
  t: Test,
  cluster: TestCluster,
  open: (t: Test, options: Partial<SessionManagerOptions>) => SessionManager,
  session: { id: string; oldPair: readonly string[]; before: string[]; after: string[] },
): Promise<OvertakenRead> {
  const { id, oldPair, before, after } = session
  const configs = (ids: string[]) =>
    cluster.storeConfigs().filter((store) => ids.includes(store.id))
  const proxies = await proxiesFor(t, cluster, oldPair)
  const proxied = (ids: string[]) =>
    configs(ids).map((c) => (proxies.has(c.id) ? { ...c, port: proxies.get(c.id)!.port } : c))
  const reader = open(t, {
    queryTimeoutMillis: 5000,
    healthCheckIntervalMillis: 60_000,
    stores: proxied(after),
    previousStores: proxied(before),
  })
  await reader.ready()
  const operator = open(t, { stores: configs(after), previousStores: configs(before) })
  await operator.applySchema()
  for (const proxy of proxies.values()) {
    proxy.setFault({ kind: 'latency', toStoreMillis: 1500, toClientMillis: 0 })
  }
  const reading = reader.readSession(id)
  await sleep(200)
  const moved = await operator.repair()
  const read = await reading
  for (const proxy of proxies.values()) proxy.heal()
  return { read, moved }
}
