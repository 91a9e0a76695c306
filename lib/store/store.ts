/** One MySQL store: what can be asked of it, batched where it pays, with its standing kept up to date. */
import { inspect } from 'node:util'
import type { Clock } from '../clock.js'
import { StoreDownError, WriteOutcomeUnknownError } from '../errors.js'
import { StoreStanding, type StandingListener, type StoreState } from './standing.js'
import type { ResolvedOptions } from '../options.js'
import type { ResolvedStore } from '../store-options.js'
import { applySchema } from '../schema.js'
import { StoreConnection, type Protocol } from './connection.js'
import { hedgeDelayMillis, LatencyWindow } from './latency.js'
import { isAbsentError, isUnreachableError } from './retry.js'
import { inBatchOrder, unmatchedCompareAndSet } from './batch-outcomes.js'
import type { RequestObserver } from '../metrics/session-metrics.js'
import type { LocalSlowness } from './local-slowness.js'
import type { LockAndHintStatements } from './lock-and-hint-statements.js'
import { STORE_BATCH_LIMITS, StatementBatcher } from './statement-batcher.js'
import type { BatchRunner } from './statement-batcher.js'
import type { StaleAnnouncement, StaleStatements } from './stale-statements.js'
import type { CopyDigest, ListedRow, SessionWrite, StoredCopy, WriteOutcome } from './rows.js'
import { RESENT_FOUND_OWN_VERSION, ROW_GONE } from './rows.js'
import type { SessionStatements, Statement } from './statements.js'
import type { UpkeepStatements } from './upkeep-statements.js'

/** Every statement a store is sent, built once per table name. */
export type StoreStatements = SessionStatements &
  UpkeepStatements &
  LockAndHintStatements &
  StaleStatements

/** Counters of one store, as `SessionManager.stats` reports them. */
export interface StoreCounters {
  operations: number
  errors: number
}

/** Per-store figures from {@link SessionManager.stats}. */
export interface StoreStats extends StoreCounters {
  id: string
  /** `down`: skipped by requests until a health probe succeeds. */
  state: StoreState
  /** True while the store has missed writes not yet replayed to it; it serves no reads meanwhile. */
  behind: boolean
  /** Latency of this store's statements over the last 1,024, null before any. */
  latency: { p50Millis: number; p99Millis: number } | null
}

type WriteBatcher = StatementBatcher<SessionWrite, WriteOutcome>

/** Past every expiry: {@link Store.removeCopy} then removes a copy whatever its expiry. */
const ANY_EXPIRY = Number.MAX_SAFE_INTEGER
/**
 * How long creating or upgrading the tables may take per statement: DDL waits for metadata
 * locks and syncs files, far beyond what a request may take (`queryTimeoutMillis`).
 */
const SCHEMA_DEADLINE = { millis: 30_000, name: 'the schema deadline, 30 s' }

/** The id the data-path probe reads: never a session's (ids are at least 16 characters). */
const PROBE_SESSION_ID = 'probe'

/** A read's request to the batcher: a session's whole copy, or only its digest. */
interface Lookup {
  sessionId: string
  whole: boolean
}

/**
 * One store. Placement and failover live above it; this class talks to one store only: each
 * request is counted, timed and reported to the store's {@link StoreStanding}, and a request
 * never goes to a store that is down (it fails over at once instead of paying a timeout).
 */
export class Store {
  readonly id: string
  readonly standing: StoreStanding
  readonly counters: StoreCounters = { operations: 0, errors: 0 }
  readonly latency = new LatencyWindow()
  /** Told of every request: the manager's metrics (null until they are attached). */
  observer: RequestObserver | null = null
  /** Each statement's name (its key in the statements), which the metrics label requests with. */
  readonly #statementNames: Map<unknown, string>
  readonly #connection: StoreConnection
  readonly #statements: StoreStatements
  readonly #table: string
  readonly #clock: Clock
  readonly #slowness: LocalSlowness
  readonly #defaultTtlSeconds: number
  /**
   * Coalesce concurrent reads (copies and digests, in one statement: every quorum read asks one
   * store for the copy and another for a digest) and plain writes, unless `batching` is off.
   */
  readonly #lookups: StatementBatcher<Lookup, StoredCopy | CopyDigest | null> | null
  /** Plain writes, by explicitExpiry (0: false, 1: true), which a batch statement shares. */
  readonly #writes: [WriteBatcher, WriteBatcher] | null

