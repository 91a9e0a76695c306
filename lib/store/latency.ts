/** Keeps the last `size` latencies of a store and reports percentiles over them. */
export class LatencyWindow {
  readonly #samples: Float64Array
  #count = 0

  constructor(size = 1024) {
    this.#samples = new Float64Array(size)
  }

  record(millis: number): void {
    this.#samples[this.#count % this.#samples.length] = millis
    this.#count++
  }

  /** p50 and p99 in milliseconds over the window; null before any sample. */
  percentiles(): { p50Millis: number; p99Millis: number } | null {
    const filled = Math.min(this.#count, this.#samples.length)
    if (filled === 0) return null
    const sorted = this.#samples.slice(0, filled).sort()
    const at = (q: number): number => round(sorted[Math.min(filled - 1, Math.floor(q * filled))]!)
    return { p50Millis: at(0.5), p99Millis: at(0.99) }
  }
}

function round(millis: number): number {
  return Math.round(millis * 1000) / 1000
}
