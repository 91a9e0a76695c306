import type { LocalCluster, LocalClusterOptions } from '../../lib/local-cluster/index.js'
import { startLocalCluster } from '../../lib/local-cluster/index.js'

const SIGNALS = ['SIGINT', 'SIGTERM'] as const
const EXIT_CODES: Record<(typeof SIGNALS)[number], number> = { SIGINT: 130, SIGTERM: 143 }

/**
 * Starts a local cluster, runs `body` with it and stops it afterwards: when `body` settles,
 * when it throws, and on SIGINT or SIGTERM (the process then exits with 130 or 143 once the
 * servers are gone; a second signal exits at once). `body` closes its own connections.
 *
 * @example
 * await withLocalCluster({ stores: 3 }, async (cluster) => { ... })
 */
export async function withLocalCluster<T>(
  options: LocalClusterOptions,
  body: (cluster: LocalCluster) => Promise<T>,
  onSignal: (signal: NodeJS.Signals) => void = () => {},
): Promise<T> {
  let cluster: LocalCluster | undefined
  let signalled = false
  const handler = (signal: NodeJS.Signals): void => {
    const code = EXIT_CODES[signal as (typeof SIGNALS)[number]] ?? 1
    if (signalled) process.exit(code)
    signalled = true
    onSignal(signal)
    process.stderr.write(`\n${signal}: stopping the local stores...\n`)
    // Without a cluster yet, the launcher's own exit guard kills whatever it has spawned.
    void (cluster?.stop() ?? Promise.resolve()).finally(() => process.exit(code))
  }
  for (const signal of SIGNALS) process.on(signal, handler)
  try {
    cluster = await startLocalCluster(options)
    return await body(cluster)
  } finally {
    await cluster?.stop()
    for (const signal of SIGNALS) process.off(signal, handler)
  }
}

/** What the cluster's first store reports as `VERSION()`, e.g. `10.11.19-MariaDB-0+deb12u1`. */
export async function serverVersion(cluster: LocalCluster): Promise<string> {
  const store = cluster.stores[0]
  if (store === undefined) return 'unknown'
  const [row] = await store.query<{ version: string }>('SELECT VERSION() AS version')
  return row?.version ?? 'unknown'
}
