/** Waiting on a starved machine: for stores back in service, and retrying setup steps. */
import type { SessionManager } from '../../session-manager.js'

/**
 * Waits until every manager has each of `storeIds` up and caught up (its missed writes
 * replayed), for at most `timeoutMillis`. Resolves the ids still not in service then: none
 * when all are.
 */
export async function waitForService(
  managers: readonly SessionManager[],
  storeIds: readonly string[],
  timeoutMillis: number,
): Promise<string[]> {
  const deadline = Date.now() + timeoutMillis
  const serving = (manager: SessionManager, storeId: string): boolean =>
    manager.stats().stores.some((s) => s.id === storeId && s.state === 'up' && !s.behind)
  for (;;) {
    const out = storeIds.filter((id) => !managers.every((manager) => serving(manager, id)))
    if (out.length === 0 || Date.now() > deadline) return out
    await sleep(50)
  }
}

/** Waits until every manager has the store up and caught up; throws after `timeoutMillis`. */
export async function waitUntilServing(
  managers: readonly SessionManager[],
  storeId: string,
  timeoutMillis: number,
): Promise<void> {
  const out = await waitForService(managers, [storeId], timeoutMillis)
  if (out.length > 0) throw new Error(`store ${storeId} did not come back into service`)
}

/**
 * Runs `attempt` until it resolves, waiting 250 ms after the first failure and twice as long
 * after each next (at most 5 s), for at most `timeoutMillis` in all; then rejects with the
 * last error. For setup and verification steps that one timeout on a starved machine must
 * not end.
 */
export async function retryFor<T>(
  timeoutMillis: number,
  attempt: () => Promise<T>,
  onRetry?: (error: unknown) => void,
): Promise<T> {
  const deadline = Date.now() + timeoutMillis
  for (let delay = 250; ; delay = Math.min(delay * 2, 5000)) {
    try {
      return await attempt()
    } catch (error) {
      if (Date.now() + delay > deadline) throw error
      onRetry?.(error)
      await sleep(delay)
    }
  }
}

export function sleep(millis: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, millis))
}
