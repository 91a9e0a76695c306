/**
 * Proposes session versions: microseconds since the epoch, never less than one more than
 * the last version this process proposed or saw. Stores keep max(stored + 1, proposed), so a
 * session's version only grows even when app servers' clocks disagree; the clock then
 * catches up with what the stores report.
 */
export class VersionClock {
  #last = 0

  /** A version greater than every version proposed or observed so far. */
  next(): number {
    this.#last = Math.max(Date.now() * 1000, this.#last + 1)
    return this.#last
  }

  /** Makes later versions exceed `version` (one read back from a store). */
  observe(version: number): void {
    if (version > this.#last) this.#last = version
  }
}
