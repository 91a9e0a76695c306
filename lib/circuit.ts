/**
 * A store's standing as one manager sees it.
 * - `up`: requests use it.
 * - `down`: requests skip it at once; the health check probes it.
 * `behind` is independent of both: the store missed writes (a hinted write went elsewhere, or
 * it was down or restarted) and must not answer reads until its hints are replayed.
 */
export type StoreState = 'up' | 'down'

/**
 * Counts consecutive failures to reach the store (connection errors, timeouts; not SQL errors,
 * which prove the server answers) and opens after `failThreshold` of them.
 */
export class Circuit {
  state: StoreState = 'up'
  behind = false
  #consecutiveFailures = 0
  readonly #failThreshold: number

  constructor(failThreshold: number) {
    this.#failThreshold = failThreshold
  }

  /** Whether reads may use the store. */
  get readable(): boolean {
    return this.state === 'up' && !this.behind
  }

  succeeded(): void {
    this.#consecutiveFailures = 0
  }

  /** Records a failure; true when this failure opened the circuit. */
  failed(): boolean {
    this.#consecutiveFailures++
    if (this.state === 'up' && this.#consecutiveFailures >= this.#failThreshold) {
      this.state = 'down'
      return true
    }
    return false
  }

  /** Opens the circuit at once (a failed health probe); true if it was closed. */
  open(): boolean {
    const wasUp = this.state === 'up'
    this.state = 'down'
    return wasUp
  }

  /** Closes the circuit after a successful probe. The store stays behind until its hints are replayed. */
  close(): void {
    this.state = 'up'
    this.behind = true
    this.#consecutiveFailures = 0
  }
}
