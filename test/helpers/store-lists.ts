import type { Test } from 'tap'
import { createSessionManager, generateSessionId } from '../../lib/index.js'
import type { SessionManager, SessionManagerOptions } from '../../lib/index.js'
import { classicOrder } from '../../lib/placement.js'
import type { TestCluster } from './cluster.js'

/** The cluster's store configs among `ids`, for a `stores` or `previousStores` option. */
export function configsOf(
  cluster: TestCluster,
): (ids: readonly string[]) => ReturnType<TestCluster['storeConfigs']> {
  return (ids) => cluster.storeConfigs().filter((store) => ids.includes(store.id))
}

/** Opens managers with `base` settings (`options` over them), each closed at its test's end. */
export function managerOpener(
  base: Partial<SessionManagerOptions>,
): (t: Test, options: Partial<SessionManagerOptions>) => SessionManager {
  return (t, options) => {
    const manager = createSessionManager({ stores: [], ...base, ...options })
    t.teardown(() => manager.close())
    return manager
  }
}

/**
 * A fresh session whose first two stores under `before` include `retiring` and share none with
 * its first two under `after`: a move takes it off its old pair entirely.
 */
export function sessionOnRetiringStore(
  before: readonly string[],
  after: readonly string[],
  retiring: string,
): { id: string; oldPair: string[] } {
  for (;;) {
    const id = generateSessionId()
    const oldPair = classicOrder([...before], id).slice(0, 2)
    const newPair = classicOrder([...after], id).slice(0, 2)
    if (oldPair.includes(retiring) && !newPair.some((store) => oldPair.includes(store))) {
      return { id, oldPair }
    }
  }
}