  constructor(
    store: ResolvedStore,
    options: ResolvedOptions,
    statements: StoreStatements,
    listener: StandingListener,
    slowness: LocalSlowness,
  ) {
    this.id = store.id
    this.#slowness = slowness
    this.#statements = statements
    this.#statementNames = new Map(Object.entries(statements).map(([name, st]) => [st, name]))
    this.#table = options.table
    this.#clock = options.clock
    this.#defaultTtlSeconds = options.ttlSeconds
    this.standing = new StoreStanding(options.failThreshold, listener)
    this.#connection = new StoreConnection(store, options)
    const limits = { ...STORE_BATCH_LIMITS, timeoutMillis: options.queryTimeoutMillis }
    const batcher = <I, O>(runner: Omit<BatchRunner<I, O>, 'available'>) =>
      new StatementBatcher<I, O>(
        store.id,
        { ...runner, available: () => this.standing.up },
        this.#connection.deadlines,
        limits,
      )
    this.#lookups = options.batching
      ? batcher({
          one: ({ sessionId, whole }: Lookup) =>
            this.#request(whole ? statements.read : statements.readDigest, sessionId),
          many: (lookups: readonly Lookup[]) => this.#lookUpMany(lookups),
        })
      : null
    const writeBatcher = (): WriteBatcher =>
      batcher({
        one: (write: SessionWrite) => this.#writeOne(write),
        many: (writes: readonly SessionWrite[]) => this.#writeMany(writes),
        size: ({ sessionId, data }: SessionWrite) => data.length + sessionId.length + 64,
      })
    this.#writes = options.batching ? [writeBatcher(), writeBatcher()] : null
  }

