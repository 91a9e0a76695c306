/** A concurrent workload of reads, writes, updates, creates and destroys, checked by the consistency model. */
import type { SessionManager } from '../../session-manager.js'
import { CheckedFailure, CheckedOperations, type WorkloadOptions } from './checked-operations.js'
import { ConsistencyModel } from './consistency-model.js'
import type { ConsistencyCounts, ReadCheck } from './consistency-model.js'
import { LatencyHistogram } from './latency-histogram.js'
import { retryFor, sleep } from './waits.js'

/** Options of {@link SessionWorkload.run}. */
export interface WorkloadRunOptions {
  /** How long the workers run. */
  seconds: number
  /** Operations in flight at once. */
  inFlight: number
  /**
   * Runs alongside the workers (a fault schedule, say); gets the time the workers stop, in ms
   * since the epoch, and a way to move it later. {@link SessionWorkload.run} resolves once it
   * and the workers are done.
   */
  alongside?: (deadline: number, extendTo: (deadline: number) => void) => Promise<void>
  /** Called about once a second. */
  onProgress?: (progress: WorkloadProgress) => void
}

/** Where a workload stands; passed to {@link WorkloadRunOptions.onProgress}. */
export interface WorkloadProgress extends ConsistencyCounts {
  elapsedSeconds: number
  /** Operations attempted, failed ones included. */
  operations: number
  /** updateSession calls that resolved having written (see {@link WorkloadOptions.updates}). */
  updates: number
  /** setSessionTimeout calls that resolved true. */
  timeoutsSet: number
  /** Operations that rejected (a failed write is not acknowledged, so it cannot be lost). */
  failedRequests: number
  /** The failed requests by error code (`other` for an error without one). */
  failuresByCode: Record<string, number>
  /** p99 latency of the operations that ended since the last progress, ms; null if none did. */
  recentP99Millis: number | null
}

/** Latencies and failures of the requests one app server (one manager) served. */
export interface AppServerFigures {
  /** 'app server 1' for the first manager, and so on. */
  appServer: string
  reads: number
  /** Writes, creates and destroys. */
  writes: number
  failedRequests: number
  /** Failed requests included: a read that fails after a timeout is slow for its user too. */
  readP99Millis: number
  readMaxMillis: number
  writeP99Millis: number
  writeMaxMillis: number
}

/** Options of {@link SessionWorkload.verify}. */
export interface VerifyOptions {
  /**
   * How long reads that fail (a store still slow after a fault, a starved machine) are retried,
   * for the whole verification; sessions still unread then count as unverified.
   * @default 120000
   */
  timeoutMillis?: number
}

/** What one app server's requests took. */
interface AppServerTally {
  reads: LatencyHistogram
  writes: LatencyHistogram
  failedRequests: number
}

/**
 * An app-like load on a cluster, checked as it goes: creates (5 %), reads (55 %), writes (37 %;
 * with {@link WorkloadOptions} some are updates and timeouts set) and destroys (3 %) of random
 * sessions through several managers (app servers sharing the stores; each request goes to one
 * at random), every read compared by a {@link ConsistencyModel} with what was acknowledged. One operation at a time per session, so
 * the model is exact.
 *
 * A read that answers "no session" for a session that should exist is re-read (through each
 * app server in turn, with backoff) until a read finds it or the run ends, and no other
 * operation touches the session meanwhile: a write would make it impossible to tell a
 * transient null read from a lost write.
 *
 * @example
 * const workload = new SessionWorkload(managers)
 * await workload.populate(1000)
 * await workload.run({ seconds: 10, inFlight: 64 })
 * await workload.verify(freshManager)
 * workload.model.counts // { acknowledgedWrites, lostWrites: 0, staleReads: 0, ... }
 */
export class SessionWorkload {
  readonly model = new ConsistencyModel()
  readonly #managers: SessionManager[]
  readonly #operations: CheckedOperations
  readonly #ids: string[] = []
  /** Operations started and not finished (see {@link replaceManagers}). */
  #operationsInFlight = 0
  #drained: (() => void) | undefined
  /** Set while the managers are being replaced: workers wait on it before their next operation. */
  #paused: Promise<void> | undefined
  /** Sessions with an operation in flight. */
  readonly #busy = new Set<string>()
  /** Sessions a read found missing, being re-read. */
  readonly #suspect = new Set<string>()
  readonly #rereads = new Set<Promise<void>>()
  /** Per manager index. */
  readonly #appServers: AppServerTally[] = []
  #operationCount = 0
  #failedRequests = 0
  readonly #failuresByCode = new Map<string, number>()
  #elapsedSeconds = 0
  /** Latencies since the last progress report (the per-second p99 of the demo's timeline). */
  #recent = new LatencyHistogram()
  #unverified = 0
  /** When the current run's workers stop; re-reads stop then too. */
  #deadline = 0

