import { StoreTimeoutError } from './errors.js'
import type { DeadlineTracker, PendingStatement } from './deadlines.js'

/** A read waiting for a batch. */
interface QueuedRead<T> {
  sessionId: string
  resolve(value: T | null): void
  reject(error: unknown): void
  pending: PendingStatement
  settled: boolean
}

/** How the batcher talks to its store. */
export interface BatchSource<T> {
  /** One id: the plain single-row statement. */
  readOne(sessionId: string): Promise<T | null>
  /** Several ids in one statement; absent ids have no entry. */
  readMany(sessionIds: readonly string[]): Promise<Map<string, T>>
}

/**
 * Coalesces concurrent reads of one store: up to `maxInFlight` statements run at once; a read
 * that arrives while they are all busy waits in a queue, and when a statement completes the
 * queue leaves as one `WHERE id IN (...)` of at most `maxBatch` ids. A lone read never waits
 * (no timer is involved), so latency at low load is that of a plain read. Each read keeps its
 * own deadline and its own error: a failed batch fails each of its reads, which then fail over
 * one by one as they would have alone.
 */
export class ReadBatcher<T> {
  readonly #source: BatchSource<T>
  readonly #deadlines: DeadlineTracker
  readonly #timeoutMillis: number
  readonly #storeId: string
  readonly #maxInFlight: number
  readonly #maxBatch: number
  readonly #queue: QueuedRead<T>[] = []
  #inFlight = 0

  constructor(
    storeId: string,
    source: BatchSource<T>,
    deadlines: DeadlineTracker,
    options: { timeoutMillis: number; maxInFlight: number; maxBatch: number },
  ) {
    this.#storeId = storeId
    this.#source = source
    this.#deadlines = deadlines
    this.#timeoutMillis = options.timeoutMillis
    this.#maxInFlight = options.maxInFlight
    this.#maxBatch = options.maxBatch
  }

  read(sessionId: string): Promise<T | null> {
    if (this.#inFlight < this.#maxInFlight && this.#queue.length === 0) {
      this.#inFlight++
      return this.#source.readOne(sessionId).finally(() => this.#done())
    }
    return new Promise<T | null>((resolve, reject) => {
      const queued: QueuedRead<T> = {
        sessionId,
        resolve,
        reject,
        settled: false,
        pending: {
          deadline: performance.now() + this.#timeoutMillis,
          expire: () => {
            queued.settled = true
            reject(new StoreTimeoutError(this.#storeId, this.#timeoutMillis))
          },
        },
      }
      this.#deadlines.add(queued.pending)
      this.#queue.push(queued)
    })
  }

  #done(): void {
    this.#inFlight--
    this.#flush()
  }

  #flush(): void {
    while (this.#inFlight < this.#maxInFlight && this.#queue.length > 0) {
      const batch = this.#queue.splice(0, this.#maxBatch).filter((queued) => !queued.settled)
      if (batch.length === 0) continue
      this.#inFlight++
      const ids = [...new Set(batch.map((queued) => queued.sessionId))]
      const settle = (queued: QueuedRead<T>): boolean => {
        this.#deadlines.delete(queued.pending)
        if (queued.settled) return false
        queued.settled = true
        return true
      }
      this.#source
        .readMany(ids)
        .then(
          (found) => {
            for (const queued of batch)
              if (settle(queued)) queued.resolve(found.get(queued.sessionId) ?? null)
          },
          (error: unknown) => {
            for (const queued of batch) if (settle(queued)) queued.reject(error)
          },
        )
        .finally(() => this.#done())
    }
  }
}
