/** A store's recent latencies and their percentiles. */

/** Samples between two computations of the p99 that hedging reads. */
const RECOMPUTE_EVERY = 64

/** Bounds of the hedge delay (see {@link hedgeDelayMillis}). */
export const MIN_HEDGE_MILLIS = 2
export const MAX_HEDGE_MILLIS = 100

/**
 * How long a request waits for a store before also asking the next one: twice the store's
 * recent p99, within [{@link MIN_HEDGE_MILLIS}, {@link MAX_HEDGE_MILLIS}]; the most until enough
 * latencies are known (`p99` null). The floor keeps a store answering in well under a
 * millisecond from being hedged around at every scheduling hiccup, and the shared hedge timer
 * from waking the process more often (docs/performance.md, "Reads"); the ceiling bounds what a
 * slow store costs a request.
 */
export function hedgeDelayMillis(p99: number | null): number {
  if (p99 === null) return MAX_HEDGE_MILLIS
  return Math.min(MAX_HEDGE_MILLIS, Math.max(MIN_HEDGE_MILLIS, 2 * p99))
}

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
    const filled = this.#filled()
    if (filled === 0) return null
    const sorted = this.#samples.slice(0, filled).sort()
    return { p50Millis: round(at(sorted, 0.5)), p99Millis: round(at(sorted, 0.99)) }
  }

  /**
   * The p99 in milliseconds, recomputed every {@link RECOMPUTE_EVERY} samples; null before
   * that many. Picked out of the window rather than sorted: it runs on every request's path.
   */
  recentP99(): number | null {
    if (this.#count < RECOMPUTE_EVERY) return null
    if (this.#p99 === null || this.#count - this.#p99At >= RECOMPUTE_EVERY) {
      this.#p99 = quantile(this.#samples, this.#filled(), 0.99)
      this.#p99At = this.#count
    }
    return this.#p99
  }

  #filled(): number {
    return Math.min(this.#count, this.#samples.length)
  }
}

/** The value at quantile `q` of sorted samples (the nearest rank at or below). */
function at(sorted: Float64Array, q: number): number {
  return sorted[rank(sorted.length, q)] as number
}

function rank(count: number, q: number): number {
  return Math.min(count - 1, Math.floor(q * count))
}

/**
 * The value {@link at} would find at quantile `q` among the first `count` samples, without
 * sorting or copying them: for a high quantile it is the k-th largest with k small (11 of
 * 1024 for the p99), which one pass keeps in a short sorted list. Scales with count × k.
 */
export function quantile(samples: Float64Array, count: number, q: number): number {
  const largest = count - rank(count, q)
  /** The `largest` biggest samples so far, smallest first. */
  const top: number[] = []
  for (let i = 0; i < count; i++) {
    const value = samples[i] as number
    if (top.length === largest) {
      if (value <= (top[0] as number)) continue
      top.shift()
    }
    let position = top.length
    while (position > 0 && (top[position - 1] as number) > value) position--
    top.splice(position, 0, value)
  }
  return top[0] as number
}

function round(millis: number): number {
  return Math.round(millis * 1000) / 1000
}