  constructor(managers: readonly SessionManager[], options: WorkloadOptions = {}) {
    if (managers.length === 0) throw new TypeError('managers must hold at least one manager')
    this.#managers = [...managers]
    this.#operations = new CheckedOperations(this.model, options)
  }

  /**
   * Replaces the managers (app servers) in one step: new operations wait, the ones in flight
   * (and re-reads) finish through the old managers, then `next` take every request. Models a
   * configuration deployed to every app server at the same moment, no request of the old one
   * outliving it. Resolves the old managers (still open).
   */
  async replaceManagers(next: readonly SessionManager[]): Promise<SessionManager[]> {
    if (next.length === 0) throw new TypeError('next must hold at least one manager')
    let resume = (): void => {}
    this.#paused = new Promise((resolve) => (resume = resolve))
    try {
      if (this.#operationsInFlight > 0) {
        await new Promise<void>((resolve) => (this.#drained = resolve))
      }
      await Promise.all(this.#rereads)
      return this.#managers.splice(0, this.#managers.length, ...next)
    } finally {
      this.#drained = undefined
      this.#paused = undefined
      resume()
    }
  }

  /**
   * Creates `count` sessions through the first manager, 100 at a time. A create that fails is
   * retried with backoff for up to `timeoutMillis` (a starved machine times out now and then).
   */
  async populate(
    count: number,
    onProgress?: (created: number) => void,
    timeoutMillis = 120_000,
  ): Promise<void> {
    const manager = this.#managers[0] as SessionManager
    for (let done = 0; done < count; done += 100) {
      const created = await Promise.all(
        Array.from({ length: Math.min(100, count - done) }, () =>
          // A failed create leaves at most a session nobody knows of: the retry makes a new id.
          retryFor(timeoutMillis, () => this.#operations.create(manager)),
        ),
      )
      this.#ids.push(...created)
      onProgress?.(done + created.length)
    }
  }

  /** Runs `inFlight` workers for `seconds`, and `alongside` with them. */
  async run(options: WorkloadRunOptions): Promise<{ elapsedSeconds: number }> {
    const started = Date.now()
    this.#deadline = started + options.seconds * 1000
    const extendTo = (deadline: number): void => {
      this.#deadline = Math.max(this.#deadline, deadline)
    }
    const worker = async (): Promise<void> => {
      while (Date.now() < this.#deadline) {
        if (this.#paused !== undefined) await this.#paused
        this.#operationsInFlight++
        let served: boolean
        const started = performance.now()
        try {
          served = await this.#operation(Math.floor(Math.random() * this.#managers.length))
        } finally {
          this.#recent.record(performance.now() - started)
          if (--this.#operationsInFlight === 0) this.#drained?.()
        }
        this.#operationCount++
        // With every store down an operation fails without I/O; yield so that timers and
        // signals still run.
        if (!served) await new Promise((resolve) => setImmediate(resolve))
      }
    }
    const ticker = setInterval(() => {
      this.#elapsedSeconds = (Date.now() - started) / 1000
      const recent = this.#recent
      this.#recent = new LatencyHistogram()
      options.onProgress?.({
        ...this.progress,
        recentP99Millis: recent.count === 0 ? null : round(recent.percentile(0.99)),
      })
    }, 1000)
    try {
      await Promise.all([
        options.alongside?.(this.#deadline, extendTo),
        ...Array.from({ length: options.inFlight }, worker),
      ])
      // They stop at the deadline; one may still be waiting for its read.
      await Promise.all(this.#rereads)
    } finally {
      clearInterval(ticker)
    }
    this.#elapsedSeconds = (Date.now() - started) / 1000
    return { elapsedSeconds: this.#elapsedSeconds }
  }

  /**
   * Reads every session the workload knows back through `manager` (best one started after the
   * run) and checks each against the model; then every "no session" that no read contradicted
   * counts as a lost write. Resolves how many sessions were read.
   */
  async verify(manager: SessionManager, options: VerifyOptions = {}): Promise<number> {
    const timeoutMillis = options.timeoutMillis ?? 120_000
    const deadline = Date.now() + timeoutMillis
    const ids = this.model.ids()
    let verified = 0
    for (let i = 0; i < ids.length; i += 200) {
      await Promise.all(
        ids.slice(i, i + 200).map(async (id) => {
          let data: unknown
          try {
            data = await retryFor(Math.max(0, deadline - Date.now()), () => manager.readSession(id))
          } catch {
            this.#unverified++
            return
          }
          this.model.read(id, data, 'verification')
          verified++
        }),
      )
    }
    this.model.settle()
    return verified
  }

  /** Sessions {@link verify} could not read within its time. */
  get unverifiedSessions(): number {
    return this.#unverified
  }

  /** The figures so far. */
  get progress(): WorkloadProgress {
    return {
      elapsedSeconds: this.#elapsedSeconds,
      operations: this.#operationCount,
      updates: this.#operations.updates,
      timeoutsSet: this.#operations.timeoutsSet,
      failedRequests: this.#failedRequests,
      failuresByCode: Object.fromEntries(this.#failuresByCode),
      recentP99Millis: null,
      ...this.model.counts,
    }
  }

  /** Latencies (p99 and max, failed requests included) and failures per app server. */
  appServers(): AppServerFigures[] {
    return this.#appServers.map((tally, index) => ({
      appServer: appServerName(index),
      reads: tally.reads.count,
      writes: tally.writes.count,
      failedRequests: tally.failedRequests,
      readP99Millis: round(tally.reads.percentile(0.99)),
      readMaxMillis: round(tally.reads.max),
      writeP99Millis: round(tally.writes.percentile(0.99)),
      writeMaxMillis: round(tally.writes.max),
    }))
  }

  /** One random operation through the manager at `index`; false when it failed. */
  async #operation(index: number): Promise<boolean> {
    const manager = this.#managers[index] as SessionManager
    const appServer = appServerName(index)
    const tally = this.#tally(index)
    const roll = Math.random()
    const started = performance.now()
    const operations = this.#operations
    if (roll < 0.05) {
      try {
        this.#ids.push(await operations.create(manager))
        return true
      } catch (error) {
        return this.#failed(tally, error)
      } finally {
        tally.writes.record(performance.now() - started)
      }
    }
    let id = pick(this.#ids)
    for (let tries = 0; this.#taken(id) && tries < 10; tries++) id = pick(this.#ids)
    if (this.#taken(id)) return true
    this.#busy.add(id)
    const histogram = roll < 0.6 ? tally.reads : tally.writes
    let check: ReadCheck = 'ok'
    try {
      if (roll < 0.6) check = await operations.read(manager, id, appServer)
      else if (roll < 0.68 && operations.makesUpdates) {
        check = await operations.update(manager, id, appServer)
      } else if (roll < 0.71 && operations.isShortLived(id)) {
        check = await operations.setTimeout(manager, id, appServer)
      } else if (roll < 0.97) await operations.write(manager, id, appServer)
      else await operations.destroy(manager, id)
      return true
    } catch (error) {
      if (error instanceof CheckedFailure) check = error.check
      return this.#failed(tally, error instanceof CheckedFailure ? error.cause : error)
    } finally {
      histogram.record(performance.now() - started)
      this.#busy.delete(id)
      if (check === 'missing') this.#reread(id)
    }
  }

  #failed(tally: AppServerTally, error: unknown): false {
    tally.failedRequests++
    this.#failedRequests++
    const code = failureCode(error)
    this.#failuresByCode.set(code, (this.#failuresByCode.get(code) ?? 0) + 1)
    return false
  }

  #taken(id: string): boolean {
    return this.#busy.has(id) || this.#suspect.has(id)
  }

  #tally(index: number): AppServerTally {
    let tally = this.#appServers[index]
    if (tally === undefined) {
      // Fill any gap so that the list stays indexed by manager.
      for (let i = this.#appServers.length; i <= index; i++) {
        this.#appServers[i] = {
          reads: new LatencyHistogram(),
          writes: new LatencyHistogram(),
          failedRequests: 0,
        }
      }
      tally = this.#appServers[index] as AppServerTally
    }
    return tally
  }

  /**
   * Re-reads a session a read found missing, through each app server in turn, until a read
   * finds it or the run ends (the final verification settles it then). The session takes no
   * other operation meanwhile.
   */
  #reread(id: string): void {
    if (this.#suspect.has(id)) return
    this.#suspect.add(id)
    const reread = (async () => {
      let wait = 100
      for (let attempt = 0; this.model.isMissing(id) && Date.now() < this.#deadline; attempt++) {
        await sleep(Math.min(wait, Math.max(0, this.#deadline - Date.now())))
        wait = Math.min(wait * 2, 2000)
        const index = attempt % this.#managers.length
        const manager = this.#managers[index] as SessionManager
        const reader = `${appServerName(index)} (re-read)`
        // A failed re-read tells nothing new: the session stays missing until one finds it.
        await manager.readSession(id).then(
          (data) => this.model.read(id, data, reader),
          () => undefined,
        )
      }
    })().finally(() => {
      this.#suspect.delete(id)
      this.#rereads.delete(reread)
    })
    this.#rereads.add(reread)
  }
}

/** How reports name the manager at `index` of a workload's list. */
export function appServerName(index: number): string {
  return `app server ${index + 1}`
}

function pick<T>(items: readonly T[]): T {
  return items[Math.floor(Math.random() * items.length)] as T
}

function round(millis: number): number {
  return Math.round(millis)
}

/**
 * A failed request's error code: the library's own (a few dozen at most), else `other`, so
 * that the tally stays small whatever fails.
 */
function failureCode(error: unknown): string {
  const code = (error as { code?: unknown } | null)?.code
  return typeof code === 'string' && /^[A-Z][A-Z_]{0,40}$/.test(code) ? code : 'other'
}
