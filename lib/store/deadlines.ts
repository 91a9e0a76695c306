/** A statement waiting for its answer, with the time it must be abandoned. */
export interface PendingStatement {
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
 * and a Promise.race) costs more than the rest of a statement's client-side work. The timer runs only while statements are pending, never
 * keeps the process alive, and fires at most `resolutionMillis` late.
 */
export class DeadlineTracker {
  readonly #pending = new Set<PendingStatement>()
  readonly #resolutionMillis: number
  #timer: NodeJS.Timeout | undefined

  constructor(resolutionMillis: number) {
    this.#resolutionMillis = resolutionMillis
  }

  add(statement: PendingStatement): void {
    this.#pending.add(statement)
    if (this.#timer === undefined) {
      this.#timer = setInterval(() => this.#expire(), this.#resolutionMillis)
      this.#timer.unref()
    }
  }

  delete(statement: PendingStatement): void {
    this.#pending.delete(statement)
  }

  #expire(): void {
    const now = performance.now()
    for (const statement of this.#pending) {
      if (statement.deadline <= now) {
        this.#pending.delete(statement)
        statement.expire(now - statement.deadline)
      }
    }
    if (this.#pending.size === 0) {
      clearInterval(this.#timer)
      this.#timer = undefined
    }
  }
}
