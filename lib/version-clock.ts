import type { Clock } from './clock.js'

/**
 * The top of the version range, exclusive. Versions the library mints stay below it, so that
 * they are exact in a JavaScript number; a stored version at or above it was written by
 * something else and counts as the oldest (see statements.ts).
 */
export const VERSION_CEILING = Number.MAX_SAFE_INTEGER

/**
 * Proposes session versions: microseconds since the epoch, never less than one more than the
 * last version this process proposed. A write that finds a session at a higher version (an app
 * server whose clock runs ahead wrote it) proposes one above that version, for that session
 * only: nothing read from one session, and nothing a caller passes, moves the versions
 * proposed for another.
 */
export class VersionClock {
  readonly #clock: Clock
  #last = 0

  constructor(clock: Clock) {
    this.#clock = clock
  }

  /** A version greater than every version this clock proposed so far. */
  next(): number {
    this.#last = Math.max(this.#clock.now() * 1000, this.#last + 1)
    return this.#last
  }

  /** A version for one session above `stored` (a version found on one of its copies). */
  above(stored: number): number {
    return Math.max(this.next(), stored + 1)
  }
}
