/**
 * The listing step of bench/contention.ts, run in a process of its own through
 * {@link runIsolated} (bench/lib/isolated.ts): a fresh manager lists or counts the sessions
 * while this process's memory is sampled, so the figures are the listing's, not those of the
 * bulk load before it. Only types are exported: importing it for them serves nothing, and
 * nothing else should import it.
 */
import { performance } from 'node:perf_hooks'
import type { LocalStoreConfig } from '../../lib/local-cluster/index.js'
import { loadBuiltLibrary } from './built-library.js'
import { serveIsolated } from './isolated.js'
import type { MemoryPeak } from './memory.js'
import { collectGarbage, sampleMemory } from './memory.js'

export interface ListingProbeInput {
  step: 'list()' | 'count()'
  stores: LocalStoreConfig[]
  copies: number
  table: string
  memorySampleMillis: number
}

export interface ListingProbeOutput {
  /** Ids list() yielded, or what count() resolved. */
  sessions: number
  /** list() only: every id greater than the one before (each session once, in id order). */
  inOrder: boolean | null
  seconds: number
  memory: MemoryPeak
}

serveIsolated(probe)

async function probe(input: ListingProbeInput): Promise<ListingProbeOutput> {
  const {
    index: { createSessionManager },
  } = await loadBuiltLibrary()
  const manager = createSessionManager({
    stores: input.stores,
    copies: input.copies,
    table: input.table,
  })
  try {
    collectGarbage()
    const memory = sampleMemory(input.memorySampleMillis)
    const started = performance.now()
    let sessions = 0
    let inOrder: boolean | null = null
    if (input.step === 'list()') {
      inOrder = true
      let previous = ''
      for await (const id of manager.list()) {
        if (id <= previous) inOrder = false
        previous = id
        sessions++
      }
    } else {
      sessions = await manager.count()
    }
    const seconds = (performance.now() - started) / 1000
    return { sessions, inOrder, seconds, memory: memory.stop() }
  } finally {
    await manager.close()
  }
}
