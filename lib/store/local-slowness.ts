/** Tells a store's own failures from the manager's slowness: a stalled event loop, every store timing out at once. */
import { StoreBusyError, StoreTimeoutError } from '../errors.js'

/** How long timeouts of different stores count as "at once". */
const TOGETHER_MILLIS = 2000

/**
 * When the manager's process is starved of CPU, every statement can miss its deadline although
 * the stores are fine; marking them down then takes healthy stores out of service all at once
 * (more than the `copies - 1` the guarantees allow). A timeout therefore does not count against
 * a store when it was noticed late by more than half the query timeout (the process
 * was not running: the store may well have answered meanwhile), or while most stores timed out
 * within the same two seconds; nor does a request refused because too many of the manager's
 * own wait for the store's connections ({@link StoreBusyError}). Errors that prove the store
 * absent (a refused connection) and other failures always count.
 */
export class LocalSlowness {
  readonly #storeCount: number
  readonly #lateLimitMillis: number
  readonly #lastTimeout = new Map<string, number>()

  constructor(storeCount: number, queryTimeoutMillis: number) {
    this.#storeCount = storeCount
    this.#lateLimitMillis = Math.max(50, queryTimeoutMillis / 2)
  }

  /** Whether `error` (a failure to reach `storeId`) should count against that store. */
  counts(storeId: string, error: unknown): boolean {
    // Refused before any statement: too many of this manager's own requests wait for the store.
    if (error instanceof StoreBusyError) return false
    if (!(error instanceof StoreTimeoutError)) return true
    if (error.lateByMillis > this.#lateLimitMillis) return false
    const now = performance.now()
    this.#lastTimeout.set(storeId, now)
    let together = 0
    for (const at of this.#lastTimeout.values()) if (now - at < TOGETHER_MILLIS) together++
    return together <= this.#storeCount / 2
  }
}
