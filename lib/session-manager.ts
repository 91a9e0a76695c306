/** The public object: checks every argument, then hands the work to the read path, the write path and the rest. */
import { ClusterOperations } from './cluster-operations.js'
import type { WriteOptions } from './call-arguments.js'
import {
  callOptions,
  checkExpectedVersion,
  checkSeconds,
  ownerOf,
  ownerOfEncoded,
  requestedExpiry,
} from './call-arguments.js'
import type { SessionData } from './codec.js'
import { encodeSessionData } from './codec.js'
import { VersionConflictError } from './errors.js'
import { assertSessionId, derivedSessionKey, generateSessionId, isValidSessionId } from './ids.js'
import { BackgroundRepairs } from './maintenance/background-repairs.js'
import type { SessionManagerOptions } from './options.js'
import type { ReadResult, VersionedSession } from './read-path.js'
import { ReadPath } from './read-path.js'
import { writeOrder } from './routing.js'
import type { LockedSessions, LockOptions } from './session-lock.js'
import { acquireLock, checkLockOptions, SessionLock } from './session-lock.js'
import type { SessionAccess, SessionChange, UpdateOptions } from './session-updates.js'
import {
  retryOnConflict,
  updateExisting,
  updateSession,
  withSessionLock,
} from './session-updates.js'
import {
  checkIncrement,
  checkKey,
  valuesToPut,
  withIncrement,
  withValue,
  withValues,
  withoutValue,
} from './session-values.js'
import type { Store } from './store/store.js'
import { checkFunction, wholeNumber } from './validate.js'
import { VersionClock } from './version-clock.js'
import type { WriteResult } from './write-path.js'
import { WritePath } from './write-path.js'

export type { WriteOptions } from './call-arguments.js'

/** How often setSessionTimeout starts over after a concurrent write, as the per-key updates do. */
const SET_TIMEOUT_RETRIES = 20
/** How many times regenerateSession starts over when the old session was written meanwhile. */
const REGENERATE_RETRIES = 20

/**
 * Reads and writes sessions over several MySQL stores. Create it with
 * {@link createSessionManager}; close it with {@link SessionManager.close}. Its events and
 * their payloads are {@link SessionManagerEvents} (docs/errors.md).
 */
export class SessionManager extends ClusterOperations {
  readonly #reads: ReadPath
  readonly #writes: WritePath
  readonly #access: SessionAccess
  readonly #locked: LockedSessions

