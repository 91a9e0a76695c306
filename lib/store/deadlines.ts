/** A statement waiting for its answer, with the time it must be abandoned. */
export interface PendingStatement {
  /** Performance time (`performance.now()`) after which the statement is abandoned. */
  readonly deadline: number
  /**
   * Called once if the deadline passes first, with how late the tracker noticed: a lateness
   * far beyond the tracker's resolution means the process itself was not running.
   */
  expire(lateByMillis: number): void
  /**
   * Whether no tracker holds it: created true, set false by {@link DeadlineTracker.add} and true
   * again once deleted or expired (a mark in place of looking it up in a hash on every
   * delete). Deleting a statement that is not held does nothing.
   */
  untracked: boolean
}

/**
 * Deleted statements a tracker's list may hold besides its pending ones before it is
 * compacted: the list holds at most twice its pending statements and this many more.
 */
const SLACK_ENTRIES = 64

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
 *
 * The statements are kept in a list in the order they came, and a deleted one is only marked
 * (`untracked`), dropped from the list's front at once and from elsewhere when the timer
 * fires or the list grows past twice the statements pending. A Set of them instead (a hash
 * insert and delete per statement) cost lone reads at 64 in flight a fifth of their client
 * CPU on 3 local stores (docs/performance.md).
 */
export class DeadlineTracker {
  /** The statements added and not yet dropped, in the order added; some may be untracked. */
  #list: PendingStatement[] = []
  /** Statements in {@link #list} still pending. */
  #pendingCount = 0
  readonly #resolutionMillis: number
  #timer: NodeJS.Timeout | undefined
  /** Performance time the timer is set for; Infinity when it is not set. */
  #firesAt = Number.POSITIVE_INFINITY

  constructor(resolutionMillis: number) {
    this.#resolutionMillis = resolutionMillis
  }

  /** Statements in the list, deleted ones not yet dropped included: at most twice the pending ones and 64. */
  get held(): number {
    return this.#list.length
  }

  add(statement: PendingStatement): void {
    statement.untracked = false
    this.#list.push(statement)
    this.#pendingCount++
    if (this.#list.length > 2 * this.#pendingCount + SLACK_ENTRIES) this.#compact()
    if (statement.deadline < this.#firesAt - this.#resolutionMillis)
      this.#setFor(statement.deadline)
  }

  delete(statement: PendingStatement): void {
    if (statement.untracked) return
    statement.untracked = true
    this.#pendingCount--
    // Statements mostly end in the order they began: the front is where they leave.
    while (this.#list.length > 0 && (this.#list[0] as PendingStatement).untracked)
      this.#list.shift()
  }

  /** Drops the untracked statements from the list. */
  #compact(): void {
    this.#list = this.#list.filter((statement) => !statement.untracked)
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
    // A statement's expire() may add (and delete) statements: those go to a fresh list, and
    // are looked at once the due ones have expired.
    const list = this.#list
    this.#list = []
    const kept: PendingStatement[] = []
    let next = Number.POSITIVE_INFINITY
    for (const statement of list) {
      if (statement.untracked) continue
      if (statement.deadline <= now) {
        statement.untracked = true
        this.#pendingCount--
        statement.expire(now - statement.deadline)
      } else {
        kept.push(statement)
        if (statement.deadline < next) next = statement.deadline
      }
    }
    // The survivors came first; the statements added meanwhile, and the timer they set, after.
    const added = this.#list
    this.#list = kept
    for (const statement of added) if (!statement.untracked) this.#list.push(statement)
    if (next < this.#firesAt) this.#setFor(next)
  }
}
