import { EventEmitter } from 'node:events'
import { inspect, isDeepStrictEqual, types } from 'node:util'
import type { SessionData } from './codec.js'
import { encodeSessionData } from './codec.js'
import type { StoreFailure } from './errors.js'
import {
  InvalidOptionError,
  InvalidSessionDataError,
  ManagerClosedError,
  NoStoreAvailableError,
  NotEnoughStoresError,
  SessionNotFoundError,
  VersionConflictError,
  VersionOverflowError,
} from './errors.js'
import { assertSessionId, generateSessionId } from './ids.js'
import { BackgroundSweeper, sweepStores } from './sweeper.js'
import { checkKey, withIncrement, withValue, withValues, withoutValue } from './session-values.js'
import { acquireLock, SessionLock } from './session-lock.js'
import type { LockOptions } from './session-lock.js'
import { listLiveSessions } from './session-listing.js'
import type { ListOptions } from './session-listing.js'
import type { SweepOptions, SweepResult } from './sweeper.js'
import type { ResolvedOptions, SessionManagerOptions } from './options.js'
import {
  batchSizeOption,
  callOptions,
  checkSeconds,
  requestedExpiry,
  resolveOptions,
} from './options.js'
import { OrderCache } from './placement.js'
import { checkFunction, millisOption, wholeNumber } from './validate.js'
import { buildStatements } from './statements.js'
import type { StoreCounters, StoredCopy, WriteOutcome } from './store-pool.js'
import { StorePool } from './store-pool.js'
import type { StoreAnswer, WalkResult } from './store-walk.js'
import { askInOrder } from './store-walk.js'
import { VERSION_CEILING, VersionClock } from './version-clock.js'
import { HealthCheck } from './health-check.js'
import { HintedHandoff } from './hinted-handoff.js'
import type { RepairContext } from './session-repair.js'
import { repairSessions } from './session-repair.js'
import type { RepairOptions, RepairResult } from './repair.js'
import { repairAllStores } from './repair.js'
import type { StoreState } from './circuit.js'

/** Per-call options of {@link SessionManager.writeSession} and {@link SessionManager.touch}. */
export interface WriteOptions {
  /**
   * Lifetime from now. Without it (or `expiresAt`), the session's own timeout
   * ({@link SessionManager.setTimeout}) applies, else the manager's `ttlSeconds`.
   */
  ttlSeconds?: number
  /** Absolute expiry, to the millisecond (e.g. a cookie's `expires`). Not with `ttlSeconds`. */
  expiresAt?: Date | number
  /**
   * Write only if the session is still at this version (from `readSession(id, { withVersion:
   * true })`); otherwise reject with {@link VersionConflictError} and write nothing. 0 means
   * "only if the session does not exist yet".
   */
  expectedVersion?: number
}

/** What {@link SessionManager.#write} needs besides the encoded bytes. */
interface WriteRequest {
  /** The owner column's value (see the `ownerKey` option). */
  owner: string | null
  expiresAtMillis: number
  explicitExpiry: boolean
  ttlSeconds: number | null
  expectedVersion: number | undefined
  /** The operation's time (see {@link WriteFields.now}). */
  now: number
}

/** Options of {@link SessionManager.updateSession}. */
export interface UpdateOptions {
  /**
   * How many times to run the read-change-write cycle again after a version conflict.
   * @default 20
   */
  retries?: number
  /** Lifetime of the written session from now (see {@link WriteOptions}). */
  ttlSeconds?: number
  /** Absolute expiry of the written session (see {@link WriteOptions}). */
  expiresAt?: Date | number
}

/** What an acknowledged write did. */
export interface WriteResult {
  /** The session's version after the write. */
  version: number
  /**
   * Stores that now hold the new data (or data of a concurrent write that landed after it
   * and supersedes it), in order of preference.
   */
  storeIds: string[]
  /** True when fewer than `copies` copies were written (at least `minCopies`). */
  degraded: boolean
  /**
   * True when nothing was written because the session had been destroyed: a destroy wins over
   * every later write, so the session stays gone (`storeIds` is empty and `version` is not the
   * session's). The `write-after-destroy` event says the same.
   */
  dropped: boolean
}

