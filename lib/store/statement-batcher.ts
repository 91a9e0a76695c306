/** Coalesces concurrent requests to one store into batch statements. */
import { StoreDownError, StoreTimeoutError } from '../errors.js'
import type { DeadlineTracker, PendingStatement } from './deadlines.js'

/** A request waiting for a batch. */
interface Queued<I, O> {
  item: I
  resolve(value: O): void
  reject(error: unknown): void
  pending: PendingStatement
  settled: boolean
}

/** How a batcher sends requests to its store. */
export interface BatchRunner<I, O> {
  /** One request: the plain single-row statement. */
  one(item: I): Promise<O>
  /** Several requests in one statement (or two); one result per item, in order. */
  many(items: readonly I[]): Promise<O[]>
  /** Bytes an item adds to a batch statement (to keep statements under the packet limit). */
  size?(item: I): number
  /** Whether the store may be sent statements (its circuit is closed). */
  available(): boolean
}

/** Limits of a {@link StatementBatcher}. */
export interface BatcherLimits {
  timeoutMillis: number
  /** Statements of this batcher running at once on the store. */
  maxInFlight: number
  maxBatch: number
  /** Bytes per batch statement at most (with {@link BatchRunner.size}). */
  maxBatchBytes: number
}

/**
 * Statements of one batcher running at once, rows and bytes per batch statement. Under load a
 * batcher sends one batch at a time (the queue leaves when every statement is back), and the
 * second slot lets a request that finds nothing queued go at once beside a lone one (not
 * beside a batch, which means load). More slots only split the same load into smaller
 * statements, each paying its own round trip, parse and socket write: side by side on 3 local
 * stores (2 cores), 2 slots instead of 4 gave 1.2-1.45x the reads and writes per second from
 * 16 to 256 in flight, and waiting for every statement before sending the queue another
 * 1.03-1.12x, and keeping lone requests from running beside a batch 1.04-1.18x at 16 and 64
 * in flight, with the same figures at 2 in flight (docs/performance.md).
 */
export const STORE_BATCH_LIMITS: Omit<BatcherLimits, 'timeoutMillis'> = {
  maxInFlight: 2,
  maxBatch: 100,
  maxBatchBytes: 4 * 1024 * 1024,
}

/**
 * Coalesces concurrent requests to one store: up to `maxInFlight` statements run at once; a
 * request that arrives while they are all busy, or while others wait, waits in a queue, and
 * once every running statement is back the queue leaves as one batch statement (several when
 * it holds more than `maxBatch` rows); when the last one back was a batch, at the end of that
 * turn of the event loop (see #holdUntilNextTurn). A request that finds nothing queued, a
 * statement slot free and no batch running or just back never waits (no timer is involved),
 * so latency at low load is that of a plain statement. Each request keeps its own deadline and
 * its own error: a failed batch fails each of its requests, which then fail over one by one as
 * they would have alone.
 */
export class StatementBatcher<I, O> {
  readonly #storeId: string
  readonly #runner: BatchRunner<I, O>
  readonly #deadlines: DeadlineTracker
  readonly #limits: BatcherLimits
  readonly #queue: Queued<I, O>[] = []
  #inFlight = 0
  /** Running statements that carry more than one request. */
  #batchesInFlight = 0
  /** A batch came back this turn of the event loop: its callers' next requests queue. */
  #batchJustBack = false

  constructor(
    storeId: string,
    runner: BatchRunner<I, O>,
    deadlines: DeadlineTracker,
    limits: BatcherLimits,
  ) {
    this.#storeId = storeId
    this.#runner = runner
    this.#deadlines = deadlines
    this.#limits = limits
  }