  /** The copy stored for `sessionId`, or null when the store has no row. */
  read(sessionId: string): Promise<StoredCopy | null> {
    if (this.#lookups === null) return this.#request(this.#statements.read, sessionId)
    // A whole lookup resolves to a whole copy (see #lookUpMany).
    return this.#lookups.submit({ sessionId, whole: true }) as Promise<StoredCopy | null>
  }

  /** The digest of the copy stored for `sessionId` (no data), or null when there is no row. */
  readDigest(sessionId: string): Promise<CopyDigest | null> {
    if (this.#lookups === null) return this.#request(this.#statements.readDigest, sessionId)
    return this.#lookups.submit({ sessionId, whole: false })
  }

  /**
   * Several lookups in one statement: whole copies for the ids any lookup wants whole (a digest
   * lookup of such an id gets the whole copy, a superset), digests for the rest.
   */
  async #lookUpMany(lookups: readonly Lookup[]): Promise<(StoredCopy | CopyDigest | null)[]> {
    const whole = new Set(lookups.filter((l) => l.whole).map((l) => l.sessionId))
    const digest = new Set(lookups.map((l) => l.sessionId).filter((id) => !whole.has(id)))
    const found: Map<string, StoredCopy | CopyDigest> =
      digest.size === 0
        ? await this.readMany([...whole])
        : whole.size === 0
          ? await this.#request(this.#statements.readDigestMany, [...digest])
          : await this.#request(this.#statements.readCopiesAndDigests, {
              whole: [...whole],
              digest: [...digest],
            })
    return lookups.map((lookup) => found.get(lookup.sessionId) ?? null)
  }

  /** The copies stored for several sessions, by id (absent ids have no row). */
  async readMany(sessionIds: readonly string[]): Promise<Map<string, StoredCopy>> {
    if (sessionIds.length === 0) return new Map()
    return this.#request(this.#statements.readMany, sessionIds)
  }

  /** Upserts a live copy, unless the store holds a tombstone or a version it does not apply over. */
  write(write: SessionWrite): Promise<WriteOutcome> {
    const { expectedVersion, createsAbsent } = write.fields
    // Compare-and-set writes are never batched.
    if (expectedVersion !== undefined && expectedVersion > 0 && !createsAbsent) {
      return this.#compareAndSet(write)
    }
    if (this.#writes === null || expectedVersion !== undefined) return this.#writeOne(write)
    return this.#writes[write.fields.explicitExpiry ? 1 : 0].submit(write)
  }

  /** One write in its own statement. */
  async #writeOne(write: SessionWrite): Promise<WriteOutcome> {
    return this.#settled(await this.#request(this.#statements.write, write), write)
  }

  /**
   * A write's outcome; one sent again that found its own version stored is read back (its row
   * gone by then, whose it was cannot be told: sent yet again, it could meet the same race).
   */
  async #settled(outcome: WriteOutcome | string, write: SessionWrite): Promise<WriteOutcome> {
    if (outcome !== RESENT_FOUND_OWN_VERSION) return outcome as WriteOutcome
    const [readBack] = await this.#request(this.#statements.writtenVersions, [write])
    if (readBack === ROW_GONE) throw new WriteOutcomeUnknownError()
    return readBack as WriteOutcome
  }

  /** A compare-and-set of the live copy at its version; if none matched, the digest tells why. */
  async #compareAndSet(write: SessionWrite): Promise<WriteOutcome> {
    const sent = await this.#request(this.#statements.compareAndSet, write)
    if (sent.matched) return { kind: 'written' }
    const digest = await this.#request(this.#statements.readDigest, write.sessionId)
    return this.#settled(unmatchedCompareAndSet(digest, write, sent.resent), write)
  }

  /**
   * One multi-row upsert, then (unless its OK packet says every row applied, the usual case)
   * the versions it left; not in a transaction, which would cost two more round trips. A write
   * read back as outdated because a newer one landed in between is made again above it (as
   * for any newer version met, write-rules.ts): the two were in flight together, so either
   * order is one a reader may see. A write whose row is gone by then (swept: maybe the
   * tombstone it did not apply over) goes again alone.
   */
  async #writeMany(queued: readonly SessionWrite[]): Promise<WriteOutcome[]> {
    const writes = inBatchOrder(queued)
    const everyRow = await this.#request(this.#statements.writeMany, {
      writes,
      defaultTtlSeconds: this.#defaultTtlSeconds,
    })
    if (everyRow) return queued.map((): WriteOutcome => ({ kind: 'written' }))
    const outcomes = await this.#request(this.#statements.writtenVersions, writes)
    const byWrite = new Map(writes.map((write, index) => [write, outcomes[index]]))
    return Promise.all(
      queued.map((write) => {
        const outcome = byWrite.get(write) as WriteOutcome | typeof ROW_GONE
        return outcome === ROW_GONE ? this.#writeOne(write) : outcome
      }),
    )
  }

  /** Replaces the copy (if any) with a tombstone. */
  destroy(sessionId: string, version: number, expiresAtMillis: number): Promise<void> {
    return this.#request(this.#statements.destroy, { sessionId, version, expiresAtMillis })
  }

  /**
   * Stores `copy` (read elsewhere, maybe expired) unless this store's row is a tombstone or
   * newer; with `overUnreadable`, only over a copy of its version holding those bytes.
   */
  copy(sessionId: string, copy: StoredCopy, overUnreadable?: Buffer): Promise<void> {
    if (overUnreadable === undefined)
      return this.#request(this.#statements.copy, { sessionId, copy })
    const input = { sessionId, copy, unreadable: overUnreadable }
    return this.#request(this.#statements.copyOverUnreadable, input)
  }

  /**
   * Extends a live copy's expiry to `expiresAtMillis` (null: `now` + its per-session timeout,
   * else the manager's); never shortens it, never touches a missing, expired or destroyed
   * session. Resolves whether a copy was there.
   */
  touch(sessionId: string, expiresAtMillis: number | null, now: number): Promise<boolean> {
    return this.#request(this.#statements.touch, {
      sessionId,
      expiresAtMillis,
      defaultTtlSeconds: this.#defaultTtlSeconds,
      now,
    })
  }

  /** Deletes up to `limit` expired rows that no hint or marker for `targets` holds back. */
  sweepExpired(limit: number, targets: readonly string[], graceMillis: number): Promise<number> {
    const expiredBy = this.#clock.now() - graceMillis
    return this.#request(this.#statements.sweep, { expiredBy, limit, targets })
  }

  /** Deletes a live copy older than `version`, or at it expiring by `expiresAtMillis` (or any). */
  removeCopy(sessionId: string, version: number, expiresAtMillis = ANY_EXPIRY): Promise<void> {
    return this.#request(this.#statements.removeCopy, { sessionId, version, expiresAtMillis })
  }

  /** Deletes a tombstone. */
  clearTombstone(sessionId: string): Promise<void> {
    return this.#request(this.#statements.clearTombstone, sessionId)
  }

  /** Up to `limit` session ids after `afterId`, in key order: one page of a full scan. */
  scanIds(afterId: string, limit: number): Promise<string[]> {
    return this.#request(this.#statements.scanIds, { afterId, limit })
  }

  /** Up to `limit` rows after `afterId` in key order (with `withData`, their data too). */
  listPage(afterId: string, limit: number, withData = false): Promise<ListedRow[]> {
    return this.#request(this.#statements.listPage, { afterId, limit, withData })
  }

  /** Ids of rows whose owner column is `owner` (through the owner index). */
  idsByOwner(owner: string): Promise<string[]> {
    return this.#request(this.#statements.byOwner, owner)
  }

  /** Takes or renews the lease lock of `sessionId` with `token`; false if another lease holds it. */
  lock(sessionId: string, token: string, expiresAtMillis: number): Promise<boolean> {
    const now = this.#clock.now()
    return this.#request(this.#statements.lock, { sessionId, token, expiresAtMillis, now })
  }

  /** Releases the lease lock of `sessionId` if `token` still holds it. */
  unlock(sessionId: string, token: string): Promise<void> {
    return this.#request(this.#statements.unlock, { sessionId, token, now: this.#clock.now() })
  }

  /** Records that `targetStoreId` missed a write of `sessionId` at `version` (kept on this store). */
  addHint(targetStoreId: string, sessionId: string, version: number): Promise<void> {
    const input = { target: targetStoreId, sessionId, now: this.#clock.now(), version }
    return this.#request(this.#statements.addHint, input)
  }

  /**
   * Records that `targetStoreId` missed writes past the hint window and needs a full repair
   * (one row, whatever it misses: the repair marker of lock-and-hint-statements.ts).
   */
  markRepairNeeded(targetStoreId: string): Promise<void> {
    const now = this.#clock.now()
    return this.#request(this.#statements.markRepairNeeded, { target: targetStoreId, now })
  }

  /** `targetStoreId`'s repair marker on this store: its count, or null when there is none. */
  repairMarker(targetStoreId: string): Promise<number | null> {
    return this.#request(this.#statements.repairMarker, targetStoreId)
  }

  /** Clears `targetStoreId`'s repair marker unless it was set again since its count was `seen`. */
  clearRepairMarker(targetStoreId: string, seen: number): Promise<void> {
    return this.#request(this.#statements.clearRepairMarker, { target: targetStoreId, seen })
  }

  /** Up to `limit` hints for `targetStoreId` after `afterId`: ids and versions. */
  hintedIds(
    targetStoreId: string,
    afterId: string,
    limit: number,
  ): Promise<{ id: string; version: number }[]> {
    return this.#request(this.#statements.hintedIds, { target: targetStoreId, afterId, limit })
  }

  /** Forgets a hint replayed up to `version` (a newer one stays). */
  deleteHint(targetStoreId: string, sessionId: string, version: number): Promise<void> {
    return this.#request(this.#statements.deleteHint, {
      target: targetStoreId,
      sessionId,
      version,
    })
  }

  /** The stale table's statements (read-lease.ts): background work, not requests. */
  announceStale(announcement: StaleAnnouncement): Promise<void> {
    return this.#connection.run(this.#statements.announceStale, announcement)
  }

  withdrawStale(announcement: Omit<StaleAnnouncement, 'expiresAtMillis'>): Promise<void> {
    return this.#connection.run(this.#statements.withdrawStale, announcement)
  }

  sweepStale(): Promise<number> {
    return this.#connection.run(this.#statements.sweepStale, this.#clock.now())
  }

  /** Deletes lease locks that ran out (sweeper.ts): background work, not a request. */
  sweepLocks(): Promise<number> {
    return this.#connection.run(this.#statements.sweepLocks, this.#clock.now())
  }

  /** Deletes hints for the stores `retired`, recorded by `createdBy` (sweeper.ts). */
  sweepHints(retired: readonly string[], createdBy: number): Promise<number> {
    return this.#connection.run(this.#statements.sweepHints, { retired, createdBy })
  }

  staleTargets(now: number): Promise<string[]> {
    return this.#connection.run(this.#statements.staleTargets, now)
  }

  /** The stores with hints kept here, and when the newest was recorded (sweeper.ts). */
  hintTargetAges(): Promise<{ id: string; newestMillis: number }[]> {
    return this.#connection.run(this.#statements.hintTargetAges, undefined)
  }

  /** Ids of the stores that have hints kept on this store. Not a request (see {@link probe}). */
  hintTargets(): Promise<string[]> {
    return this.#connection.run(this.#statements.hintTargets, undefined)
  }

  /**
   * Probes the store: its uptime in seconds (a text query), then the data path itself (a
   * prepared read of the session table, as requests make): a server whose liveness answers
   * while its data statements hang is not in service. An SQL error is an answer (the tables
   * may not be there yet: requests say so themselves). Neither counted nor reported to the
   * standing: the health check reads the answer and decides.
   */
  async probe(): Promise<number> {
    const uptime = await this.#connection.run(this.#statements.probe, undefined, 'query')
    try {
      await this.#connection.run(this.#statements.readDigest, PROBE_SESSION_ID)
    } catch (error) {
      if (isUnreachableError(error)) throw error
    }
    return uptime
  }

  /** Times one round trip (a probe), for the CLI's status. */
  async probeMillis(): Promise<number> {
    await this.probe()
    const started = performance.now()
    await this.probe()
    return performance.now() - started
  }

  /** Runs a statement of background work or administration: not a request, neither counted nor reported to the standing. */
  background<I, R, O>(statement: Statement<I, R, O>, input: I): Promise<O> {
    return this.#connection.run(statement, input)
  }

  /**
   * Creates the session tables if they are missing. Administration, not a request: it is sent
   * even while requests skip the store, neither counted nor reported to the standing.
   */
  applySchema(): Promise<void> {
    return applySchema(this.#table, (sql, params) =>
      this.#connection.run(
        { text: () => sql, params: () => params, decode: (rows) => rows },
        undefined,
        'query',
        SCHEMA_DEADLINE,
      ),
    )
  }

  /** State, counters and latency, as `SessionManager.stats()` reports them. */
  stats(): StoreStats {
    return {
      id: this.id,
      state: this.standing.state,
      behind: this.standing.behind,
      ...this.counters,
      latency: this.latency.percentiles(),
    }
  }

  /** Ends every connection; statements in flight finish first. */
  close(): Promise<void> {
    return this.#connection.close()
  }

  /**
   * How long to wait for this store before also asking the next one (a hedge, as Cassandra's
   * speculative retry): {@link hedgeDelayMillis} of its recent p99.
   */
  hedgeAfterMillis(): number {
    return hedgeDelayMillis(this.latency.recentP99())
  }

  /**
   * How a failure to reach this store weighs on its standing: not at all when the manager's own
   * slowness explains it, at once when nothing but the store's absence does.
   */
  weigh(error: unknown): { counts: boolean; definitive: boolean } {
    return { counts: this.#slowness.counts(this.id, error), definitive: isAbsentError(error) }
  }

  /**
   * Sends one statement as a request: refused at once while the store is down (even one that
   * chose this store before it went down), counted, timed, and reported to the standing: an
   * answer (an SQL error is one) or a failure to reach the store. Not async, and settled by one
   * then(): this wraps every request's statement.
   */
  #request<I, R, O>(statement: Statement<I, R, O>, input: I, protocol?: Protocol): Promise<O> {
    if (!this.standing.up) return Promise.reject(new StoreDownError(this.id))
    const name = this.#statementNames.get(statement) ?? 'other'
    this.counters.operations++
    const started = performance.now()
    return this.#connection.run(statement, input, protocol).then(
      (result) => {
        const millis = performance.now() - started
        this.latency.record(millis)
        this.standing.requestAnswered()
        this.observer?.(name, millis / 1000, 'ok')
        return result
      },
      (error: unknown) => {
        this.counters.errors++
        const unreachable = isUnreachableError(error)
        if (unreachable) this.standing.requestUnreachable(error as Error, this.weigh(error))
        else this.standing.requestAnswered()
        this.observer?.(
          name,
          (performance.now() - started) / 1000,
          unreachable ? 'unreachable' : 'error',
        )
        throw error
      },
    )
  }

  [inspect.custom](): string {
    return `Store { id: '${this.id}', state: '${this.standing.state}' }`
  }
}
