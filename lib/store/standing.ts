/** A store's standing as one manager sees it: the only place it changes, through named transitions. */

/**
 * - `up`: requests use it.
 * - `down`: requests skip it at once; the health check probes it.
 */
export type StoreState = 'up' | 'down'

/** What a standing reports when it changes. */
export interface StandingListener {
  /** The store went down (requests failed `failThreshold` times in a row, or a probe failed). */
  down(error: Error): void
  /** A store that was down is up and caught up: it serves reads again. */
  serving(): void
}

/**
 * Up or down, and, independently, behind: the store missed writes (a hinted write went
 * elsewhere, or it was down or restarted) and must not answer reads until they are replayed.
 * Requests and health probes report what they saw; hinted handoff says when the store missed
 * writes and when it has caught up. Nothing else changes the standing.
 */
export class StoreStanding {
  readonly #failThreshold: number
  readonly #listener: StandingListener
  #state: StoreState = 'up'
  #behind = false
  /** Down since it last served reads: its return is announced once it has caught up. */
  #wasDown = false
  #consecutiveFailures = 0

  constructor(failThreshold: number, listener: StandingListener) {
    this.#failThreshold = failThreshold
    this.#listener = listener
  }

  get state(): StoreState {
    return this.#state
  }

  /** The store missed writes not yet replayed to it. */
  get behind(): boolean {
    return this.#behind
  }

  /** Requests may be sent (writes go to a store that is behind; they are newer anyway). */
  get up(): boolean {
    return this.#state === 'up'
  }

  /** Reads may trust it: up and caught up. */
  get readable(): boolean {
    return this.#state === 'up' && !this.#behind
  }

  /** A request got an answer (an SQL error is an answer too: the server is there). */
  requestAnswered(): void {
    this.#consecutiveFailures = 0
  }

  /** A request could not reach the store; the last of `failThreshold` in a row takes it down. */
  requestUnreachable(error: Error): void {
    this.#consecutiveFailures++
    if (this.#state === 'up' && this.#consecutiveFailures >= this.#failThreshold) {
      this.#goDown(error)
    }
  }

  /** A health probe failed: down at once. */
  probeFailed(error: Error): void {
    if (this.#state === 'up') this.#goDown(error)
  }

  /**
   * A health probe answered. A store that was down is up again, but behind: it may have missed
   * writes while it was down. A store that `restarted` unseen may have lost writes it had
   * acknowledged in memory only: behind too. Returns whether the store must be caught up.
   */
  probeAnswered(restarted: boolean): boolean {
    if (this.#state === 'down') {
      this.#state = 'up'
      this.#behind = true
      this.#consecutiveFailures = 0
    } else if (restarted) {
      this.#behind = true
    }
    return this.#behind
  }

  /** The store missed a write (hinted elsewhere), or other managers left hints for it. */
  missedWrites(): void {
    this.#behind = true
  }

  /** Every write it missed has been replayed: it serves reads again. */
  caughtUp(): void {
    this.#behind = false
    if (this.#wasDown && this.#state === 'up') {
      this.#wasDown = false
      this.#listener.serving()
    }
  }

  #goDown(error: Error): void {
    this.#state = 'down'
    this.#wasDown = true
    this.#listener.down(error)
  }
}
