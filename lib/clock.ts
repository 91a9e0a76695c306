/** The time source behind every expiry decision: the wall clock, or a test's fake one. */

/** Reads the time in milliseconds since the epoch. */
export interface Clock {
  now(): number
}

/** The wall clock. */
export const systemClock: Clock = { now: () => Date.now() }
