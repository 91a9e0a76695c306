import { errorSummary } from './errors.js'
import { batchSizeOption } from './options.js'
import type { StorePool } from './store-pool.js'

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
 * the expiry index, `batchSize` rows per statement, stores in parallel.
 */
export async function sweepStores(
  stores: readonly StorePool[],
  options: SweepOptions,
): Promise<SweepResult> {
  const batchSize = batchSizeOption(options.batchSize)
  const perStore = await Promise.all(
    stores.map(async (store) => {
      let deleted = 0
      if (store.circuit.state !== 'up')
        return { storeId: store.id, deleted, error: 'store is down' }
      try {
        for (;;) {
          const count = await store.sweepExpired(batchSize)
          deleted += count
          options.onProgress?.({ storeId: store.id, deleted })
          if (count < batchSize) return { storeId: store.id, deleted }
        }
      } catch (error) {
        return { storeId: store.id, deleted, error: errorSummary(error as Error) }
      }
    }),
  )
  return { deleted: perStore.reduce((sum, store) => sum + store.deleted, 0), stores: perStore }
}

/**
 * Runs a sweep every `intervalSeconds` (±20%), one at a time, on a timer that never keeps
 * the process alive.
 */
export class BackgroundSweeper {
  readonly #intervalMillis: number
  readonly #sweep: () => Promise<unknown>
  #timer: NodeJS.Timeout | undefined
  #running: Promise<unknown> | undefined
  #stopped = false

  constructor(intervalSeconds: number, sweep: () => Promise<unknown>) {
    this.#intervalMillis = intervalSeconds * 1000
    this.#sweep = sweep
  }

  start(): void {
    if (this.#intervalMillis === 0 || this.#stopped) return
    const jitter = 0.8 + Math.random() * 0.4
    this.#timer = setTimeout(
      () => {
        this.#running = this.#sweep()
          .catch(() => {})
          .finally(() => {
            this.#running = undefined
            this.start()
          })
      },
      Math.round(this.#intervalMillis * jitter),
    )
    this.#timer.unref()
  }

  /** Stops the timer; resolves once a sweep in progress has finished. */
  async stop(): Promise<void> {
    this.#stopped = true
    clearTimeout(this.#timer)
    await this.#running
  }
}
