import type { LoadResult } from './load.js'

/** Throughput and latency of one series of operations. */
export interface Summary {
  ops: number
  seconds: number
  opsPerSecond: number
  p50Millis: number
  p99Millis: number
  meanMillis: number
}

/**
 * Joins several runs of the same case (e.g. interleaved rounds) into one: operations and
 * elapsed time add up, latencies are pooled.
 */
export function mergeResults(results: readonly LoadResult[]): LoadResult {
  let ops = 0
  let failed = 0
  let elapsedMillis = 0
  for (const result of results) {
    ops += result.ops
    failed += result.failed
    elapsedMillis += result.elapsedMillis
  }
  const latenciesMillis = new Float64Array(ops)
  let offset = 0
  for (const result of results) {
    latenciesMillis.set(result.latenciesMillis, offset)
    offset += result.latenciesMillis.length
  }
  return { ops, failed, elapsedMillis, latenciesMillis }
}

/** Operations per second, p50, p99 and mean latency of a run. */
export function summarize(result: LoadResult): Summary {
  const sorted = Float64Array.from(result.latenciesMillis).sort()
  let total = 0
  for (const latency of sorted) total += latency
  const seconds = result.elapsedMillis / 1000
  return {
    ops: result.ops,
    seconds,
    opsPerSecond: seconds > 0 ? result.ops / seconds : 0,
    p50Millis: percentile(sorted, 50),
    p99Millis: percentile(sorted, 99),
    meanMillis: sorted.length > 0 ? total / sorted.length : NaN,
  }
}

/** The nearest-rank percentile `p` (0–100] of ascending `sorted` values; NaN when empty. */
export function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return NaN
  const rank = Math.ceil((p / 100) * sorted.length)
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1] as number
}

/** Ops/s of each run, rounded: their spread shows how steady the machine was. */
export function roundRates(results: readonly LoadResult[]): number[] {
  return results.map((result) => Math.round(result.ops / (result.elapsedMillis / 1000)))
}

/** Largest value over the smallest, minus one: 0.1 means the values differ by 10 %. */
export function relativeSpread(values: readonly number[]): number {
  return Math.max(...values) / Math.min(...values) - 1
}

/** The middle value (the mean of the two middle ones for an even count). */
export function median(values: readonly number[]): number {
  if (values.length === 0) throw new TypeError('values must not be empty')
  const sorted = [...values].sort((a, b) => a - b)
  const middle = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1
    ? (sorted[middle] as number)
    : ((sorted[middle - 1] as number) + (sorted[middle] as number)) / 2
}
