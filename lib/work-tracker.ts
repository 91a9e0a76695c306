/** Work in flight, so that close() can let it settle: operations, and bounded background work. */
import { ManagerClosedError, TooManyOperationsError } from './errors.js'

/**
 * Counts operations and background work (read repairs, moves) until they settle. Once closing,
 * new operations are refused and no background work starts; {@link settled} resolves when the
 * count reaches zero. Operations beyond `maxOperations` in flight are refused too: every queue
 * an operation joins (a store's batch queue, the wait for a store's connection) is then
 * bounded, whatever the callers do, since a request leaves it when its deadline passes (and
 * StoreConnection caps each wait for a connection at `maxOperations` besides).
 */
export class WorkTracker {
  /** Operations and background work in flight. */
  #active = 0
  /** Operations in flight (a part of {@link #active}). */
  #operations = 0
  readonly #maxOperations: number
  #closing = false
  #drained: (() => void) | undefined

  constructor(maxOperations: number) {
    this.#maxOperations = maxOperations
  }

  /** Whether the manager is closing (or closed). */
  get closing(): boolean {
    return this.#closing
  }

  /**
   * Runs an operation unless closing or `maxOperations` are in flight already (then it rejects
   * with {@link TooManyOperationsError} and nothing runs), counting it until it settles.
   */
  track<T>(operation: () => Promise<T>): Promise<T> {
    if (this.#closing) return Promise.reject(new ManagerClosedError())
    if (this.#operations >= this.#maxOperations) {
      return Promise.reject(new TooManyOperationsError(this.#maxOperations))
    }
    let promise: Promise<T>
    try {
      promise = operation()
    } catch (error) {
      return Promise.reject(error)
    }
    this.#active++
    this.#operations++
    promise.then(this.#operationSettled, this.#operationSettled)
    return promise
  }

  /**
   * Starts background work unless closing; its failure is nobody's to handle (a later read or
   * repair() fixes what it could not). Returns whether it started.
   */
  background(work: () => Promise<unknown>): boolean {
    if (this.#closing) return false
    this.#count(work().catch(() => {}))
    return true
  }

  /** Refuses new work from now on; resolves once everything in flight has settled. */
  close(): Promise<void> {
    this.#closing = true
    if (this.#active === 0) return Promise.resolve()
    return new Promise<void>((resolve) => (this.#drained = resolve))
  }

  #count(promise: Promise<unknown>): void {
    this.#active++
    promise.then(this.#settled, this.#settled)
  }

  /** One function for every piece of work's end, rather than a closure each. */
  readonly #settled = (): void => {
    if (--this.#active === 0) this.#drained?.()
  }

  readonly #operationSettled = (): void => {
    this.#operations--
    this.#settled()
  }
}
