/** The public object: checks every argument, then hands the work to the read path, the write path and the rest. */
import { EventEmitter } from 'node:events'
import { inspect } from 'node:util'
import { Cluster } from './cluster.js'
import type { SessionData } from './codec.js'
import { encodeSessionData } from './codec.js'
import {
  InvalidOptionError,
  InvalidSessionDataError,
  ManagerClosedError,
  SchemaNotAppliedError,
} from './errors.js'
import type { Emit, SessionManagerEvents } from './events.js'
import { generateSessionId, assertSessionId } from './ids.js'
import type { SessionInspection, StoreReport } from './maintenance/inspection.js'
import { inspectSession, storeReports } from './maintenance/inspection.js'
import type { ListOptions } from './maintenance/listing.js'
import { findSessions, hasValue, listIds, ownerCandidates } from './maintenance/listing.js'
import type { ListingContext } from './maintenance/listing.js'
import { repairSessions } from './maintenance/repair-plan.js'
import type { RepairOptions, RepairResult } from './maintenance/repair-scan.js'
import { repairAllStores } from './maintenance/repair-scan.js'
import type { SweepOptions, SweepResult } from './maintenance/sweeper.js'
import { BackgroundSweeper, sweepStores } from './maintenance/sweeper.js'
import type { ResolvedOptions, SessionManagerOptions } from './options.js'
import {
  batchSizeOption,
  callOptions,
  checkSeconds,
  requestedExpiry,
  resolveOptions,
} from './options.js'
import { ReadPath } from './read-path.js'
import type { ReadResult } from './read-path.js'
import type { LockOptions } from './session-lock.js'
import { acquireLock, SessionLock } from './session-lock.js'
import type { SessionAccess, SessionChange, UpdateOptions } from './session-updates.js'
import { updateExisting, updateSession, withSessionLock } from './session-updates.js'
import { checkKey, withIncrement, withValue, withValues, withoutValue } from './session-values.js'
import type { StoreState } from './failure/store-standing.js'
import type { StoreCounters } from './store/store.js'
import type { Store } from './store/store.js'
import { checkFunction, millisOption, wholeNumber } from './validate.js'
import { VersionClock } from './version-clock.js'
import { WorkTracker } from './work-tracker.js'
import type { WriteResult } from './write-path.js'
import { WritePath } from './write-path.js'
import { writeOrder } from './routing.js'

/** Per-call options of {@link SessionManager.writeSession} and {@link SessionManager.touch}. */
export interface WriteOptions {
  /**
   * Lifetime from now. Without it (or `expiresAt`), the session's own timeout
   * ({@link SessionManager.setSessionTimeout}) applies, else the manager's `ttlSeconds`.
   */
  ttlSeconds?: number
  /** Absolute expiry, to the millisecond (e.g. a cookie's `expires`). Not with `ttlSeconds`. */
  expiresAt?: Date | number
  /**
   * Write only if the session is at exactly this version (from `readSession(id, {
   * withVersion: true })`); otherwise reject with {@link VersionConflictError} and write
   * nothing. 0 means "only if the session does not exist yet".
   */
  expectedVersion?: number
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

/** The longest lease a lock takes (a day): its renewal timer stays in range. */
const MAX_LEASE_MILLIS = 86_400_000
/** The longest a lockSession call waits for another holder (an hour). */
const MAX_LOCK_WAIT_MILLIS = 3_600_000
/** At most this many read repairs run at once; beyond that, later reads or repair() fix it. */
const MAX_READ_REPAIRS = 16

/**
 * Reads and writes sessions over several MySQL stores. Create it with
 * {@link createSessionManager}; close it with {@link SessionManager.close}. Its events and
 * their payloads are {@link SessionManagerEvents} (docs/errors.md).
 */
export class SessionManager extends EventEmitter<SessionManagerEvents> {
  readonly #options: ResolvedOptions
  readonly #cluster: Cluster
  readonly #reads: ReadPath
  readonly #writes: WritePath
  readonly #work = new WorkTracker()
  readonly #sweeper: BackgroundSweeper
  readonly #access: SessionAccess
  #readRepairs = 0
  #closing: Promise<void> | undefined

