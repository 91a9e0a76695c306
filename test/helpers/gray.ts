import type { Test } from 'tap'
import type { SessionManager, SessionManagerOptions } from '../../lib/index.js'
import { FaultProxy } from '../../lib/local-cluster/index.js'
import type { TestCluster } from './cluster.js'
import { createManager, startManager } from './manager.js'
import { closeAtEnd } from './teardown.js'

/**
 * Two app servers over the same stores: `faulty` reaches the stores in `through` via fault
 * proxies (one per store, set with `proxies.get(id).setFault(...)`), `healthy` reaches every
 * store directly. A gray fault on a proxy is seen by `faulty` only.
 */
export async function grayManagers(
  t: Test,
  cluster: TestCluster,
  through: readonly string[],
  options: Partial<SessionManagerOptions> = {},
): Promise<{ faulty: SessionManager; healthy: SessionManager; proxies: Map<string, FaultProxy> }> {
  const proxies = await proxiesFor(t, cluster, through)
  const stores = throughProxies(cluster.storeConfigs(), proxies)
  const faulty = await startManager(t, cluster, { ...options, stores })
  const healthy = await startManager(t, cluster, options)
  return { faulty, healthy, proxies }
}

/** A manager that has not seen anything yet (created after the fact), closed at teardown. */
export function lateManager(
  t: Test,
  cluster: TestCluster,
  options: Partial<SessionManagerOptions> = {},
): SessionManager {
  return createManager(t, cluster, options)
}

/** A fault proxy in front of each store in `ids`, by store id, closed at the test's end. */
export async function proxiesFor(
  t: Test,
  cluster: TestCluster,
  ids: readonly string[],
): Promise<Map<string, FaultProxy>> {
  const proxies = new Map<string, FaultProxy>()
  for (const id of ids) {
    const store = cluster.store(id)
    const proxy = await FaultProxy.start({ host: store.host, port: store.port })
    closeAtEnd(t, `the fault proxy in front of ${id}`, () => proxy.close())
    proxies.set(id, proxy)
  }
  return proxies
}

/** Store configs that reach each store with a proxy in `proxies` through it, the others directly. */
export function throughProxies<Config extends { id: string; port?: number }>(
  configs: readonly Config[],
  proxies: ReadonlyMap<string, FaultProxy>,
): Config[] {
  return configs.map((config) => {
    const proxy = proxies.get(config.id)
    return proxy === undefined ? config : { ...config, port: proxy.port }
  })
}
