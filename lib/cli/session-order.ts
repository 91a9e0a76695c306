/**
 * A session id checked, and its order over the stores computed, as a manager does both, without
 * one: `locate` and `show` refuse a bad id, and `locate` answers, before any store is asked.
 */
import { checkSessionId } from '../ids.js'
import type { ResolvedOptions } from '../options.js'
import { placementFunction } from '../placement.js'

/**
 * Throws `InvalidSessionIdError` for a malformed id, or, with `secrets`, one whose signature
 * fails: the manager's own check, under the configured options.
 */
export function checkConfiguredId(resolved: ResolvedOptions, sessionId: string): void {
  checkSessionId(sessionId, resolved.idSigner)
}

/**
 * The store ids in `sessionId`'s order: what `SessionManager.locate` returns under the same
 * options (the configured placement over the configured stores). No I/O.
 *
 * @throws `InvalidSessionIdError` as {@link checkConfiguredId} does.
 */
export function sessionOrder(resolved: ResolvedOptions, sessionId: string): string[] {
  checkConfiguredId(resolved, sessionId)
  const storeIds = resolved.stores.map((store) => store.id)
  return placementFunction(resolved.placement)(storeIds, sessionId)
}