  submit(item: I): Promise<O> {
    // A store out of service: the runner's own statement refuses at once, where a queue would
    // wait behind statements that may each take a whole timeout.
    if (!this.#runner.available() || (this.#queue.length === 0 && this.#mayGoAlone())) {
      this.#inFlight++
      // then() rather than finally(): one promise less on every statement.
      return this.#runner.one(item).then(
        (result) => {
          this.#done()
          return result
        },
        (error: unknown) => {
          this.#done()
          throw error
        },
      )
    }
    return new Promise<O>((resolve, reject) => {
      const queued: Queued<I, O> = {
        item,
        resolve,
        reject,
        settled: false,
        pending: {
          deadline: performance.now() + this.#limits.timeoutMillis,
          untracked: true,
          expire: (lateByMillis: number) => {
            queued.settled = true
            reject(new StoreTimeoutError(this.#storeId, this.#limits.timeoutMillis, lateByMillis))
          },
        },
      }
      this.#deadlines.add(queued.pending)
      this.#queue.push(queued)
    })
  }

  /**
   * Whether a request that finds nothing queued goes at once: when nothing runs, or beside
   * requests that also went alone. Beside a batch, or in the turn one came back, it waits for
   * the next one: a batch means load, under which one more statement costs more than the wait.
   */
  #mayGoAlone(): boolean {
    return (
      !this.#batchJustBack &&
      (this.#inFlight === 0 ||
        (this.#inFlight < this.#limits.maxInFlight && this.#batchesInFlight === 0))
    )
  }

  #done(): void {
    this.#inFlight--
    // Queued requests leave once every statement is back, together: sending them while another
    // statement still runs would split the same load into smaller statements, each paying its
    // own round trip. (A request that finds nothing queued may still go beside a lone one.)
    // After a batch they wait for the rest of the turn as well (#holdUntilNextTurn).
    if ((this.#inFlight > 0 || this.#batchJustBack) && this.#runner.available()) return
    this.#flush()
  }

  /**
   * A batch just came back: its callers' next requests arrive a few microtasks later. Sent at
   * once, the queue would leave without them, and they would go alone or as a second, smaller
   * batch; instead the queue and they wait until this turn's microtasks are done, and leave as
   * one statement. Timed as whole processes against builds that sent them apart (3 local
   * stores, docs/performance.md): holding the callers' requests, 0.90x the CPU of reads at 16
   * and at 64 in flight and 0.91x at 16 for writes; holding the queue with them, a further
   * 0.78-0.89x at 16 and 0.88-0.94x at 64 for reads, 0.92x and 0.96x for writes, with a lower
   * p50; at 1 to 4 in flight, where batches are rare, the same.
   */
  #holdUntilNextTurn(): void {
    if (this.#batchJustBack) return
    this.#batchJustBack = true
    setImmediate(() => {
      this.#batchJustBack = false
      if (this.#inFlight === 0) this.#flush()
    })
  }

  #nextBatch(): Queued<I, O>[] {
    const batch: Queued<I, O>[] = []
    let bytes = 0
    while (this.#queue.length > 0 && batch.length < this.#limits.maxBatch) {
      const next = this.#queue[0] as Queued<I, O>
      const size = this.#runner.size?.(next.item) ?? 0
      if (batch.length > 0 && bytes + size > this.#limits.maxBatchBytes) break
      this.#queue.shift()
      if (next.settled) continue
      batch.push(next)
      bytes += size
    }
    return batch
  }

  #flush(): void {
    if (!this.#runner.available()) {
      // The store went down while these waited: fail them at once so they fail over now.
      for (const queued of this.#queue.splice(0)) {
        this.#deadlines.delete(queued.pending)
        if (!queued.settled) {
          queued.settled = true
          queued.reject(new StoreDownError(this.#storeId))
        }
      }
      return
    }
    while (this.#inFlight < this.#limits.maxInFlight && this.#queue.length > 0) {
      const batch = this.#nextBatch()
      if (batch.length === 0) continue
      this.#inFlight++
      const carriesBatch = batch.length > 1
      if (carriesBatch) this.#batchesInFlight++
      const settle = (queued: Queued<I, O>): boolean => {
        this.#deadlines.delete(queued.pending)
        if (queued.settled) return false
        queued.settled = true
        return true
      }
      const run =
        batch.length === 1
          ? this.#runner.one((batch[0] as Queued<I, O>).item).then((result) => [result])
          : this.#runner.many(batch.map((queued) => queued.item))
      run
        .then(
          (results) => {
            batch.forEach((queued, index) => {
              if (settle(queued)) queued.resolve(results[index] as O)
            })
          },
          (error: unknown) => {
            for (const queued of batch) if (settle(queued)) queued.reject(error)
          },
        )
        .finally(() => {
          if (carriesBatch) {
            this.#batchesInFlight--
            this.#holdUntilNextTurn()
          }
          this.#done()
        })
    }
  }
}
