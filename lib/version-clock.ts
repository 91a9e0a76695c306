/** Session versions: proposed from the clock or above a stored version, always below the ceiling. */
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
  /**
   * The microseconds within a millisecond differ from process to process, so that two app
   * servers writing one session in the same millisecond rarely propose the same version.
   */
  readonly #offset = Math.floor(Math.random() * 1000)
  #last = 0

  constructor(clock: Clock) {
    this.#clock = clock
  }

  /** A version greater than every version this clock proposed so far. */
  next(): number {
    this.#last = Math.max(this.#clock.now() * 1000 + this.#offset, this.#last + 1)
    return this.#last
  }

  /**
   * A version for one session above `stored` (a version found on one of its copies), by a
   * random step, so that two writers that found the same version rarely propose the same one.
   */
  above(stored: number): number {
    const step = 1 + Math.floor(Math.random() * 1000)
    return Math.max(this.next(), Math.min(stored + step, VERSION_CEILING - 1))
  }
}