/** Payload of the `degraded-write` event. */
export interface DegradedWriteEvent {
  sessionId: string
  copiesWritten: number
  copiesWanted: number
  failures: StoreFailure[]
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

/** What the copies read for a session say. */
type ReadVerdict =
  | { kind: 'live'; data: SessionData; version: number; copy: StoredCopy }
  | { kind: 'destroyed' }
  | { kind: 'none' }

/**
 * A write that finds a newer version on a store is made again, above it; after this many
 * attempts that all lost to concurrent writes it is refused with a VersionConflictError.
 */
const MAX_WRITE_ATTEMPTS = 6

/** The longest lease a lock takes (a day): its renewal timer stays in range. */
const MAX_LEASE_MILLIS = 86_400_000
/** The longest a lockSession call waits for another holder (an hour). */
const MAX_LOCK_WAIT_MILLIS = 3_600_000

/** At most this many read repairs run at once; beyond that, later reads or repair() fix it. */
const MAX_READ_REPAIRS = 16

/**
 * Reads and writes sessions over several MySQL stores. Create it with
 * {@link createSessionManager}; close it with {@link SessionManager.close}.
 *
 * Events:
 * - `store-down` (`{ storeId, error }`): a store's circuit opened; requests skip it.
 * - `store-up` (`{ storeId }`): a store that was down answers again and has caught up.
 * - `degraded-write` ({@link DegradedWriteEvent}): acknowledged with fewer than `copies`.
 * - `read-repair` (`{ sessionId, storeIds }`): a read found stores missing the newest copy
 *   and rewrote it there.
 * - `write-after-destroy` (`{ sessionId }`): a write reached a destroyed session and was dropped.
 * - `unreadable-copy` (`{ sessionId, storeId, error }`): a copy the codec could not decode.
 */
export class SessionManager extends EventEmitter {
  readonly #options: ResolvedOptions
  /** Orders over the configured stores. */
  readonly #orders: OrderCache<StorePool>
  /** Orders over `previousStores`, while a change of the store list is under way. */
  readonly #previousOrders: OrderCache<StorePool> | null
  /** Every store: the configured ones and any only in `previousStores`, sorted by id. */
  readonly #pools: readonly StorePool[]
  /** Stores only in `previousStores`: they hold copies to move away and get no new ones. */
  readonly #retiring: readonly StorePool[]
  readonly #versions: VersionClock
  /** Operations (and background read repairs) not yet settled. */
  #active = 0
  #drained: (() => void) | undefined
  readonly #handoff: HintedHandoff
  readonly #healthCheck: HealthCheck
  readonly #sweeper: BackgroundSweeper
  readonly #repairContext: RepairContext
  readonly #wasDown = new Set<StorePool>()
  #readRepairs = 0
  readonly #ready: Promise<void>
  #isReady = false
  #closing: Promise<void> | undefined