  constructor(options: SessionManagerOptions) {
    super(options)
    const resolved = this.options
    const emit = this.emitEvent
    const { storeListChange, handoff } = this.cluster
    const order = (sessionId: string): readonly Store[] => this.cluster.order(sessionId)
    const repairs = new BackgroundRepairs(this.cluster.repairContext, handoff, this.work, emit)
    const moveInBackground = (sessionId: string): void => repairs.move(sessionId)
    this.#reads = new ReadPath({
      options: resolved,
      order,
      storeListChange,
      moveInBackground,
      repairInBackground: (sessionId, stale) => repairs.readRepair(sessionId, stale),
      lease: this.cluster.readLease,
      emit,
    })
    this.#writes = new WritePath({
      options: resolved,
      versions: new VersionClock(resolved.clock),
      order,
      storeListChange,
      handoff,
      lease: this.cluster.readLease,
      moveInBackground,
      handOffInBackground: (sessionId, stores, keepers, version) =>
        repairs.handOff(sessionId, stores, keepers, version),
      emit,
    })
    const readWithVersion = (id: string): Promise<VersionedSession | null> =>
      this.readSession(id, { withVersion: true })
    this.#access = {
      readWithVersion,
      writeSession: (id, data, writeOptions) => this.writeSession(id, data, writeOptions),
      lockSession: (id, lockOptions) => this.lockSession(id, lockOptions),
    }
    this.#locked = {
      readWithVersion,
      writeAtVersion: (id, data, expectedVersion) =>
        this.writeSession(id, data, { expectedVersion }),
      clock: resolved.clock,
      closing: () => this.work.closing,
    }
  }

  /** The ids of the stores, in the order `sessionId`'s copies prefer them. No I/O. */
  locate(sessionId: string): string[] {
    this.checkId(sessionId)
    return this.cluster.order(sessionId).map((store) => store.id)
  }

  /** A new random session id (signed when `secrets` is set), without writing anything. */
  generateId(): string {
    return this.options.idSigner?.generate() ?? generateSessionId()
  }

  /**
   * The id to use with this manager for a session id made elsewhere: a framework's `genid`,
   * a PHP client, a store being migrated from. An id that follows the manager's rules (16 to
   * 128 of `A-Za-z0-9_.-`) is its own key, so sessions already stored keep their ids; any
   * other string maps to a fixed 45-character key derived from it (`h-` and its SHA-256),
   * which places and stores the session like any id. With `secrets`, ids keep their rules:
   * every id maps to itself, and one that is not signed is refused as before. No I/O.
   * @throws {InvalidSessionIdError} when `id` is not a string, is empty, or holds an unpaired
   * UTF-16 surrogate (it has no UTF-8 form to derive a key from)
   */
  sessionKey(id: string): string {
    if (isValidSessionId(id) || this.options.idSigner !== null) return id
    if (typeof id !== 'string' || id === '') assertSessionId(id)
    return derivedSessionKey(id)
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
   * With `withVersion: true` it resolves a {@link VersionedSession}: the data with the
   * copy's version, expiry and timeout.
   */
  async readSession(sessionId: string): Promise<SessionData | null>
  async readSession(
    sessionId: string,
    options: { withVersion: true },
  ): Promise<VersionedSession | null>
  async readSession(
    sessionId: string,
    options?: { withVersion?: boolean },
  ): Promise<SessionData | VersionedSession | null> {
    // No default `{}` for options: an object allocated on every read for nothing.
    const withVersion = options !== undefined && callOptions(options).withVersion === true
    const current = await this.#readNewest(sessionId)
    if (current === null) return null
    return withVersion
      ? {
          data: current.data,
          version: current.copy.version,
          expiresAt: current.copy.expiresAtMillis,
          timeoutSeconds: current.copy.ttlSeconds ?? this.options.ttlSeconds,
        }
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
    this.checkId(sessionId)
    const bytes = encodeSessionData(
      this.options.codec,
      sessionId,
      data,
      this.options.maxSessionBytes,
    )
    const owner = ownerOfEncoded(this.options.codec, sessionId, bytes, this.options.ownerKey)
    const checked = callOptions(options)
    const now = this.options.clock.now()
    const expiresAt = this.#requestedExpiry(checked, now)
    const expectedVersion = checkExpectedVersion(checked.expectedVersion)
    return this.work.track(() =>
      this.#writes.write({
        sessionId,
        data: bytes,
        owner,
        expiresAtMillis: expiresAt ?? now + this.options.ttlSeconds * 1000,
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
    this.checkId(sessionId)
    return this.work.track(() => this.#writes.destroy(sessionId))
  }

  /**
   * Gives the session's data a new id and ends the old one (the defence against session
   * fixation): the new id gets the same data, expiry and per-session timeout, then the old id
   * is destroyed like {@link destroySession}. Resolves the new id, or null when the old session
   * does not exist, or was destroyed (or expired) while it ran: the new id then holds nothing,
   * so a logout that comes first is never undone. A write of the old session while it ran
   * starts it over, so that the new id gets the newest data (VersionConflictError after 20
   * tries). The data is encoded again for the new id (an encrypted row is bound to its
   * id), so it rejects with `SessionTooLargeError` when the stored data is larger than
   * today's `maxSessionBytes` (lowered since it was written); the old session then stays. A
   * failure after the new id was written destroys the new id before it rejects.
   */
  async regenerateSession(oldSessionId: string): Promise<string | null> {
    return retryOnConflict(REGENERATE_RETRIES, async () => {
      const current = await this.#readNewest(oldSessionId)
      if (current === null) return null
      const newId = this.generateId()
      const owner = ownerOf(current.data, this.options.ownerKey)
      // Encoded again rather than copied: an encrypted row is bound to its session's id.
      const { codec, maxSessionBytes } = this.options
      const bytes = encodeSessionData(codec, newId, current.data, maxSessionBytes)
      let carried = true
      try {
        await this.work.track(() => this.#writes.writeCopy(newId, current.copy, bytes, owner))
        // A destroy (a logout) or a write of the old session may have come between the read
        // and that copy: then the new id must not carry the session on (a logged-out session
        // would live again under it), nor its older data (the write would be lost with it).
        const now = await this.#readNewest(oldSessionId)
        if (now === null || now.copy.version !== current.copy.version) {
          await this.destroySession(newId)
          carried = false
          if (now === null) return null
          throw new VersionConflictError(now.copy.version, current.copy.version)
        }
        await this.destroySession(oldSessionId)
        return newId
      } catch (error) {
        // Whatever failed (the copy too: it may have landed with its answers lost), the caller
        // never learns the new id, so it must not carry the session on either (listed by
        // findByOwner, or a logout that came first undone).
        if (carried) await this.destroySession(newId).catch(() => {})
        throw error
      }
    })
  }

  /**
   * Extends the session's expiry on its copies to now + `ttlSeconds` (default: the session's
   * own timeout, else the manager's `ttlSeconds`) without rewriting its data. Never creates a
   * session: resolves false when there is no live session to touch.
   */
  async touch(sessionId: string, options: WriteOptions = {}): Promise<boolean> {
    this.checkId(sessionId)
    const now = this.options.clock.now()
    const expiresAt = this.#requestedExpiry(callOptions(options), now)
    // In place, without a new version, hint or announcement, unlike setSessionTimeout: a touch
    // only ever moves an expiry later (the statement takes the later of the two), and a copy
    // that missed it ends sooner, never later. Between copies of one version the later expiry
    // wins, and a copy read alone that has expired is never served alone (the read goes on by
    // quorum), so no read serves a session the touch meant to end; at worst an extension is
    // lost with the copies that took it. Stores that disagree (one has a live copy, another
    // none: a logout it missed) are judged as a read judges them.
    return this.work.track(async () => {
      const { updated, disagreed } = await this.#writes.updateCopies(sessionId, (store) =>
        store.touch(sessionId, expiresAt, now),
      )
      return disagreed ? (await this.#reads.newest(sessionId)) !== null : updated
    })
  }

  /**
   * Gives the session its own timeout: it expires `ttlSeconds` from now, and later writes and
   * touches without a `ttlSeconds` keep using this timeout. Resolves false when there is no
   * live session. The session is written again at a new version (its data as read, a
   * compare-and-set on the version read, started over if another write came first), so that
   * it is acknowledged like a write: a shorter timeout holds on every copy, including one on a
   * store the write missed. Being a write, it moves the version: a compare-and-set on a
   * version read before it (`expectedVersion`, a lock holder's write) then conflicts. The data
   * is encoded again as any write's, so it rejects with `SessionTooLargeError` when the stored
   * data is larger than today's `maxSessionBytes` (lowered since it was written).
   */
  async setSessionTimeout(sessionId: string, ttlSeconds: number): Promise<boolean> {
    this.checkId(sessionId)
    const seconds = checkSeconds('ttlSeconds', ttlSeconds)
    const { codec, maxSessionBytes } = this.options
    return retryOnConflict(SET_TIMEOUT_RETRIES, async () => {
      const current = await this.#readNewest(sessionId)
      if (current === null) return false
      const now = this.options.clock.now()
      const written = await this.work.track(() =>
        this.#writes.write({
          sessionId,
          // Encoded again as a write today stores it (the first key, today's compression), so
          // that the rewrite moves the row off a retiring key or out of the plain format.
          data: encodeSessionData(codec, sessionId, current.data, maxSessionBytes),
          owner: ownerOf(current.data, this.options.ownerKey),
          expiresAtMillis: now + seconds * 1000,
          explicitExpiry: true,
          ttlSeconds: seconds,
          expectedVersion: current.copy.version,
          now,
        }),
      )
      return !written.dropped
    })
  }

  /** The session's timeout in seconds (its own, else the manager's default); null when there is no session. */
  async getSessionTimeout(sessionId: string): Promise<number | null> {
    const current = await this.#readNewest(sessionId)
    if (current === null) return null
    return current.copy.ttlSeconds ?? this.options.ttlSeconds
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
    this.checkId(sessionId)
    checkFunction('change', change)
    // Each read once, and the expiry checked before the first read: a bad one would otherwise
    // be refused after the change ran.
    const { retries, ttlSeconds, expiresAt } = callOptions(options)
    const expiry = this.#requestedExpiry({ ttlSeconds, expiresAt }, this.options.clock.now())
    return updateSession(this.#access, sessionId, change, {
      retries: wholeNumber('retries', retries, 20, { min: 0, max: 1000 }),
      ttlSeconds,
      // The time checked, not the Date: its getTime could answer otherwise at the write.
      expiresAt: expiresAt === undefined ? undefined : (expiry ?? undefined),
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
    await this.#updateKey(sessionId, key, 'set a value in', (data) => withValue(data, key, value))
  }

  /** Removes `key` from an existing session. */
  async removeValue(sessionId: string, key: string): Promise<void> {
    await this.#updateKey(sessionId, key, 'remove a value from', (data) => withoutValue(data, key))
  }

  /**
   * Adds `by` to the number at `key` (0 when missing) and resolves the new value. Atomic: correct
   * under concurrent callers on any number of app servers. Rejects with
   * `InvalidSessionDataError`, writing nothing, when the sum is not finite or, both
   * numbers being integers, not a safe integer.
   */
  async increment(sessionId: string, key: string, by = 1): Promise<number> {
    checkIncrement(by)
    const add = (data: SessionData): SessionData => withIncrement(data, key, by)
    return (await this.#updateKey(sessionId, key, 'increment a value in', add))[key] as number
  }

  /** The whole session data: {@link readSession} under msession's name. */
  getAll(sessionId: string): Promise<SessionData | null> {
    return this.readSession(sessionId)
  }

  /** Merges `values` into an existing session's data (msession's `putAll`). */
  async putAll(sessionId: string, values: SessionData): Promise<void> {
    this.checkId(sessionId)
    const entries = valuesToPut(values)
    await updateExisting(this.#access, sessionId, 'put values in', (data) =>
      withValues(data, entries),
    )
  }

  /**
   * Takes the session's lease lock (msession's lock, HTTP_SessionServer's exclusive open). The
   * lock lives on the session's first store in service (a store that fails but is not down is
   * asked again, never skipped); it expires on its own after `leaseMillis` if the holder dies.
   * Readers are never blocked. Rejects with {@link LockTimeoutError} if another holder keeps it,
   * or that store keeps failing, past `waitMillis`.
   */
  async lockSession(sessionId: string, options: LockOptions = {}): Promise<SessionLock> {
    this.checkId(sessionId)
    const checked = checkLockOptions(callOptions(options))
    const order = (): Store[] => writeOrder(this.cluster.order(sessionId))
    return this.work.track(() => acquireLock(this.#locked, order, sessionId, checked))
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
   * The expiry a call asks for (call-arguments.ts), none earlier than half the sweep's grace
   * before `now`: past for app servers whose clocks run up to that far behind, and not yet
   * swept for as long after the write.
   */
  #requestedExpiry(options: WriteOptions, now: number): number | null {
    return requestedExpiry(options, now, now - this.options.sweepGraceSeconds * 500)
  }

  /** The winning copy of a session as a read sees it, with its data decoded; null if none. */
  #readNewest(sessionId: string): Promise<ReadResult | null> {
    // Callers are async, so a bad id still rejects. Neither this nor the operation is async:
    // each would wrap the read's promise in one more.
    this.checkId(sessionId)
    return this.work.track(() =>
      this.cluster.isReady
        ? this.#reads.newest(sessionId)
        : this.cluster.ready().then(() => this.#reads.newest(sessionId)),
    )
  }

  /** A per-key operation: the key and the id checked, then a read-modify-write of an existing session. */
  #updateKey(
    sessionId: string,
    key: string,
    operation: string,
    change: (data: SessionData) => SessionData,
  ): Promise<SessionData> {
    checkKey(key)
    this.checkId(sessionId)
    return updateExisting(this.#access, sessionId, operation, change)
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
