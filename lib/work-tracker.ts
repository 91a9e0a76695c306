/** Work in flight, so that close() can let it settle: operations, and bounded background work. */
import { ManagerClosedError } from './errors.js'

/**
 * Counts operations and background work (read repairs, moves) until they settle. Once closing,
 * new operations are refused and no background work starts; {@link settled} resolves when the
 * count reaches zero.
 */
export class WorkTracker {
  #active = 0
  #closing = false
  #drained: (() => void) | undefined

  /** Whether the manager is closing (or closed). */
  get closing(): boolean {
    return this.#closing
  }

  /** Runs an operation unless closing, counting it until it settles. */
  track<T>(operation: () => Promise<T>): Promise<T> {
    if (this.#closing) return Promise.reject(new ManagerClosedError())
    let promise: Promise<T>
    try {
      promise = operation()
    } catch (error) {
      return Promise.reject(error)
    }
    this.#count(promise)
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

  /** One function for every operation's end, rather than a closure each. */
  readonly #settled = (): void => {
    if (--this.#active === 0) this.#drained?.()
  }
}