  constructor(options: SessionManagerOptions) {
    super()
    this.#options = resolveOptions(options)
    this.#versions = new VersionClock(this.#options.clock)
    const { stores, previousStores, orderCacheSize } = this.#options
    const statements = buildStatements(this.#options.table)
    const onOpen = (pool: StorePool, error: Error): void => this.#storeDown(pool, error)
    const byId = new Map<string, StorePool>()
    for (const store of [...stores, ...(previousStores ?? [])]) {
      if (!byId.has(store.id))
        byId.set(store.id, new StorePool(store, this.#options, statements, onOpen))
    }
    const current = stores.map((store) => byId.get(store.id) as StorePool)
    this.#pools = [...byId.values()].sort((a, b) => (a.id < b.id ? -1 : 1))
    this.#retiring = this.#pools.filter((pool) => !current.includes(pool))
    this.#orders = new OrderCache(current, orderCacheSize, this.#options.placement)
    this.#previousOrders =
      previousStores === null
        ? null
        : new OrderCache(
            previousStores.map((store) => byId.get(store.id) as StorePool),
            orderCacheSize,
            this.#options.previousPlacement,
          )
    this.#repairContext = {
      // Retiring stores come last: never targets, so repair and rebalance move copies off them.
      orderOf: (id) =>
        this.#retiring.length === 0 ? this.#order(id) : [...this.#order(id), ...this.#retiring],
      copies: this.#options.copies,
    }
    this.#handoff = new HintedHandoff(this.#pools, this.#repairContext)
    this.#healthCheck = new HealthCheck(this.#pools, this.#options.healthCheckIntervalMillis, {
      storeDown: onOpen,
      catchUp: (pool) => this.#catchUp(pool),
    })
    this.#sweeper = new BackgroundSweeper(this.#options.sweepIntervalSeconds, () => this.sweep())
    this.#sweeper.start()
    const firstCheck = this.#healthCheck.start()
    // Reads wait for the first check (bounded by one query timeout) so that a manager started
    // after an outage never reads a store before the hints for it are replayed.
    this.#ready = Promise.race([firstCheck, delay(this.#options.queryTimeoutMillis)]).then(() => {
      this.#isReady = true
    })
  }

  /**
   * Resolves once the manager's first health round is done (at most one `queryTimeoutMillis`
   * after creation): every store probed, stores with hints left by other managers found. Reads
   * wait for it on their own; call it to know `stats()` reflects the stores.
   */
  ready(): Promise<void> {
    return this.#ready
  }

  /** The ids of the stores, in the order `sessionId`'s copies prefer them. No I/O. */
  locate(sessionId: string): string[] {
    this.#checkId(sessionId)
    return this.#orders.order(sessionId).map((pool) => pool.id)
  }

  /** Creates a session with `data` and returns its new random id. */
  async createSession(data: SessionData = {}, options: WriteOptions = {}): Promise<string> {
    const id = this.generateId()
    await this.writeSession(id, data, callOptions(options))
    return id
  }

  /** A new random session id (signed when `secrets` is set), without writing anything. */
  generateId(): string {
    return this.#options.idSigner?.generate() ?? generateSessionId()
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
    change: (
      data: SessionData | null,
    ) => SessionData | undefined | Promise<SessionData | undefined>,
    options: UpdateOptions = {},
  ): Promise<SessionData | null> {
    this.#checkId(sessionId)
    checkFunction('change', change)
    const { retries: given, ttlSeconds, expiresAt } = callOptions(options)
    const retries = wholeNumber('retries', given, 20, { min: 0, max: 1000 })
    for (let attempt = 0; ; attempt++) {
      const current = await this.readSession(sessionId, { withVersion: true })
      const { next } = await changeResult(change(current === null ? null : current.data))
      if (next === undefined) return current?.data ?? null
      try {
        await this.writeSession(sessionId, next, {
          ...(ttlSeconds === undefined ? {} : { ttlSeconds }),
          ...(expiresAt === undefined ? {} : { expiresAt }),
          expectedVersion: current?.version ?? 0,
        })
        return next
      } catch (error) {
        if (!(error instanceof VersionConflictError) || attempt >= retries) throw error
        await delay(Math.random() * Math.min(50, 2 ** attempt))
      }
    }
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
    await this.#updateExisting(sessionId, 'set a value in', (data) => withValue(data, key, value))
  }

  /** Removes `key` from an existing session. */
  async removeValue(sessionId: string, key: string): Promise<void> {
    checkKey(key)
    await this.#updateExisting(sessionId, 'remove a value from', (data) => withoutValue(data, key))
  }

  /**
   * Adds `by` to the number at `key` (0 when missing) and resolves the new value. Atomic: correct
   * under concurrent callers on any number of app servers.
   */
  async increment(sessionId: string, key: string, by = 1): Promise<number> {
    checkKey(key)
    const data = await this.#updateExisting(sessionId, 'increment a value in', (current) =>
      withIncrement(current, key, by),
    )
    return data[key] as number
  }

  /** The whole session data (like {@link readSession}). */
  getAll(sessionId: string): Promise<SessionData | null> {
    return this.readSession(sessionId)
  }

  /** Merges `values` into an existing session's data. */
  async putAll(sessionId: string, values: SessionData): Promise<void> {
    await this.#updateExisting(sessionId, 'put values in', (data) => withValues(data, values))
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
    return this.#track(() =>
      acquireLock(this, () => this.#writeOrder(sessionId), sessionId, { leaseMillis, waitMillis }),
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
    change: (
      data: SessionData | null,
      lock: SessionLock,
    ) => SessionData | undefined | Promise<SessionData | undefined>,
    options: LockOptions = {},
  ): Promise<SessionData | null> {
    checkFunction('change', change)
    const lock = await this.lockSession(sessionId, options)
    try {
      const data = await lock.read()
      const { next } = await changeResult(change(data, lock))
      if (next === undefined) return data
      await lock.write(next)
      return next
    } finally {
      await lock.release().catch(() => {})
    }
  }

  /** updateSession for per-key operations: the session must exist. */
  async #updateExisting(
    sessionId: string,
    operation: string,
    change: (data: SessionData) => SessionData,
  ): Promise<SessionData> {
    const written = await this.updateSession(sessionId, (data) => {
      if (data === null) throw new SessionNotFoundError(operation)
      return change(data)
    })
    return written as SessionData
  }

  /** The winning copy of a session as a read sees it, with its data decoded; null if none. */
  async #readNewest(sessionId: string): Promise<{ data: SessionData; copy: StoredCopy } | null> {
    this.#checkId(sessionId)
    return this.#track(async () => {
      if (!this.#isReady) await this.#ready
      const first = this.#options.readQuorum === 1 ? this.#firstReadable(sessionId) : undefined
      if (first === undefined) return this.#readWalk(sessionId, [], [], undefined)
      // The healthy case: one statement to the first store, nothing allocated beyond it.
      let copy: StoredCopy | null
      try {
        copy = await first.read(sessionId)
      } catch (error) {
        return this.#readWalk(sessionId, [], [{ storeId: first.id, error: error as Error }], first)
      }
      if (copy !== null && copy.deleted) return null
      if (copy !== null && copy.expiresAtMillis > this.#now()) {
        try {
          const data = this.#options.codec.decode(copy.data as Buffer)
          return { data, copy }
        } catch (error) {
          this.emit('unreadable-copy', { sessionId, storeId: first.id, error })
          copy = null
        }
      }
      return this.#readWalk(sessionId, [{ store: first, position: 0, value: copy }], [], first)
    })
  }

  /**
   * The general read: asks `readQuorum` reachable stores (besides those already asked), then,
   * if none has a live copy, the next ones up to `maxReadStores` answers in all.
   */
  async #readWalk(
    sessionId: string,
    asked: StoreAnswer<StorePool, StoredCopy | null>[],
    failed: StoreFailure[],
    skip: StorePool | undefined,
  ): Promise<{ data: SessionData; copy: StoredCopy } | null> {
    const order = this.#readOrder(sessionId).filter((pool) => pool !== skip)
    const read = (pool: StorePool): Promise<StoredCopy | null> => pool.read(sessionId)
    const first = await askInOrder(order, 0, this.#options.readQuorum - asked.length, read)
    let answers = [...asked, ...first.answers]
    let failures = [...failed, ...first.failures]
    let verdict = this.#verdict(sessionId, answers, this.#now())
    if (verdict.kind === 'none') {
      const wanted = this.#options.maxReadStores - answers.length
      const rest = await askInOrder(order, first.next, wanted, read)
      answers = [...answers, ...rest.answers]
      failures = [...failures, ...rest.failures]
      verdict = this.#verdict(sessionId, answers, this.#now())
    }
    if (verdict.kind === 'none' && this.#previousOrders !== null) {
      // A change of the store list is under way: the session may still sit where the old
      // list put it. Ask the old placement's first `copies` stores not asked yet, and move
      // what is found (the copy goes to its new stores, the old copies go away).
      const asked = new Set(answers.map((answer) => answer.store))
      const old = this.#previousOrders
        .order(sessionId)
        .slice(0, this.#options.copies)
        .filter((pool) => pool.circuit.state === 'up' && !asked.has(pool))
      const previous = await askInOrder(old, 0, old.length, read)
      if (previous.answers.some((answer) => answer.value !== null)) {
        answers = [...answers, ...previous.answers]
        verdict = this.#verdict(sessionId, answers, this.#now())
        this.#moveInBackground(sessionId)
      }
    }
    if (answers.length === 0) throw new NoStoreAvailableError('read the session', failures)
    if (
      verdict.kind === 'none' &&
      this.#unavailable(sessionId, answers, failures.length) >= this.#options.copies
    ) {
      // As many stores as hold each session could not be asked: "no session" would be a guess.
      throw new NoStoreAvailableError('tell whether the session exists', failures)
    }
    if (verdict.kind !== 'none') this.#repairIfStale(sessionId, answers, verdict)
    return verdict.kind === 'live' ? { data: verdict.data, copy: verdict.copy } : null
  }

  /**
   * Stores `data` as the session's new content on the first `copies` reachable stores of its
   * order. Resolves once `copies` (or, in a degraded cluster, `minCopies`) copies are written;
   * rejects with {@link NotEnoughStoresError} otherwise. Validation errors are thrown before
   * any statement runs.
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
    const now = this.#now()
    const expiresAt = requestedExpiry(checked, now)
    const expectedVersion = checkExpectedVersion(checked.expectedVersion)
    return this.#track(() =>
      this.#write(sessionId, bytes, {
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
    await this.#track(() =>
      this.#write(newId, copy.data as Buffer, {
        owner: this.#ownerOf(current.data),
        expiresAtMillis: copy.expiresAtMillis,
        explicitExpiry: true,
        ttlSeconds: copy.ttlSeconds,
        expectedVersion: undefined,
        now: this.#now(),
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
    const now = this.#now()
    const expiresAt = requestedExpiry(callOptions(options), now)
    return this.#track(() =>
      this.#updateCopies(sessionId, (pool) =>
        pool.touch(sessionId, expiresAt, this.#options.ttlSeconds, now),
      ),
    )
  }

  /**
   * Gives the session its own timeout: it expires `ttlSeconds` from now, and later writes and
   * touches without a `ttlSeconds` keep using this timeout. Resolves false when there is no
   * live session.
   */
  async setTimeout(sessionId: string, ttlSeconds: number): Promise<boolean> {
    this.#checkId(sessionId)
    const seconds = checkSeconds('ttlSeconds', ttlSeconds)
    const now = this.#now()
    return this.#track(() =>
      this.#updateCopies(sessionId, (pool) => pool.setTimeout(sessionId, seconds, now)),
    )
  }

  /** The session's timeout in seconds (its own, else the manager's default); null when there is no session. */
  async getTimeout(sessionId: string): Promise<number | null> {
    const current = await this.#readNewest(sessionId)
    if (current === null) return null
    return current.copy.ttlSeconds ?? this.#options.ttlSeconds
  }

  /**
   * Deletes expired sessions and tombstones whose time is up on every reachable store, in
   * batches of `batchSize` through the expiry index. The `sweepIntervalSeconds` option runs it
   * in the background.
   */
  async sweep(options: SweepOptions = {}): Promise<SweepResult> {
    const checked = callOptions(options)
    batchSizeOption(checked.batchSize)
    return this.#track(() => sweepStores(this.#pools, checked))
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
    if (this.#closing !== undefined) throw new ManagerClosedError()
    const checked = callOptions(options)
    for await (const { id } of listLiveSessions(this.#pools, this.#options.copies, checked))
      yield id
  }

  /**
   * Ids of the live sessions whose data has `key` equal to `value` (deep equality), in id
   * order. A full scan of every store, in constant memory; for per-user lookups prefer the
   * indexed {@link findByOwner}.
   */
  async *find(key: string, value: unknown, options: ListOptions = {}): AsyncGenerator<string> {
    checkKey(key)
    for await (const { id, data } of this.#scanData(options)) {
      if (Object.hasOwn(data, key) && isDeepStrictEqual(data[key], value)) yield id
    }
  }

  /** Ids of the live sessions whose data has `key` at all (a full scan, like {@link find}). */
  async *listWithKey(key: string, options: ListOptions = {}): AsyncGenerator<string> {
    checkKey(key)
    for await (const { id, data } of this.#scanData(options)) {
      if (Object.hasOwn(data, key)) yield id
    }
  }

  /**
   * Ids of the live sessions whose `ownerKey` value is `owner`, through the owner index on
   * every reachable store (no scan). Each candidate is confirmed by a read, so a stale copy
   * with an old owner never counts.
   */
  async findByOwner(owner: string | number): Promise<string[]> {
    const key = this.#options.ownerKey
    if (key === null)
      throw new InvalidOptionError('ownerKey', 'must be set to find sessions by owner')
    const wanted = checkOwner(owner)
    const stores = this.#pools.filter((pool) => pool.circuit.state === 'up')
    const failures: StoreFailure[] = []
    const candidates = new Set<string>()
    await Promise.all(
      stores.map(async (pool) => {
        try {
          for (const row of await pool.idsByOwner(wanted)) candidates.add(row.id)
        } catch (error) {
          failures.push({ storeId: pool.id, error: error as Error })
        }
      }),
    )
    if (this.#pools.length - stores.length + failures.length >= this.#options.copies) {
      throw new NoStoreAvailableError('find every session of the owner', failures)
    }
    const owned: string[] = []
    for (const id of [...candidates].sort()) {
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

  async *#scanData(options: ListOptions): AsyncGenerator<{ id: string; data: SessionData }> {
    if (this.#closing !== undefined) throw new ManagerClosedError()
    const rows = listLiveSessions(this.#pools, this.#options.copies, {
      ...callOptions(options),
      withData: true,
    })
    for await (const { id, data } of rows) {
      try {
        yield { id, data: this.#options.codec.decode(data as Buffer) }
      } catch (error) {
        this.emit('unreadable-copy', { sessionId: id, storeId: null, error })
      }
    }
  }

  /** How many live sessions the cluster holds, each counted once (a full scan, like {@link list}). */
  async count(options: ListOptions = {}): Promise<number> {
    let count = 0
    for await (const _ of this.list(options)) count++
    return count
  }

  /**
   * Writes encoded data to the session's first `copies` reachable stores (see
   * {@link writeSession}). With `expectedVersion` the write is a compare-and-set decided by the
   * first reachable store alone (one store serializes concurrent writers); the other copies
   * follow once it has accepted.
   */
  async #write(sessionId: string, bytes: Buffer, request: WriteRequest): Promise<WriteResult> {
    if (this.#previousOrders !== null && (await this.#destroyedUnderPreviousPlacement(sessionId))) {
      // Destroyed before the change of the store list, and not moved yet: the tombstone sits
      // under the old placement only. Drop the write as a tombstone would, and move it.
      this.#moveInBackground(sessionId)
      this.emit('write-after-destroy', { sessionId })
      return { version: 0, storeIds: [], degraded: false, dropped: true }
    }
    const order = this.#writeOrder(sessionId)
    const fields = {
      expiresAtMillis: request.expiresAtMillis,
      explicitExpiry: request.explicitExpiry,
      ttlSeconds: request.ttlSeconds,
      owner: request.owner,
      now: request.now,
    }
    const { expectedVersion } = request
    // A compare-and-set that applies finds the session at expectedVersion and writes above it;
    // one that cannot match any version the library mints is left to the store to refuse.
    let version =
      expectedVersion !== undefined && expectedVersion + 1 < VERSION_CEILING
        ? this.#versions.above(expectedVersion)
        : this.#versions.next()
    for (let attempt = 1; ; attempt++) {
      const write = (pool: StorePool): Promise<WriteOutcome> =>
        pool.write(sessionId, bytes, { ...fields, version, expectedVersion })
      let walk: WalkResult<StorePool, WriteOutcome>
      if (expectedVersion === undefined) {
        walk = await askInOrder(order, 0, this.#options.copies, write)
      } else {
        const primary = await askInOrder(order, 0, 1, write)
        const decided = primary.answers[0]?.value
        if (decided?.kind === 'outdated') {
          throw new VersionConflictError(decided.storedVersion, expectedVersion)
        }
        const followers =
          decided?.kind === 'written'
            ? await askInOrder(order, primary.next, this.#options.copies - 1, (pool) =>
                pool.write(sessionId, bytes, { ...fields, version, expectedVersion: undefined }),
              )
            : { answers: [], failures: [], next: primary.next }
        walk = {
          answers: [...primary.answers, ...followers.answers],
          failures: [...primary.failures, ...followers.failures],
          next: followers.next,
        }
      }
      const { answers, failures } = walk
      if (answers.some((answer) => answer.value.kind === 'tombstone')) {
        await this.#buryStrayCopies(sessionId, answers)
        this.emit('write-after-destroy', { sessionId })
        return { version, storeIds: [], degraded: false, dropped: true }
      }
      // A store holds the session at a version at least as high as ours. On the first attempt
      // that may be a write made before ours by an app server whose clock runs ahead: ours must
      // still win, so it is made again above that version (for this session only). On a later
      // attempt, a version above the one just proposed (itself above everything seen before)
      // landed while this write was under way: a concurrent write that supersedes it there.
      // An equal version is another writer's twin proposal: that copy holds other data at
      // our version, so the write is made again. Never after a compare-and-set: its primary
      // decided.
      const stored = answers.flatMap((answer) =>
        answer.value.kind === 'outdated' ? [answer.value.storedVersion] : [],
      )
      const mustRetry =
        expectedVersion === undefined &&
        stored.length > 0 &&
        (attempt === 1 || stored.some((storedVersion) => storedVersion === version))
      if (mustRetry) {
        const newest = Math.max(...stored)
        if (attempt >= MAX_WRITE_ATTEMPTS) throw new VersionConflictError(newest)
        if (newest + 1 >= VERSION_CEILING) throw new VersionOverflowError(newest)
        // Two writers that each won one copy would otherwise go on splitting the copies in
        // lockstep: a short random pause lets one of them through first.
        if (attempt > 1) await delay(Math.random() * 2 ** attempt)
        version = this.#versions.above(newest)
        continue
      }
      const superseded = expectedVersion === undefined && attempt > 1
      const held = answers.filter(
        (answer) =>
          answer.value.kind === 'written' || (superseded && answer.value.kind === 'outdated'),
      )
      const refused = answers.flatMap((answer) =>
        answer.value.kind === 'outdated' && !superseded
          ? [
              {
                storeId: answer.store.id,
                error: new VersionConflictError(answer.value.storedVersion),
              },
            ]
          : [],
      )
      this.#checkCopies(sessionId, held.length, [...failures, ...refused])
      await this.#hintMissedStores(sessionId, held)
      await this.#clearPreviousPlacement(sessionId, held, (pool) =>
        pool.removeCopy(sessionId, version),
      )
      return {
        version,
        storeIds: held.map((answer) => answer.store.id),
        degraded: held.length < this.#options.copies,
        dropped: false,
      }
    }
  }

  /** Runs a metadata update on the session's first `copies` reachable stores; true if any had a live copy. */
  async #updateCopies(
    sessionId: string,
    update: (pool: StorePool) => Promise<boolean>,
  ): Promise<boolean> {
    const { answers, failures } = await askInOrder(
      this.#writeOrder(sessionId),
      0,
      this.#options.copies,
      update,
    )
    if (answers.length === 0) throw new NoStoreAvailableError('update the session', failures)
    return answers.some((answer) => answer.value)
  }

  /**
   * Destroys the session: its copies are replaced by tombstones, which no later write or
   * returning store can undo. Acknowledged like a write.
   */
  async destroySession(sessionId: string): Promise<void> {
    this.#checkId(sessionId)
    return this.#track(async () => {
      const version = this.#versions.next()
      const { answers, failures } = await askInOrder(
        this.#writeOrder(sessionId),
        0,
        this.#options.copies,
        (pool) => pool.destroy(sessionId, version, this.#tombstoneExpiry()),
      )
      this.#checkCopies(sessionId, answers.length, failures)
      await this.#hintMissedStores(sessionId, answers)
      // The new placement's tombstones answer every read first; the old copies just go.
      await this.#clearPreviousPlacement(sessionId, answers, (pool) =>
        pool.removeCopy(sessionId, version),
      )
    })
  }

  /**
   * During a change of the store list, leaves nothing under the old placement that could come
   * back: the old placement's first `copies` stores that the write or destroy did not reach get
   * `clear` (a delete of copies older than the write).
   */
  async #clearPreviousPlacement(
    sessionId: string,
    reached: StoreAnswer<StorePool, unknown>[],
    clear: (pool: StorePool) => Promise<unknown>,
  ): Promise<void> {
    if (this.#previousOrders === null) return
    const done = new Set(reached.map((answer) => answer.store))
    const old = this.#previousOrders
      .order(sessionId)
      .slice(0, this.#options.copies)
      .filter((pool) => !done.has(pool) && pool.circuit.state === 'up')
    await Promise.allSettled(old.map(clear))
  }

  /** Whether a store of the old placement holds a tombstone for the session. */
  async #destroyedUnderPreviousPlacement(sessionId: string): Promise<boolean> {
    const old = (this.#previousOrders as OrderCache<StorePool>)
      .order(sessionId)
      .slice(0, this.#options.copies)
      .filter((pool) => pool.circuit.state === 'up')
    const copies = await Promise.allSettled(old.map((pool) => pool.read(sessionId)))
    return copies.some((copy) => copy.status === 'fulfilled' && copy.value?.deleted === true)
  }

  /** Moves a session found under the old placement to its new stores (read-through). */
  #moveInBackground(sessionId: string): void {
    if (this.#closing !== undefined) return
    this.#active++
    repairSessions(this.#repairContext, [sessionId], { dropExtras: true })
      .then(({ failed }) => {
        if (failed.length === 0) this.emit('session-moved', { sessionId })
      })
      .catch(() => {})
      .then(this.#settled, this.#settled)
  }

  /** Creates the session table on every store (idempotent). Rejects if any store fails. */
  async applySchema(): Promise<void> {
    await Promise.all(this.#pools.map((pool) => pool.applySchema()))
  }

  /**
   * Re-copies every session to where it belongs: walks every reachable store in batches
   * (constant memory), puts each session's newest copy (or tombstone) on the first `copies`
   * reachable stores of its order, removes stale copies and copies outside those stores once
   * the right stores hold the session, and deletes tombstones whose time is up. Idempotent:
   * a second run right after changes nothing.
   */
  async repair(options: RepairOptions = {}): Promise<RepairResult> {
    const checked = callOptions(options)
    batchSizeOption(checked.batchSize)
    return this.#track(() => repairAllStores(this.#pools, this.#repairContext, checked))
  }

  /**
   * Moves every session to the first `copies` reachable stores of its order under the current
   * store list, and removes its copies everywhere else — on stores that left the list
   * (`previousStores`) too. The same walk as {@link repair}: batches, constant memory, while
   * the app keeps serving. Stop it with `signal` and resume with the `resumeFrom` it returns.
   * When it resolves with `done: true` (and a second run moves nothing), every session is in
   * place and `previousStores` can be dropped from the config.
   */
  async rebalance(options: RepairOptions = {}): Promise<RepairResult> {
    return this.repair(options)
  }

  /** Per store: state, operations, errors and latency. */
  stats(): { stores: StoreStats[] } {
    return {
      stores: this.#pools.map((pool) => ({
        id: pool.id,
        state: pool.circuit.state,
        behind: pool.circuit.behind,
        ...pool.counters,
        latency: pool.latency.percentiles(),
      })),
    }
  }

  /**
   * Stops accepting work, lets operations in flight settle, then ends every connection.
   * Safe to call more than once.
   */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      await Promise.all([this.#healthCheck.stop(), this.#sweeper.stop()])
      if (this.#active > 0) await new Promise<void>((resolve) => (this.#drained = resolve))
      await this.#handoff.settle()
      await Promise.allSettled(this.#pools.map((pool) => pool.close()))
    })()
    return this.#closing
  }

  [inspect.custom](): string {
    return `SessionManager { stores: [${this.#pools.map((pool) => `'${pool.id}'`).join(', ')}], copies: ${this.#options.copies} }`
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

  /** The session's order over the configured stores. */
  #order(sessionId: string): readonly StorePool[] {
    return this.#orders.order(sessionId)
  }

  /**
   * Stores a read may ask, in order: down stores are left out; stores that are behind (missed
   * writes not yet replayed) come last, unless `readQuorum` > 1, where versions decide anyway.
   */
  #readOrder(sessionId: string): StorePool[] {
    const order = this.#order(sessionId).filter((pool) => pool.circuit.state === 'up')
    if (this.#options.readQuorum > 1) return order
    const ready = order.filter((pool) => !pool.circuit.behind)
    return ready.length === order.length
      ? order
      : [...ready, ...order.filter((p) => p.circuit.behind)]
  }

  /**
   * Stores a read could not ask that may hold the session: those that failed during the read,
   * and those skipped as down that come before the last store that answered.
   */
  #unavailable(
    sessionId: string,
    answers: StoreAnswer<StorePool, unknown>[],
    failed: number,
  ): number {
    const order = this.#order(sessionId)
    const lastAnswered = Math.max(...answers.map(({ store }) => order.indexOf(store)))
    const skipped = order.slice(0, lastAnswered).filter((pool) => pool.circuit.state === 'down')
    return failed + skipped.length
  }

  /** The first store of the session's order that may answer reads, if it is ready to. */
  #firstReadable(sessionId: string): StorePool | undefined {
    for (const pool of this.#orders.order(sessionId)) {
      if (pool.circuit.state === 'up') return pool.circuit.behind ? undefined : pool
    }
    return undefined
  }

  /** Stores a write may use, in order: every store whose circuit is closed. */
  #writeOrder(sessionId: string): StorePool[] {
    return this.#order(sessionId).filter((pool) => pool.circuit.state === 'up')
  }

  /** Stores among the first `copies` of the order that the write did not reach get a hint. */
  async #hintMissedStores(
    sessionId: string,
    answers: StoreAnswer<StorePool, unknown>[],
  ): Promise<void> {
    const holders = answers.map((answer) => answer.store)
    const missed = this.#order(sessionId)
      .slice(0, this.#options.copies)
      .filter((pool) => !holders.includes(pool))
    if (missed.length > 0) await this.#handoff.record(sessionId, missed, holders)
  }

  #storeDown(pool: StorePool, error: Error): void {
    this.#wasDown.add(pool)
    this.emit('store-down', { storeId: pool.id, error })
  }

  #catchUp(pool: StorePool): void {
    void this.#handoff.replay(pool).then((done) => {
      if (done && this.#wasDown.delete(pool)) this.emit('store-up', { storeId: pool.id })
    })
  }

  /**
   * When the copies read disagree (a store among the session's first `copies` lacks the
   * newest copy or the tombstone), rewrite it there in the background.
   */
  #repairIfStale(
    sessionId: string,
    answers: StoreAnswer<StorePool, StoredCopy | null>[],
    verdict: ReadVerdict,
  ): void {
    const firstPositions = new Set(this.#order(sessionId).slice(0, this.#options.copies))
    const stale = answers.filter(({ store, value }) => {
      if (!firstPositions.has(store)) return false
      if (verdict.kind === 'destroyed') return value === null || !value.deleted
      return verdict.kind === 'live' && (value === null || value.version < verdict.version)
    })
    if (stale.length === 0 || this.#readRepairs >= MAX_READ_REPAIRS || this.#closing) return
    this.#readRepairs++
    const repair = repairSessions(this.#repairContext, [sessionId], { dropExtras: false })
      .then(({ failed }) => {
        if (failed.length === 0) {
          this.emit('read-repair', { sessionId, storeIds: stale.map(({ store }) => store.id) })
        }
      })
      .catch(() => {})
      .finally(() => this.#readRepairs--)
    this.#active++
    repair.then(this.#settled, this.#settled)
  }

  /** Tombstones must outlive every copy of the session, so none can come back (tombstoneTtlSeconds). */
  #tombstoneExpiry(): number {
    return this.#now() + this.#options.tombstoneTtlSeconds * 1000
  }

  /** The time by the `clock` option: read once per operation. */
  #now(): number {
    return this.#options.clock.now()
  }

  /**
   * What the copies read say: a tombstone anywhere means destroyed; otherwise the copy with
   * the highest version is the session, unless it has expired. A copy that does not decode
   * counts as missing (and is reported).
   */
  #verdict(
    sessionId: string,
    answers: StoreAnswer<StorePool, StoredCopy | null>[],
    now: number,
  ): ReadVerdict {
    const live: { storeId: string; copy: StoredCopy }[] = []
    for (const { store, value } of answers) {
      if (value === null) continue
      if (value.deleted) return { kind: 'destroyed' }
      live.push({ storeId: store.id, copy: value })
    }
    // Highest version first; among equal versions the latest expiry (a touch may have missed a copy).
    live.sort(
      (a, b) => b.copy.version - a.copy.version || b.copy.expiresAtMillis - a.copy.expiresAtMillis,
    )
    for (const { storeId, copy } of live) {
      if (copy.expiresAtMillis <= now) return { kind: 'none' }
      try {
        const data = this.#options.codec.decode(copy.data as Buffer)
        return { kind: 'live', data, version: copy.version, copy }
      } catch (error) {
        this.emit('unreadable-copy', { sessionId, storeId, error })
      }
    }
    return { kind: 'none' }
  }

  #checkCopies(sessionId: string, written: number, failures: StoreFailure[]): void {
    const { copies, minCopies } = this.#options
    if (written < minCopies) throw new NotEnoughStoresError(written, minCopies, failures)
    if (written < copies) {
      const event: DegradedWriteEvent = {
        sessionId,
        copiesWritten: written,
        copiesWanted: copies,
        failures,
      }
      this.emit('degraded-write', event)
    }
  }

  /** A write met a tombstone: the stores where it created a live copy get a tombstone too. */
  async #buryStrayCopies(
    sessionId: string,
    answers: StoreAnswer<StorePool, { kind: string }>[],
  ): Promise<void> {
    const version = this.#versions.next()
    await Promise.allSettled(
      answers
        .filter((answer) => answer.value.kind === 'written')
        .map(({ store }) => store.destroy(sessionId, version, this.#tombstoneExpiry())),
    )
  }

  /** Runs an operation unless the manager is closing, counting it so that close() can wait for it. */
  #track<T>(operation: () => Promise<T>): Promise<T> {
    if (this.#closing !== undefined) return Promise.reject(new ManagerClosedError())
    let promise: Promise<T>
    try {
      promise = operation()
    } catch (error) {
      return Promise.reject(error)
    }
    this.#active++
    promise.then(this.#settled, this.#settled)
    return promise
  }

  readonly #settled = (): void => {
    if (--this.#active === 0) this.#drained?.()
  }
}

/**
 * What a change callback returned, awaited only when it is a promise: awaiting any other value
 * reads its `then`, which a hostile value (a revoked Proxy) turns into an untyped TypeError
 * before the data checks can refuse it with a typed error.
 */
function changeResult<T>(result: T | Promise<T>): Promise<{ next: T }> {
  // Wrapped, because resolving a promise with the value itself would read its `then` too.
  return types.isPromise(result)
    ? result.then((next) => ({ next }))
    : Promise.resolve({ next: result as T })
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

function delay(millis: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, millis).unref())
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
