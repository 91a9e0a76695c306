/** Sweeps: expired copies and spent tombstones deleted in small batches, on demand or on a timer. */
import { errorSummary } from '../errors.js'
import { JitteredTimer } from '../jittered-timer.js'
import { batchSizeOption } from '../call-arguments.js'
import type { Store } from '../store/store.js'

/** Options of {@link SessionManager.sweep}. */
export interface SweepOptions {
  /**
   * Rows deleted per statement. Small batches keep each statement's locks short.
   * @default 500
   */
  batchSize?: number
  /** Called after each batch with the store's running count. */
  onProgress?: (progress: { storeId: string; deleted: number }) => void
}

/** What {@link SessionManager.sweep} deleted, per store. */
export interface SweepResult {
  deleted: number
  stores: { storeId: string; deleted: number; error?: string }[]
}

/**
 * Deletes expired copies and tombstones whose time is up on every reachable store, through
 * the expiry index, `batchSize` rows per statement, stores in parallel; then the store's expired
 * read-lease announcements (not counted in `deleted`).
 */
export async function sweepStores(
  stores: readonly Store[],
  options: SweepOptions,
): Promise<SweepResult> {
  const batchSize = batchSizeOption(options.batchSize)
  const perStore = await Promise.all(
    stores.map(async (store) => {
      let deleted = 0
      if (!store.standing.up) return { storeId: store.id, deleted, error: 'store is down' }
      try {
        for (;;) {
          const count = await store.sweepExpired(batchSize)
          deleted += count
          options.onProgress?.({ storeId: store.id, deleted })
          if (count < batchSize) break
        }
        // Expired read-lease announcements go too: few, but nothing else deletes them. (A store
        // without their table, schema not applied since an upgrade, has none to delete.)
        await store.sweepStale().catch(() => 0)
        return { storeId: store.id, deleted }
      } catch (error) {
        return { storeId: store.id, deleted, error: errorSummary(error as Error) }
      }
    }),
  )
  return { deleted: perStore.reduce((sum, store) => sum + store.deleted, 0), stores: perStore }
}

/** Runs a sweep every `intervalSeconds` (±20%), one at a time; 0 runs none. */
export class BackgroundSweeper {
  readonly #timer: JitteredTimer

  constructor(intervalSeconds: number, sweep: () => Promise<unknown>) {
    this.#timer = new JitteredTimer(intervalSeconds * 1000, sweep)
  }

  start(): void {
    this.#timer.start()
  }

  /** Stops the timer; resolves once a sweep in progress has finished. */
  stop(): Promise<void> {
    return this.#timer.stop()
  }
}
