import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'

/** Memory of this process while something ran, from {@link sampleMemory}. */
export interface MemoryPeak {
  /** When sampling started. */
  baselineRssBytes: number
  baselineHeapUsedBytes: number
  /** The highest sample, the first and last included. */
  peakRssBytes: number
  peakHeapUsedBytes: number
  samples: number
}

/**
 * Samples `process.memoryUsage()` every `everyMillis` (and once at start and at stop) and
 * keeps the peaks. The timer only fires while the event loop is free, so work that never
 * yields is sampled at its ends only.
 *
 * @example
 * const memory = sampleMemory(50)
 * for await (const id of manager.list()) count++
 * const { peakRssBytes } = memory.stop()
 */
export function sampleMemory(everyMillis: number): { stop(): MemoryPeak } {
  const first = process.memoryUsage()
  const peak: MemoryPeak = {
    baselineRssBytes: first.rss,
    baselineHeapUsedBytes: first.heapUsed,
    peakRssBytes: first.rss,
    peakHeapUsedBytes: first.heapUsed,
    samples: 1,
  }
  const sample = (): void => {
    const { rss, heapUsed } = process.memoryUsage()
    peak.peakRssBytes = Math.max(peak.peakRssBytes, rss)
    peak.peakHeapUsedBytes = Math.max(peak.peakHeapUsedBytes, heapUsed)
    peak.samples++
  }
  const timer = setInterval(sample, everyMillis)
  return {
    stop() {
      clearInterval(timer)
      sample()
      return { ...peak }
    },
  }
}

let gc: (() => void) | undefined

/**
 * Runs a full garbage collection, so that a baseline taken next holds live objects only. Uses
 * `--expose-gc`'s `gc` when the process has it, otherwise turns the flag on at run time.
 */
export function collectGarbage(): void {
  if (gc === undefined) {
    const exposed = (globalThis as { gc?: () => void }).gc
    if (exposed !== undefined) {
      gc = exposed
    } else {
      setFlagsFromString('--expose-gc')
      gc = runInNewContext('gc') as () => void
    }
  }
  gc()
}