  constructor(options: SessionManagerOptions) {
    super()
    const resolved = resolveOptions(options)
    this.#options = resolved
    // The map types every event; EventEmitter's own signature cannot follow a generic name.
    const untyped = this as unknown as EventEmitter
    const emit: Emit = (name, ...payload) => void untyped.emit(name, ...payload)
    this.#cluster = new Cluster(resolved, emit)
    const { storeListChange, handoff } = this.#cluster
    const order = (sessionId: string): readonly Store[] => this.#cluster.order(sessionId)
    const moveInBackground = (sessionId: string): void => this.#moveInBackground(sessionId)
    this.#reads = new ReadPath({
      options: resolved,
      order,
      storeListChange,
      moveInBackground,
      repairInBackground: (sessionId, stale) => this.#repairInBackground(sessionId, stale),
      emit,
    })
    this.#writes = new WritePath({
      options: resolved,
      versions: new VersionClock(resolved.clock),
      order,
      storeListChange,
      handoff,
      moveInBackground,
      emit,
    })
    this.#access = {
      readWithVersion: (id) => this.readSession(id, { withVersion: true }),
      writeSession: (id, data, writeOptions) => this.writeSession(id, data, writeOptions),
      lockSession: (id, lockOptions) => this.lockSession(id, lockOptions),
    }
    this.#sweeper = new BackgroundSweeper(resolved.sweepIntervalSeconds, () => this.sweep())
    this.#sweeper.start()
  }

  /**
   * Resolves once the manager's first health round is done (at most one `queryTimeoutMillis`
   * after creation): every store probed, stores with hints left by other managers found. Reads
   * wait for it on their own; call it to know `stats()` reflects the stores.
   */
  ready(): Promise<void> {
    return this.#cluster.ready()
  }

  /** The ids of the stores, in the order `sessionId`'s copies prefer them. No I/O. */
  locate(sessionId: string): string[] {
    this.#checkId(sessionId)
    return this.#cluster.order(sessionId).map((store) => store.id)
  }

  /** A new random session id (signed when `secrets` is set), without writing anything. */
  generateId(): string {
    return this.#options.idSigner?.generate() ?? generateSessionId()
  }

  /** Creates a session with `data` and returns its new random id. */
  async createSession(data: SessionData = {}, options: WriteOptions = {}): Promise<string> {
    const id = this.generateId()
    await this.writeSession(id, data, callOptions(options))
    return id
  }

  /**
   * The session's data, or null when it does not exist, has expired or was destroyed.
   * Asks the first reachable store of the session's order (the first `readQuorum` in
   * parallel); if none has a live copy, asks the next reachable stores, up to
   * `maxReadStores` in all. A tombstone anywhere wins; otherwise the highest version does.
   */
  async readSession(sessionId: string): Promise<SessionData | null>
  async readSession(
    sessionId: string,
    options: { withVersion: true },
  ): Promise<{ data: SessionData; version: number } | null>
  async readSession(
    sessionId: string,
    options: { withVersion?: boolean } = {},
  ): Promise<SessionData | { data: SessionData; version: number } | null> {
    const { withVersion } = callOptions(options)
    const current = await this.#readNewest(sessionId)
    if (current === null) return null
    return withVersion === true
      ? { data: current.data, version: current.copy.version }
      : current.data
  }

  /**
   * Stores `data` as the session's new content on the first `copies` reachable stores of its
   * order. Resolves once `copies` (or, in a degraded cluster, `minCopies`) copies are written;
   * rejects with {@link NotEnoughStoresError} otherwise. A session that was destroyed stays
   * destroyed: the write is dropped and resolves with `dropped: true`. Validation errors are
   * thrown before any statement runs.
   */
  async writeSession(
    sessionId: string,
    data: SessionData,
    options: WriteOptions = {},
  ): Promise<WriteResult> {
    this.#checkId(sessionId)
    const bytes = encodeSessionData(this.#options.codec, data, this.#options.maxSessionBytes)
    const owner = this.#ownerOf(data)
    const checked = callOptions(options)
    const now = this.#options.clock.now()
    const expiresAt = requestedExpiry(checked, now)
    const expectedVersion = checkExpectedVersion(checked.expectedVersion)
    return this.#work.track(() =>
      this.#writes.write({
        sessionId,
        data: bytes,
        owner,
        expiresAtMillis: expiresAt ?? now + this.#options.ttlSeconds * 1000,
        explicitExpiry: expiresAt !== null,
        ttlSeconds: null,
        expectedVersion,
        now,
      }),
    )
  }

  /**
   * Destroys the session: its copies are replaced by tombstones, which no later write or
   * returning store can undo. Acknowledged like a write.
   */
  async destroySession(sessionId: string): Promise<void> {
    this.#checkId(sessionId)
    return this.#work.track(() => this.#writes.destroy(sessionId))
  }

  /**
   * Gives the session's data a new id and ends the old one (the defence against session
   * fixation): the new id gets the same data, expiry and per-session timeout, then the old id
   * is destroyed like {@link destroySession}. Resolves the new id, or null when the old session
   * does not exist.
   */
  async regenerateSession(oldSessionId: string): Promise<string | null> {
    const current = await this.#readNewest(oldSessionId)
    if (current === null) return null
    const newId = this.generateId()
    const { copy } = current
    await this.#work.track(() =>
      this.#writes.write({
        sessionId: newId,
        data: copy.data as Buffer,
        owner: this.#ownerOf(current.data),
        expiresAtMillis: copy.expiresAtMillis,
        explicitExpiry: true,
        ttlSeconds: copy.ttlSeconds,
        expectedVersion: undefined,
        now: this.#options.clock.now(),
      }),
    )
    await this.destroySession(oldSessionId)
    return newId
  }

  /**
   * Extends the session's expiry on its copies to now + `ttlSeconds` (default: the session's
   * own timeout, else the manager's `ttlSeconds`) without rewriting its data. Never creates a
   * session: resolves false when there is no live session to touch.
   */
  async touch(sessionId: string, options: WriteOptions = {}): Promise<boolean> {
    this.#checkId(sessionId)
    const now = this.#options.clock.now()
    const expiresAt = requestedExpiry(callOptions(options), now)
    return this.#work.track(() =>
      this.#writes.updateCopies(sessionId, (store) => store.touch(sessionId, expiresAt, now)),
    )
  }

  /**
   * Gives the session its own timeout: it expires `ttlSeconds` from now, and later writes and
   * touches without a `ttlSeconds` keep using this timeout. Resolves false when there is no
   * live session.
   */
  async setSessionTimeout(sessionId: string, ttlSeconds: number): Promise<boolean> {
    this.#checkId(sessionId)
    const seconds = checkSeconds('ttlSeconds', ttlSeconds)
    const now = this.#options.clock.now()
    return this.#work.track(() =>
      this.#writes.updateCopies(sessionId, (store) =>
        store.setSessionTimeout(sessionId, seconds, now),
      ),
    )
  }

  /** The session's timeout in seconds (its own, else the manager's default); null when there is no session. */
  async getSessionTimeout(sessionId: string): Promise<number | null> {
    const current = await this.#readNewest(sessionId)
    if (current === null) return null
    return current.copy.ttlSeconds ?? this.#options.ttlSeconds
  }

  /**
   * Read, change, write back — safe against lost updates: `change` gets the current data (null
   * if there is none) and returns the new data (or undefined to leave it); the write is made
   * with the version read, and on a {@link VersionConflictError} the whole cycle runs again
   * (up to `retries` times, with a short random pause). Resolves the data written.
   *
   * @example
   * await sm.updateSession(id, (data) => ({ ...data, visits: (data?.visits ?? 0) + 1 }))
   */
  async updateSession(
    sessionId: string,
    change: SessionChange,
    options: UpdateOptions = {},
  ): Promise<SessionData | null> {
    this.#checkId(sessionId)
    checkFunction('change', change)
    const { retries, ttlSeconds, expiresAt } = callOptions(options)
    return updateSession(this.#access, sessionId, change, {
      retries: wholeNumber('retries', retries, 20, { min: 0, max: 1000 }),
      ttlSeconds,
      expiresAt,
    })
  }

  /** The value at `key` in the session, or undefined when the session or the key is missing. */
  async getValue(sessionId: string, key: string): Promise<unknown> {
    checkKey(key)
    const data = await this.readSession(sessionId)
    return data === null || !Object.hasOwn(data, key) ? undefined : data[key]
  }

  /** Sets `key` to `value` in an existing session (a version-checked read-modify-write). */
  async setValue(sessionId: string, key: string, value: unknown): Promise<void> {
    checkKey(key)
    this.#checkId(sessionId)
    await updateExisting(this.#access, sessionId, 'set a value in', (data) =>
      withValue(data, key, value),
    )
  }

  /** Removes `key` from an existing session. */
  async removeValue(sessionId: string, key: string): Promise<void> {
    checkKey(key)
    this.#checkId(sessionId)
    await updateExisting(this.#access, sessionId, 'remove a value from', (data) =>
      withoutValue(data, key),
    )
  }

  /**
   * Adds `by` to the number at `key` (0 when missing) and resolves the new value. Atomic: correct
   * under concurrent callers on any number of app servers.
   */
  async increment(sessionId: string, key: string, by = 1): Promise<number> {
    checkKey(key)
    this.#checkId(sessionId)
    const data = await updateExisting(this.#access, sessionId, 'increment a value in', (current) =>
      withIncrement(current, key, by),
    )
    return data[key] as number
  }

  /** The whole session data: {@link readSession} under msession's name. */
  getAll(sessionId: string): Promise<SessionData | null> {
    return this.readSession(sessionId)
  }

  /** Merges `values` into an existing session's data (msession's `putAll`). */
  async putAll(sessionId: string, values: SessionData): Promise<void> {
    this.#checkId(sessionId)
    await updateExisting(this.#access, sessionId, 'put values in', (data) =>
      withValues(data, values),
    )
  }

  /**
   * Takes the session's lease lock (msession's lock, HTTP_SessionServer's exclusive open). The
   * lock lives on the session's first reachable store; it expires on its own after
   * `leaseMillis` if the holder dies. Readers are never blocked. Rejects with
   * {@link LockTimeoutError} if another holder keeps it past `waitMillis`.
   */
  async lockSession(sessionId: string, options: LockOptions = {}): Promise<SessionLock> {
    this.#checkId(sessionId)
    const { leaseMillis: lease, waitMillis: wait } = callOptions(options)
    // A lease of 0 would be over before the caller got it.
    const leaseMillis = millisOption('leaseMillis', lease, 10_000, 1, MAX_LEASE_MILLIS)
    const waitMillis = millisOption('waitMillis', wait, 5_000, 0, MAX_LOCK_WAIT_MILLIS)
    const sessions = {
      readWithVersion: (id: string) => this.readSession(id, { withVersion: true }),
      writeAtVersion: (id: string, data: SessionData, expectedVersion: number) =>
        this.writeSession(id, data, { expectedVersion }),
      clock: this.#options.clock,
    }
    return this.#work.track(() =>
      acquireLock(sessions, () => writeOrder(this.#cluster.order(sessionId)), sessionId, {
        leaseMillis,
        waitMillis,
      }),
    )
  }

  /**
   * Runs `change` holding the session's lock: it gets the current data (null if none) and the
   * lock, and returns the new data (or undefined to leave it). The write is fenced (refused if
   * the lease ran out or the session moved on); the lock is released in every case. Resolves
   * the data written (or the data read, if nothing was written).
   */
  async withSessionLock(
    sessionId: string,
    change: SessionChange<[SessionLock]>,
    options: LockOptions = {},
  ): Promise<SessionData | null> {
    checkFunction('change', change)
    return withSessionLock(this.#access, sessionId, change, options)
  }

  /**
   * Every live session's id, once each (however many copies it has), in id order. Reads each
   * reachable store page by page in key order and merges the pages, so memory stays at one
   * page per store whatever the number of sessions.
   *
   * @example
   * for await (const id of sm.list()) console.log(id)
   */
  async *list(options: ListOptions = {}): AsyncGenerator<string> {
    yield* listIds(this.#listing(), callOptions(options))
  }

  /** How many live sessions the cluster holds, each counted once (a full scan, like {@link list}). */
  async count(options: ListOptions = {}): Promise<number> {
    let count = 0
    for await (const _ of this.list(options)) count++
    return count
  }

  /**
   * Ids of the live sessions whose data has `key` equal to `value` (deep equality), in id
   * order. A full scan of every store, in constant memory; for per-user lookups prefer the
   * indexed {@link findByOwner}.
   */
  async *find(key: string, value: unknown, options: ListOptions = {}): AsyncGenerator<string> {
    checkKey(key)
    yield* findSessions(this.#listing(), callOptions(options), (data) => hasValue(data, key, value))
  }

  /** Ids of the live sessions whose data has `key` at all (a full scan, like {@link find}). */
  async *listWithKey(key: string, options: ListOptions = {}): AsyncGenerator<string> {
    checkKey(key)
    yield* findSessions(this.#listing(), callOptions(options), (data) => Object.hasOwn(data, key))
  }

  /**
   * Ids of the live sessions whose `ownerKey` value is `owner`, through the owner index on
   * every reachable store (no scan). Each candidate is confirmed by a read, so a stale copy
   * with an old owner never counts.
   */
  async findByOwner(owner: string | number): Promise<string[]> {
    if (this.#options.ownerKey === null) {
      throw new InvalidOptionError('ownerKey', 'must be set to find sessions by owner')
    }
    const wanted = checkOwner(owner)
    const owned: string[] = []
    for (const id of await ownerCandidates(this.#listing(), wanted)) {
      const data = await this.readSession(id).catch(() => null)
      if (data !== null && this.#ownerOf(data) === wanted) owned.push(id)
    }
    return owned
  }

  /**
   * Destroys every session of `owner` ("log this user out everywhere"), with tombstones like
   * {@link destroySession}, so none comes back. Resolves how many were destroyed.
   */
  async destroyByOwner(owner: string | number): Promise<number> {
    const ids = await this.findByOwner(owner)
    for (const id of ids) await this.destroySession(id)
    return ids.length
  }

  /**
   * Deletes expired sessions and tombstones whose time is up on every reachable store, in
   * batches of `batchSize` through the expiry index. The `sweepIntervalSeconds` option runs it
   * in the background.
   */
  async sweep(options: SweepOptions = {}): Promise<SweepResult> {
    const checked = callOptions(options)
    batchSizeOption(checked.batchSize)
    return this.#work.track(() => sweepStores(this.#cluster.stores, checked))
  }

  /**
   * Re-copies every session to where it belongs: walks every reachable store in batches
   * (constant memory), puts each session's newest copy (or tombstone) on the first `copies`
   * reachable stores of its order, removes stale copies and copies outside those stores once
   * the right stores hold the session, and deletes tombstones whose time is up. Idempotent: a
   * second run right after changes nothing. After a change of the store list (`previousStores`)
   * it is the rebalance: it empties the retiring stores too, and once it resolves with
   * `done: true` (and a second run moves nothing) `previousStores` can be dropped. Stop it with
   * `signal` and resume with the `resumeFrom` it returns.
   */
  async repair(options: RepairOptions = {}): Promise<RepairResult> {
    const checked = callOptions(options)
    batchSizeOption(checked.batchSize)
    return this.#work.track(() =>
      repairAllStores(this.#cluster.stores, this.#cluster.repairContext, checked),
    )
  }

  /**
   * Creates the session tables on every store (idempotent), even one that requests skip as
   * down. Rejects with {@link SchemaNotAppliedError}, each failing store's cause attached, if
   * any store failed; the others have their tables.
   */
  async applySchema(): Promise<void> {
    const results = await Promise.allSettled(
      this.#cluster.stores.map((store) => store.applySchema()),
    )
    const failures = results.flatMap((result, index) =>
      result.status === 'rejected'
        ? [{ storeId: (this.#cluster.stores[index] as Store).id, error: result.reason as Error }]
        : [],
    )
    if (failures.length > 0) throw new SchemaNotAppliedError(failures)
  }

  /**
   * Every store's row of the session — version, expiry, tombstone, data size, never the data —
   * in the session's order (then stores only in `previousStores`), and what they say by the
   * rule reads follow. Read-only: unlike a read, it repairs nothing.
   */
  async inspectSession(sessionId: string): Promise<SessionInspection> {
    this.#checkId(sessionId)
    const { copies, clock } = this.#options
    return this.#work.track(() =>
      inspectSession(
        sessionId,
        this.#cluster.order(sessionId),
        this.#cluster.retiring,
        copies,
        clock,
      ),
    )
  }

  /** Each store's standing, a timed probe, and (with `counts`, a full scan each) its rows. */
  async storeReports(options: { counts?: boolean } = {}): Promise<StoreReport[]> {
    const { counts } = callOptions(options)
    return this.#work.track(() =>
      storeReports(this.#cluster.stores, this.#cluster.retiring, counts !== false),
    )
  }

  /** Per store: state, operations, errors and latency. */
  stats(): { stores: StoreStats[] } {
    return {
      stores: this.#cluster.stores.map((store) => ({
        id: store.id,
        state: store.standing.state,
        behind: store.standing.behind,
        ...store.counters,
        latency: store.latency.percentiles(),
      })),
    }
  }

  /**
   * Stops accepting work, lets operations in flight settle, then ends every connection.
   * Safe to call more than once.
   */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      const settled = this.#work.close()
      await Promise.all([this.#cluster.stopHealthCheck(), this.#sweeper.stop()])
      await settled
      await this.#cluster.close()
    })()
    return this.#closing
  }

  [inspect.custom](): string {
    const ids = this.#cluster.stores.map((store) => `'${store.id}'`).join(', ')
    return `SessionManager { stores: [${ids}], copies: ${this.#options.copies} }`
  }

  /** The winning copy of a session as a read sees it, with its data decoded; null if none. */
  async #readNewest(sessionId: string): Promise<ReadResult | null> {
    this.#checkId(sessionId)
    return this.#work.track(async () => {
      if (!this.#cluster.isReady) await this.#cluster.ready()
      return this.#reads.newest(sessionId)
    })
  }

  /** What listing and finding need; refused once the manager is closing. */
  #listing(): ListingContext {
    if (this.#work.closing) throw new ManagerClosedError()
    const { copies, codec, clock } = this.#options
    return {
      stores: this.#cluster.stores,
      copies,
      codec,
      clock,
      unreadable: (sessionId, error) =>
        this.emit('unreadable-copy', { sessionId, storeId: null, error }),
    }
  }

  /** Rewrites the newest copy where a read found it missing, a bounded number at a time. */
  #repairInBackground(sessionId: string, stale: readonly Store[]): void {
    if (this.#readRepairs >= MAX_READ_REPAIRS) return
    this.#readRepairs++
    const started = this.#work.background(async () => {
      try {
        const { failed } = await repairSessions(this.#cluster.repairContext, [sessionId], {
          dropExtras: false,
        })
        if (failed.length === 0) {
          this.emit('read-repair', { sessionId, storeIds: stale.map((store) => store.id) })
        }
      } finally {
        this.#readRepairs--
      }
    })
    if (!started) this.#readRepairs--
  }

  /** Moves a session found under the old placement to its new stores (read-through). */
  #moveInBackground(sessionId: string): void {
    this.#work.background(async () => {
      const { failed } = await repairSessions(this.#cluster.repairContext, [sessionId], {
        dropExtras: true,
      })
      if (failed.length === 0) this.emit('session-moved', { sessionId })
    })
  }

  /** The owner column's value: the data's `ownerKey` value as a string, if any. */
  #ownerOf(data: SessionData): string | null {
    const key = this.#options.ownerKey
    if (key === null) return null
    const value = data[key]
    if (typeof value !== 'string' && typeof value !== 'number' && typeof value !== 'bigint')
      return null
    const owner = String(value)
    if (Buffer.byteLength(owner) > 255) {
      throw new InvalidSessionDataError(`the ${key} value (ownerKey) is longer than 255 bytes`)
    }
    return owner
  }

  /** Throws {@link InvalidSessionIdError} for a malformed id, or one whose signature fails. */
  #checkId(sessionId: unknown): asserts sessionId is string {
    assertSessionId(sessionId)
    this.#options.idSigner?.verify(sessionId)
  }
}

