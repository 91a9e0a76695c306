import { EventEmitter } from 'node:events'
import { inspect } from 'node:util'
import type { SessionData } from './codec.js'
import { encodeSessionData } from './codec.js'
import type { StoreFailure } from './errors.js'
import { ManagerClosedError, NoStoreAvailableError, NotEnoughStoresError } from './errors.js'
import { assertSessionId, generateSessionId } from './ids.js'
import type { ResolvedOptions, SessionManagerOptions } from './options.js'
import { checkSeconds, resolveOptions } from './options.js'
import { OrderCache } from './placement.js'
import { buildStatements } from './statements.js'
import type { StoreCounters, StoredCopy } from './store-pool.js'
import { StorePool } from './store-pool.js'
import type { StoreAnswer } from './store-walk.js'
import { askInOrder } from './store-walk.js'
import { VersionClock } from './version-clock.js'

/** Per-call options of {@link SessionManager.writeSession}. */
export interface WriteOptions {
  /** Lifetime from now; defaults to the manager's `ttlSeconds`. */
  ttlSeconds?: number
}

/** What an acknowledged write did. */
export interface WriteResult {
  /** The session's version after the write. */
  version: number
  /** Stores that now hold the new data, in order of preference. */
  storeIds: string[]
  /** True when fewer than `copies` copies were written (at least `minCopies`). */
  degraded: boolean
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
}

/**
 * Reads and writes sessions over several MySQL stores. Create it with
 * {@link createSessionManager}; close it with {@link SessionManager.close}.
 *
 * Events: `degraded-write` ({@link DegradedWriteEvent}), `write-after-destroy`
 * (`{ sessionId }`: a write reached a destroyed session and was dropped),
 * `unreadable-copy` (`{ sessionId, storeId, error }`: a copy the codec could not decode).
 */
export class SessionManager extends EventEmitter {
  readonly #options: ResolvedOptions
  readonly #orders: OrderCache
  /** Pools indexed like {@link OrderCache.sortedIds}. */
  readonly #pools: readonly StorePool[]
  readonly #clock = new VersionClock()
  readonly #inFlight = new Set<Promise<unknown>>()
  #closing: Promise<void> | undefined

