import type { Test } from 'tap'
import type { SessionManager, SessionManagerOptions } from '../../lib/index.js'
import type { FaultProxy } from '../../lib/local-cluster/index.js'
import type { TestCluster } from './cluster.js'
import { proxiesFor } from './gray.js'
import { startManager } from './manager.js'

/**
 * Two managers whose versions collide: one clock frozen at `frozen` (an hour ahead of the
 * other managers by default, so that their versions are above every version written before)
 * and one random offset, each reaching the stores in `through` via fault proxies. No health
 * rounds: a round would replay a refused write's hints.
 */
export async function collidingServers(
  t: Test,
  cluster: TestCluster,
  through: [readonly string[], readonly string[]] = [[], []],
  frozen = Date.now() + 3_600_000,
  options: Partial<SessionManagerOptions> = {},
): Promise<{ first: SessionManager; second: SessionManager; proxies: Map<string, FaultProxy> }> {
  const proxies = await proxiesFor(t, cluster, [...new Set(through.flat())])
  const stores = (ids: readonly string[]) =>
    cluster
      .storeConfigs()
      .map((config) =>
        ids.includes(config.id) ? { ...config, port: proxies.get(config.id)!.port } : config,
      )
  const random = Math.random
  Math.random = () => 0.5
  const [first, second] = (await Promise.all(
    through.map((ids) =>
      startManager(t, cluster, {
        healthCheckIntervalMillis: 3_600_000,
        ...options,
        stores: stores(ids),
        clock: { now: () => frozen },
      }),
    ),
  ).finally(() => (Math.random = random))) as [SessionManager, SessionManager]
  return { first, second, proxies }
}
