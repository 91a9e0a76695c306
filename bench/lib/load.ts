import { performance } from 'node:perf_hooks'

/** One operation under load; `worker` is the index of the lane running it (0 to inFlight - 1). */
export type Operation = (worker: number) => Promise<unknown>

/** Options of {@link runLoad}. Give exactly one of `durationMillis` and `count`. */
export interface LoadOptions {
  /** Operations kept in flight at once. */
  inFlight: number
  /** Start new operations until this much time has passed; those in flight then finish. */
  durationMillis?: number
  /** Run exactly this many operations. */
  count?: number
  /** Called with the number of finished operations, at most every `progressEveryMillis`. */
  onProgress?: (finished: number) => void
  /** @default 250 */
  progressEveryMillis?: number
  /**
   * Errors for which this returns true are counted in {@link LoadResult.failed} and the run
   * goes on (e.g. a compare-and-set that gave up); any other error stops the run.
   * @default none: every error stops the run
   */
  tolerate?: (error: unknown) => boolean
}

/** What {@link runLoad} measured. */
export interface LoadResult {
  /** Operations that succeeded. */
  ops: number
  /** Operations that failed with an error `tolerate` accepted; not in `ops` or the latencies. */
  failed: number
  /** From the first start to the last finish, in milliseconds. */
  elapsedMillis: number
  /** Latency of each successful operation, in milliseconds, in finishing order. */
  latenciesMillis: Float64Array
}

/**
 * Runs `operation` with `inFlight` calls outstanding at all times, for a fixed duration or a
 * fixed count, and records each call's latency. The first failure that `tolerate` does not
 * accept stops the run and rejects with it: a benchmark that hides errors measures the wrong
 * thing.
 *
 * @example
 * const result = await runLoad(() => pool.execute(sql, [id]), { inFlight: 16, durationMillis: 1500 })
 */
export async function runLoad(operation: Operation, options: LoadOptions): Promise<LoadResult> {
  const { inFlight, durationMillis, count } = options
  if (!Number.isSafeInteger(inFlight) || inFlight < 1) {
    throw new TypeError(`inFlight option must be a positive integer; got ${inFlight}`)
  }
  if ((durationMillis === undefined) === (count === undefined)) {
    throw new TypeError('give exactly one of the durationMillis and count options')
  }
  if (durationMillis !== undefined && !(durationMillis > 0)) {
    throw new TypeError(`durationMillis option must be a positive number; got ${durationMillis}`)
  }
  if (count !== undefined && (!Number.isSafeInteger(count) || count < 0)) {
    throw new TypeError(`count option must be a nonnegative integer; got ${count}`)
  }

  const latencies = new LatencyLog(count ?? 1024)
  const progressEvery = options.progressEveryMillis ?? 250
  const started = performance.now()
  const deadline = durationMillis === undefined ? Infinity : started + durationMillis
  let issued = 0
  let tolerated = 0
  let failed = false
  let lastProgress = started

  const mayStart = (): boolean => {
    if (failed) return false
    if (count !== undefined) return issued < count
    return performance.now() < deadline
  }
  const lane = async (worker: number): Promise<void> => {
    while (mayStart()) {
      issued++
      const begin = performance.now()
      try {
        await operation(worker)
      } catch (error) {
        if (options.tolerate?.(error) === true) {
          tolerated++
          continue
        }
        failed = true
        throw error
      }
      const end = performance.now()
      latencies.push(end - begin)
      if (options.onProgress !== undefined && end - lastProgress >= progressEvery) {
        lastProgress = end
        options.onProgress(latencies.length)
      }
    }
  }

  const lanes = Array.from({ length: Math.min(inFlight, count ?? inFlight) }, (_, worker) =>
    lane(worker),
  )
  // allSettled first so that no lane is still running when the first error is rethrown.
  const outcomes = await Promise.allSettled(lanes)
  const rejected = outcomes.find((outcome) => outcome.status === 'rejected')
  if (rejected !== undefined) throw (rejected as PromiseRejectedResult).reason
  return {
    ops: latencies.length,
    failed: tolerated,
    elapsedMillis: performance.now() - started,
    latenciesMillis: latencies.values(),
  }
}

/** An append-only list of doubles that grows without boxing each number. */
class LatencyLog {
  #buffer: Float64Array
  #length = 0

  constructor(capacity: number) {
    this.#buffer = new Float64Array(Math.max(16, capacity))
  }

  get length(): number {
    return this.#length
  }

  push(value: number): void {
    if (this.#length === this.#buffer.length) {
      const grown = new Float64Array(this.#buffer.length * 2)
      grown.set(this.#buffer)
      this.#buffer = grown
    }
    this.#buffer[this.#length++] = value
  }

  values(): Float64Array {
    return this.#buffer.slice(0, this.#length)
  }
}