  constructor(options: SessionManagerOptions) {
    super()
    this.#options = resolveOptions(options)
    this.#orders = new OrderCache(
      this.#options.stores.map((store) => store.id),
      this.#options.orderCacheSize,
    )
    const statements = buildStatements(this.#options.table)
    const byId = new Map(this.#options.stores.map((store) => [store.id, store]))
    this.#pools = this.#orders.sortedIds.map(
      (id) => new StorePool(byId.get(id)!, this.#options, statements),
    )
  }

  /** The ids of the stores, in the order `sessionId`'s copies prefer them. No I/O. */
  locate(sessionId: string): string[] {
    assertSessionId(sessionId)
    return this.#orders.order(sessionId).map((index) => this.#orders.sortedIds[index] as string)
  }

  /** Creates a session with `data` and returns its new random id. */
  async createSession(data: SessionData = {}, options: WriteOptions = {}): Promise<string> {
    const id = generateSessionId()
    await this.writeSession(id, data, options)
    return id
  }

  /**
   * The session's data, or null when it does not exist, has expired or was destroyed.
   * Asks the first reachable store of the session's order; if it has no live copy, asks the
   * next reachable stores (up to `maxReadStores` in all) in parallel.
   */
  async readSession(sessionId: string): Promise<SessionData | null> {
    assertSessionId(sessionId)
    return this.#track(async () => {
      const order = this.#order(sessionId)
      const first = await askInOrder(order, 0, 1, (pool) => pool.read(sessionId))
      const firstAnswer = first.answers[0]
      if (firstAnswer !== undefined) {
        const data = this.#liveData(sessionId, [firstAnswer], Date.now())
        if (data !== undefined) return data
      }
      const rest = await askInOrder(order, first.next, this.#options.maxReadStores - 1, (pool) =>
        pool.read(sessionId),
      )
      const answers = [...first.answers, ...rest.answers]
      if (answers.length === 0) {
        throw new NoStoreAvailableError('read the session', [...first.failures, ...rest.failures])
      }
      return this.#liveData(sessionId, answers, Date.now()) ?? null
    })
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
    assertSessionId(sessionId)
    const bytes = encodeSessionData(this.#options.codec, data, this.#options.maxSessionBytes)
    const expiresAt = this.#expiry(options.ttlSeconds)
    return this.#track(async () => {
      const version = this.#clock.next()
      const order = this.#order(sessionId)
      const { answers, failures } = await askInOrder(order, 0, this.#options.copies, (pool) =>
        pool.write(sessionId, version, expiresAt, bytes, null),
      )
      if (answers.some((answer) => answer.value.kind === 'tombstone')) {
        await this.#buryStrayCopies(sessionId, answers)
        this.emit('write-after-destroy', { sessionId })
        return { version, storeIds: [], degraded: false }
      }
      this.#checkCopies(sessionId, answers.length, failures)
      const versions = answers.map((answer) =>
        answer.value.kind === 'written' ? answer.value.version : version,
      )
      const newest = Math.max(...versions)
      this.#clock.observe(newest)
      await this.#alignVersions(sessionId, answers, versions, newest)
      return {
        version: newest,
        storeIds: answers.map((answer) => answer.store.id),
        degraded: answers.length < this.#options.copies,
      }
    })
  }

  /**
   * Destroys the session: its copies are replaced by tombstones, which no later write or
   * returning store can undo. Acknowledged like a write.
   */
  async destroySession(sessionId: string): Promise<void> {
    assertSessionId(sessionId)
    return this.#track(async () => {
      const version = this.#clock.next()
      const { answers, failures } = await askInOrder(
        this.#order(sessionId),
        0,
        this.#options.copies,
        (pool) => pool.destroy(sessionId, version, this.#tombstoneExpiry()),
      )
      this.#checkCopies(sessionId, answers.length, failures)
    })
  }

  /** Creates the session table on every store (idempotent). Rejects if any store fails. */
  async applySchema(): Promise<void> {
    await Promise.all(this.#pools.map((pool) => pool.applySchema()))
  }

  /** Operation and error counts per store. */
  stats(): { stores: StoreStats[] } {
    return { stores: this.#pools.map((pool) => ({ id: pool.id, ...pool.counters })) }
  }

  /**
   * Stops accepting work, lets operations in flight settle, then ends every connection.
   * Safe to call more than once.
   */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      await Promise.allSettled([...this.#inFlight])
      await Promise.allSettled(this.#pools.map((pool) => pool.close()))
    })()
    return this.#closing
  }

  [inspect.custom](): string {
    return `SessionManager { stores: [${this.#pools.map((pool) => `'${pool.id}'`).join(', ')}], copies: ${this.#options.copies} }`
  }

  #order(sessionId: string): StorePool[] {
    return this.#orders.order(sessionId).map((index) => this.#pools[index] as StorePool)
  }

  #expiry(ttlSeconds: number | undefined): number {
    const seconds =
      ttlSeconds === undefined ? this.#options.ttlSeconds : checkSeconds('ttlSeconds', ttlSeconds)
    return Date.now() + seconds * 1000
  }

  /** Tombstones outlive any copy written with the default TTL, so none can come back. */
  #tombstoneExpiry(): number {
    return Date.now() + this.#options.ttlSeconds * 1000
  }

  /**
   * Picks the answer among the copies read: a tombstone anywhere means destroyed (null);
   * otherwise the newest unexpired copy that decodes; undefined when none is live.
   */
  #liveData(
    sessionId: string,
    answers: StoreAnswer<StorePool, StoredCopy | null>[],
    now: number,
  ): SessionData | null | undefined {
    const copies: { storeId: string; copy: StoredCopy }[] = []
    for (const { store, value } of answers) {
      if (value === null) continue
      if (value.deleted) return null
      this.#clock.observe(value.version)
      if (value.expiresAtMillis > now && value.data !== null)
        copies.push({ storeId: store.id, copy: value })
    }
    copies.sort((a, b) => b.copy.version - a.copy.version)
    for (const { storeId, copy } of copies) {
      try {
        return this.#options.codec.decode(copy.data as Buffer)
      } catch (error) {
        this.emit('unreadable-copy', { sessionId, storeId, error })
      }
    }
    return undefined
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

  /**
   * Copies written in one write can end with different versions when a store had a newer
   * version than the one proposed (app servers' clocks disagree); raise the lower ones so that
   * version comparison across copies stays meaningful.
   */
  async #alignVersions(
    sessionId: string,
    answers: StoreAnswer<StorePool, unknown>[],
    versions: number[],
    newest: number,
  ): Promise<void> {
    await Promise.allSettled(
      answers.map(({ store }, index) => {
        const written = versions[index] as number
        return written === newest ? undefined : store.alignVersion(sessionId, written, newest)
      }),
    )
  }

  /** A write met a tombstone: the stores where it created a live copy get a tombstone too. */
  async #buryStrayCopies(
    sessionId: string,
    answers: StoreAnswer<StorePool, { kind: string }>[],
  ): Promise<void> {
    const version = this.#clock.next()
    await Promise.allSettled(
      answers
        .filter((answer) => answer.value.kind === 'written')
        .map(({ store }) => store.destroy(sessionId, version, this.#tombstoneExpiry())),
    )
  }

  #track<T>(operation: () => Promise<T>): Promise<T> {
    if (this.#closing !== undefined) return Promise.reject(new ManagerClosedError())
    const promise = operation()
    this.#inFlight.add(promise)
    const forget = (): void => {
      this.#inFlight.delete(promise)
    }
    promise.then(forget, forget)
    return promise
  }
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
