/** The session manager a CLI command works through. */
import { createSessionManager, type SessionManager } from '../session-manager.js'
import { oneShotOptions, type LoadedConfig } from './config.js'

/**
 * A manager over the configured stores, returned once its first health round is done, so that
 * `stats()` tells stores that are down and `repair()` skips them rather than failing on them.
 */
export async function openManager(config: LoadedConfig): Promise<SessionManager> {
  const manager = createSessionManager(oneShotOptions(config))
  await manager.ready()
  return manager
}

/** A store's standing in `manager`: `up`, `down`, or `behind` (up, replaying missed writes). */
export function circuitState(manager: SessionManager, storeId: string): 'up' | 'down' | 'behind' {
  const store = manager.stats().stores.find((s) => s.id === storeId)
  if (store === undefined || store.state === 'down') return 'down'
  return store.behind ? 'behind' : 'up'
}
