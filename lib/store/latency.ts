/** A store's recent latencies and their percentiles. */

/** Samples between two computations of the p99 that hedging reads. */
const RECOMPUTE_EVERY = 64

/** Keeps the last `size` latencies of a store and reports percentiles over them. */
export class LatencyWindow {
  readonly #samples: Float64Array
  #count = 0
  #p99: number | null = null
  #p99At = 0

  constructor(size = 1024) {
    this.#samples = new Float64Array(size)
  }

  record(millis: number): void {
    this.#samples[this.#count % this.#samples.length] = millis
    this.#count++
  }

  /** p50 and p99 in milliseconds over the window; null before any sample. */
  percentiles(): { p50Millis: number; p99Millis: number } | null {
    const sorted = this.#sorted()
    if (sorted === null) return null
    return { p50Millis: round(at(sorted, 0.5)), p99Millis: round(at(sorted, 0.99)) }
  }

  /**
   * The p99 in milliseconds, recomputed every {@link RECOMPUTE_EVERY} samples (sorting the
   * window on every request would cost more than the request); null before that many.
   */
  recentP99(): number | null {
    if (this.#count < RECOMPUTE_EVERY) return null
    if (this.#p99 === null || this.#count - this.#p99At >= RECOMPUTE_EVERY) {
      this.#p99 = at(this.#sorted() as Float64Array, 0.99)
      this.#p99At = this.#count
    }
    return this.#p99
  }

  #sorted(): Float64Array | null {
    const filled = Math.min(this.#count, this.#samples.length)
    return filled === 0 ? null : this.#samples.slice(0, filled).sort()
  }
}

function at(sorted: Float64Array, q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] as number
}

function round(millis: number): number {
  return Math.round(millis * 1000) / 1000
}
