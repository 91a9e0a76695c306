/** A statement waiting for its answer, with the time it must be abandoned. */
export interface PendingStatement {
  /** Performance time (`performance.now()`) after which the statement is abandoned. */
  readonly deadline: number
  /**
   * Called once if the deadline passes first, with how late the tracker noticed: a lateness
   * far beyond the tracker's resolution means the process itself was not running.
   */
  expire(lateByMillis: number): void
}

/**
 * Enforces statement deadlines with one timer per store instead of one per statement (and
 * the hedges of lone reads with one for all of them): a timer per statement (create, clear,
 * and a Promise.race) costs more than the rest of a statement's client-side work.
 *
 * The timer is set for the earliest deadline pending, not ticking: a new deadline moves it
 * only when it falls due more than `resolutionMillis` before the timer (never for deadlines of
 * one length, which come in order), and when it fires, the deadlines due expire and it is set
 * again for the earliest of the others. A tick every `resolutionMillis` would wake an idle
 * process a thousand times a second for the hedges of lone reads, whose answers almost always
 * come first. The timer never keeps the process alive; a deadline expires at most
 * `resolutionMillis` (and the timers' own millisecond) late.
 */
export class DeadlineTracker {
  readonly #pending = new Set<PendingStatement>()
  readonly #resolutionMillis: number
  #timer: NodeJS.Timeout | undefined
  /** Performance time the timer is set for; Infinity when it is not set. */
  #firesAt = Number.POSITIVE_INFINITY

  constructor(resolutionMillis: number) {
    this.#resolutionMillis = resolutionMillis
  }

  add(statement: PendingStatement): void {
    this.#pending.add(statement)
    if (statement.deadline < this.#firesAt - this.#resolutionMillis)
      this.#setFor(statement.deadline)
  }

  delete(statement: PendingStatement): void {
    this.#pending.delete(statement)
  }

  #setFor(deadline: number): void {
    clearTimeout(this.#timer)
    this.#firesAt = deadline
    this.#timer = setTimeout(() => this.#expire(), Math.max(0, deadline - performance.now()))
    this.#timer.unref()
  }

  #expire(): void {
    this.#timer = undefined
    this.#firesAt = Number.POSITIVE_INFINITY
    const now = performance.now()
    let next = Number.POSITIVE_INFINITY
    for (const statement of this.#pending) {
      if (statement.deadline <= now) {
        this.#pending.delete(statement)
        statement.expire(now - statement.deadline)
      } else if (statement.deadline < next) {
        next = statement.deadline
      }
    }
    // An expire() above may have added a deadline (and set the timer) already.
    if (next < this.#firesAt) this.#setFor(next)
  }
}