function checkOwner(owner: unknown): string {
  if (
    (typeof owner !== 'string' && typeof owner !== 'number') ||
    String(owner) === '' ||
    String(owner).length > 255
  ) {
    throw new InvalidOptionError('owner', 'must be a non-empty string or a number')
  }
  return String(owner)
}

function checkExpectedVersion(value: unknown): number | undefined {
  if (value === undefined) return undefined
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    throw new InvalidOptionError(
      'expectedVersion',
      'must be a version read from the session (a whole number)',
    )
  }
  return value
}

/**
 * Creates a {@link SessionManager}. Options are checked at once: a bad option throws an
 * {@link InvalidOptionError} naming it, before any connection is made.
 *
 * @example
 * const sm = createSessionManager({
 *   stores: [
 *     { id: 'store-a', uri: 'mysql://app:secret@db1/sessions' },
 *     { id: 'store-b', uri: 'mysql://app:secret@db2/sessions' },
 *     { id: 'store-c', uri: 'mysql://app:secret@db3/sessions' },
 *   ],
 *   copies: 2,
 * })
 * const id = await sm.createSession({ userId: 42 })
 * await sm.readSession(id) // { userId: 42 }
 */
export function createSessionManager(options: SessionManagerOptions): SessionManager {
  return new SessionManager(options)
}
