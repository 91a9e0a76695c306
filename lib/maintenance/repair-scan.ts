/** The full repair: every store scanned in key order, each session repaired once. */
import { batchSizeOption } from '../call-arguments.js'
import { debug } from '../debug.js'
import { errorSummary, InvalidOptionError } from '../errors.js'
import { checkFunction, checkSignal } from '../validate.js'
import type { RepairContext } from './repair-plan.js'
import { repairSessions } from './repair-plan.js'
import type { Store } from '../store/store.js'

/** Progress of {@link SessionManager.repair}, reported after each batch. */
export interface RepairProgress {
  /** The store being scanned. */
  storeId: string
  /** Stores scanned so far, including this one, and in all. */
  storeIndex: number
  storeCount: number
  /** Totals so far over all stores. */
  scanned: number
  copied: number
  removed: number
}

/** Options of {@link SessionManager.repair}. */
export interface RepairOptions {
  /**
   * Session ids read per statement while scanning a store.
   * @default 500
   */
  batchSize?: number
  /** Called after each batch. */
  onProgress?: (progress: RepairProgress) => void
  /** Stops the walk after the batch in progress; the result says where to resume. */
  signal?: AbortSignal
  /** Where a stopped walk left off ({@link RepairResult.resumeFrom}). */
  resumeFrom?: RepairCursor
}

/**
 * Checks the options of a repair before any statement: a bad `onProgress` would otherwise fail
 * after the first batch was repaired, and a `resumeFrom` naming no store would silently scan
 * nothing. The values are not shown in the errors.
 */
export function checkRepairOptions(
  options: RepairOptions,
  storeIds: readonly string[],
): RepairOptions {
  // Each read once: the repair runs with the values checked, whatever a getter answers later.
  const { batchSize, onProgress, signal, resumeFrom } = options
  batchSizeOption(batchSize)
  if (onProgress !== undefined) checkFunction('onProgress', onProgress)
  if (signal !== undefined) checkSignal(signal)
  if (resumeFrom === undefined) return { batchSize, onProgress, signal }
  const { storeId, afterId } = (resumeFrom ?? {}) as Partial<Record<keyof RepairCursor, unknown>>
  if (typeof storeId !== 'string' || !storeIds.includes(storeId) || typeof afterId !== 'string') {
    throw new InvalidOptionError(
      'resumeFrom',
      'must be the resumeFrom of an earlier repair: { storeId } naming a configured store, and { afterId }',
    )
  }
  return { batchSize, onProgress, signal, resumeFrom: { storeId, afterId } }
}

/** A position in the walk over every store: the store, and the last id done in it. */
export interface RepairCursor {
  storeId: string
  afterId: string
}

/** Counts of {@link SessionManager.repair}. */
export interface RepairResult {
  /** Rows scanned (a session with several copies is repaired once). */
  scanned: number
  /** Copies (or tombstones) written where they were missing or stale. */
  copied: number
  /** Stale copies, copies outside their first `copies` stores and expired tombstones deleted. */
  removed: number
  /**
   * Sessions that could not be repaired (a store failed mid-way, or one of their stores could
   * not be read, which may hold a copy to remove); run repair again.
   */
  failed: number
  /** Stores that were down, or failed to list their sessions, and were not scanned (to the end). */
  skippedStores: string[]
  /** Every store was walked to the end, nothing failed and no store was skipped. */
  done: boolean
  /** Set when the walk was stopped (`signal`): pass it back as `resumeFrom`. */
  resumeFrom?: RepairCursor
}

/**
 * Scans every reachable store in key order, a batch at a time, and repairs each session from
 * the store that is the first holder of its order, so each session is repaired once.
 */
export async function repairAllStores(
  stores: readonly Store[],
  context: RepairContext,
  options: RepairOptions,
  stopping: () => boolean = () => false,
): Promise<RepairResult> {
  const batchSize = batchSizeOption(options.batchSize)
  const result: RepairResult = {
    scanned: 0,
    copied: 0,
    removed: 0,
    failed: 0,
    skippedStores: [],
    done: false,
  }
  const start = options.resumeFrom
  let started = start === undefined
  for (const [index, store] of stores.entries()) {
    if (!started && store.id !== start?.storeId) continue
    let after = !started && start !== undefined ? start.afterId : ''
    started = true
    if (!store.standing.up) {
      result.skippedStores.push(store.id)
      continue
    }
    for (;;) {
      if (options.signal?.aborted === true || stopping()) {
        result.resumeFrom = { storeId: store.id, afterId: after }
        return result
      }
      // A store that fails to list its sessions (a gray fault seen from this host only: it
      // still counts as up) is skipped like a store down, and the walk goes on.
      const ids = await store.scanIds(after, batchSize).catch((error: unknown) => {
        debug('repair: store %s could not list its sessions: %s', store.id, errorSummary(error))
        return null
      })
      if (ids === null) {
        result.skippedStores.push(store.id)
        break
      }
      if (ids.length === 0) break
      const counts = await repairSessions(context, ids, {
        dropExtras: true,
        onlyFirstHolder: store,
      })
      result.scanned += ids.length
      result.copied += counts.copied
      result.removed += counts.removed
      result.failed += counts.failed.length
      after = ids[ids.length - 1] as string
      options.onProgress?.({
        storeId: store.id,
        storeIndex: index + 1,
        storeCount: stores.length,
        scanned: result.scanned,
        copied: result.copied,
        removed: result.removed,
      })
    }
  }
  result.done = start === undefined && result.failed === 0 && result.skippedStores.length === 0
  return result
}
