/** A concurrent workload of reads, writes, creates and destroys, checked by the consistency model. */
import type { SessionManager } from '../../session-manager.js'
import { ConsistencyModel, type ConsistencyCounts } from './consistency-model.js'

/** Options of {@link SessionWorkload.run}. */
export interface WorkloadRunOptions {
  /** How long the workers run. */
  seconds: number
  /** Operations in flight at once. */
  inFlight: number
  /**
   * Runs alongside the workers (a fault schedule, say); gets the time the workers stop, in ms
   * since the epoch. {@link SessionWorkload.run} resolves once it and the workers are done.
   */
  alongside?: (deadline: number) => Promise<void>
  /** Called about once a second. */
  onProgress?: (progress: WorkloadProgress) => void
}

/** Where a workload stands; passed to {@link WorkloadRunOptions.onProgress}. */
export interface WorkloadProgress extends ConsistencyCounts {
  elapsedSeconds: number
  /** Operations attempted, failed ones included. */
  operations: number
  /** Operations that rejected (a failed write is not acknowledged, so it cannot be lost). */
  failedRequests: number
}

/**
 * An app-like load on a cluster, checked as it goes: creates (5 %), reads (55 %), writes (37 %)
 * and destroys (3 %) of random sessions through several managers (app servers sharing the
 * stores), every read compared by a {@link ConsistencyModel} with what was acknowledged. One
 * operation at a time per session, so the model is exact.
 *
 * @example
 * const workload = new SessionWorkload(managers)
 * await workload.populate(1000)
 * await workload.run({ seconds: 10, inFlight: 64 })
 * await workload.verify(freshManager)
 * workload.model.counts // { acknowledgedWrites, lostWrites: 0, staleReads: 0, resurrections: 0 }
 */
export class SessionWorkload {
  readonly model = new ConsistencyModel()
  readonly #managers: readonly SessionManager[]
  readonly #ids: string[] = []
  /** Sessions with an operation in flight. */
  readonly #busy = new Set<string>()
  #sequence = 0
  #operations = 0
  #failedRequests = 0
  #elapsedSeconds = 0

  constructor(managers: readonly SessionManager[]) {
    if (managers.length === 0) throw new TypeError('managers must hold at least one manager')
    this.#managers = managers
  }

  /** Creates `count` sessions through the first manager, 100 at a time. */
  async populate(count: number, onProgress?: (created: number) => void): Promise<void> {
    const manager = this.#managers[0] as SessionManager
    for (let done = 0; done < count; done += 100) {
      const created = await Promise.all(
        Array.from({ length: Math.min(100, count - done) }, async () => {
          const data = { n: ++this.#sequence }
          const id = await manager.createSession(data)
          this.model.written(id, data)
          return id
        }),
      )
      this.#ids.push(...created)
      onProgress?.(done + created.length)
    }
  }

  /** Runs `inFlight` workers for `seconds`, and `alongside` with them. */
  async run(options: WorkloadRunOptions): Promise<{ elapsedSeconds: number }> {
    const started = Date.now()
    const deadline = started + options.seconds * 1000
    const worker = async (): Promise<void> => {
      while (Date.now() < deadline) {
        try {
          await this.#operation(pick(this.#managers))
        } catch {
          this.#failedRequests++
          // With every store down an operation fails without I/O; yield so that timers and
          // signals still run.
          await new Promise((resolve) => setImmediate(resolve))
        }
        this.#operations++
      }
    }
    const ticker = setInterval(() => {
      this.#elapsedSeconds = (Date.now() - started) / 1000
      options.onProgress?.(this.progress)
    }, 1000)
    try {
      await Promise.all([
        options.alongside?.(deadline),
        ...Array.from({ length: options.inFlight }, worker),
      ])
    } finally {
      clearInterval(ticker)
    }
    this.#elapsedSeconds = (Date.now() - started) / 1000
    return { elapsedSeconds: this.#elapsedSeconds }
  }

  /**
   * Reads every session the workload knows back through `manager` (best one started after the
   * run) and checks each against the model. Resolves how many were read.
   */
  async verify(manager: SessionManager): Promise<number> {
    const ids = this.model.ids()
    for (let i = 0; i < ids.length; i += 200) {
      await Promise.all(
        ids.slice(i, i + 200).map(async (id) => this.model.read(id, await manager.readSession(id))),
      )
    }
    return ids.length
  }

  /** The figures so far. */
  get progress(): WorkloadProgress {
    return {
      elapsedSeconds: this.#elapsedSeconds,
      operations: this.#operations,
      failedRequests: this.#failedRequests,
      ...this.model.counts,
    }
  }

  async #operation(manager: SessionManager): Promise<void> {
    const { model } = this
    const roll = Math.random()
    if (roll < 0.05) {
      const data = { n: ++this.#sequence }
      const id = await manager.createSession(data).catch(() => null)
      if (id === null) this.#failedRequests++
      else {
        model.written(id, data)
        this.#ids.push(id)
      }
      return
    }
    let id = pick(this.#ids)
    for (let tries = 0; this.#busy.has(id) && tries < 10; tries++) id = pick(this.#ids)
    if (this.#busy.has(id)) return
    this.#busy.add(id)
    try {
      if (roll < 0.6) {
        model.read(id, await manager.readSession(id))
      } else if (roll < 0.97) {
        const data = { n: ++this.#sequence }
        try {
          await manager.writeSession(id, data)
          model.written(id, data)
        } catch (error) {
          model.writeFailed(id, data)
          throw error
        }
      } else {
        try {
          await manager.destroySession(id)
          model.destroyed(id)
        } catch (error) {
          model.destroyFailed(id)
          throw error
        }
      }
    } finally {
      this.#busy.delete(id)
    }
  }
}

/** Waits until every manager has the store up and caught up (its missed writes replayed). */
export async function waitUntilServing(
  managers: readonly SessionManager[],
  storeId: string,
  timeoutMillis: number,
): Promise<void> {
  const deadline = Date.now() + timeoutMillis
  const serving = (manager: SessionManager): boolean =>
    manager.stats().stores.some((s) => s.id === storeId && s.state === 'up' && !s.behind)
  while (!managers.every(serving)) {
    if (Date.now() > deadline) throw new Error(`store ${storeId} did not come back into service`)
    await sleep(50)
  }
}

export function sleep(millis: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, millis))
}

function pick<T>(items: readonly T[]): T {
  return items[Math.floor(Math.random() * items.length)] as T
}
