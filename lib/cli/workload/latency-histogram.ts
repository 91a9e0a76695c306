/** Request latencies in constant memory, for percentiles over runs of any length. */

/** Each bucket is 5 % wider than the one before: a percentile is off by at most 5 %. */
const GROWTH = 1.05
/** The lowest bucket's upper bound, in ms: anything faster counts as this fast. */
const FLOOR_MILLIS = 0.05
/** 320 buckets reach past 10 minutes; slower requests count in the last one. */
const BUCKETS = 320

/**
 * A log-scale histogram of latencies in milliseconds: 320 counters, however many samples (a
 * 10-minute chaos run records millions of requests, which an array of samples would have to
 * hold until the end).
 */
export class LatencyHistogram {
  readonly #counts = new Uint32Array(BUCKETS)
  #count = 0
  #max = 0

  record(millis: number): void {
    const bucket = Math.ceil(
      Math.log(Math.max(millis, FLOOR_MILLIS) / FLOOR_MILLIS) / Math.log(GROWTH),
    )
    this.#counts[Math.min(bucket, BUCKETS - 1)]! += 1
    this.#count++
    if (millis > this.#max) this.#max = millis
  }

  get count(): number {
    return this.#count
  }

  /** The slowest sample, exactly. */
  get max(): number {
    return this.#max
  }

  /**
   * The latency `fraction` (0.99 for p99) of the samples did not exceed, in ms (the upper bound
   * of its bucket, never above the slowest sample); 0 without samples.
   */
  percentile(fraction: number): number {
    if (this.#count === 0) return 0
    const rank = Math.ceil(fraction * this.#count)
    let seen = 0
    for (let bucket = 0; bucket < BUCKETS; bucket++) {
      seen += this.#counts[bucket]!
      if (seen >= rank) return Math.min(FLOOR_MILLIS * GROWTH ** bucket, this.#max)
    }
    return this.#max
  }
}
