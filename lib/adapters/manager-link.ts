/** What the Express and Fastify stores share: their link to a session manager and its events. */
import type { EventEmitter } from 'node:events'
import type { SessionCodec, SessionData } from '../codec.js'
import { jsonCodec } from '../codec.js'
import { InvalidOptionError, VersionConflictError } from '../errors.js'
import { checkReadable, secondsOption } from '../validate.js'
import type { SessionManagerOptions } from '../options.js'
import type { VersionedSession } from '../read-path.js'
import type { SessionManager } from '../session-manager.js'
import { createSessionManager } from '../session-manager.js'
import type { CookieFacts } from './cookie-expiry.js'
import {
  cookieLifetime,
  givenCookie,
  sameLifetime,
  withoutCookieProto,
  withStoredExpiry,
} from './cookie-expiry.js'
import type { LoadedSession, SeenSession } from './touch-throttle.js'
import { dataFingerprint, SeenSessions, touchIsDue } from './touch-throttle.js'
import { clearListed, isMalformedId, listedCount, listedIds, listedSessions } from './listing.js'

/** How often a touch that changes the cookie's lifetime puts it over another write. */
const REPLACE_COOKIE_ATTEMPTS = 3

/** The adapter option naming a manager the application created (and closes itself). */
export interface ExistingManagerOption {
  /**
   * A manager the application created, possibly shared with other code. The store's `close()`
   * leaves it open. Give either this or `managerOptions`.
   * @default none
   */
  manager: SessionManager
  managerOptions?: undefined
}

/** The adapter option asking the store to create (and own) its manager. */
export interface OwnManagerOption {
  manager?: undefined
  /**
   * Options for a manager the store creates with `createSessionManager` and closes in its
   * `close()`. Give either this or `manager`.
   * @default none
   */
  managerOptions: SessionManagerOptions
}

/** Where an adapter's sessions live: a given manager, or options for one it creates. */
export type ManagerSource = ExistingManagerOption | OwnManagerOption

/** The adapters' `touchAfterSeconds` option (see {@link ManagerLink}). */
export interface TouchThrottleOption {
  /**
   * Skip a touch, and a save of a session whose data did not change, when it would move the
   * stored expiry by less than this many seconds (connect-mongo's `touchAfter`). With
   * `rolling` sessions every request is a touch, and with `copies: 2` each touch is two
   * writes; with a throttle of 60, an active session costs at most one touch a minute, and
   * its stored expiry lags the cookie's by less than a minute. A save that changes the data is
   * always written: the store compares the bytes the manager's codec stores when it created
   * the manager (`managerOptions`); with a `manager` given, whose codec it cannot see, data
   * that JSON does not show exactly (a Map, a Date, an undefined value) counts as changed.
   * 0 writes every touch.
   * @default 0
   */
  touchAfterSeconds?: number
}

/**
 * What both framework adapters share: owning or borrowing the manager, cookie-driven expiry,
 * any id the framework makes (kept under {@link SessionManager.sessionKey}; with `secrets`,
 * an unsigned id is "no session"), listings, and the store's events:
 * - `write-after-destroy` (`{ sessionId }`): a save through this store reached a destroyed
 *   session and was dropped (the manager's event, for this store's own writes only);
 * - `disconnect`: no store can serve any more (every store is down);
 * - `connect`: after a `disconnect`, a store serves again.
 */
export class ManagerLink {
  readonly manager: SessionManager
  readonly #owned: boolean
  readonly #events: EventEmitter
  /** Keys with a save in flight through this store: the framework's id and the count. */
  readonly #saving = new Map<string, { id: string; count: number }>()
  readonly #touchAfterMillis: number
  /** What this store last read or wrote of each session: its expiry, cookie lifetime, data. */
  readonly #seen = new SeenSessions()
  /** The codec the manager stores data with, when known (a manager this store created). */
  readonly #codec: SessionCodec | undefined
  #disconnected = false
  #closing: Promise<void> | undefined

  constructor(events: EventEmitter, source: ManagerSource, throttle: TouchThrottleOption = {}) {
    if (source === null || typeof source !== 'object') {
      throw new InvalidOptionError('options', 'must be an object with manager or managerOptions')
    }
    checkReadable('options', source)
    const { manager, managerOptions } = source
    checkReadable('managerOptions', managerOptions)
    if ((manager === undefined) === (managerOptions === undefined)) {
      throw new InvalidOptionError(
        'manager',
        '(or else managerOptions, but not both) must be given: a SessionManager, or options to create one',
      )
    }
    if (
      manager !== undefined &&
      typeof (manager as Partial<SessionManager>).readSession !== 'function'
    ) {
      throw new InvalidOptionError('manager', 'must be a SessionManager (see createSessionManager)')
    }
    this.#touchAfterMillis =
      secondsOption('touchAfterSeconds', throttle.touchAfterSeconds, 0, 0, 31_536_000) * 1000
    this.#events = events
    this.#owned = manager === undefined
    // A given manager's codec is not public: fingerprints then fall back to exact JSON.
    this.#codec = manager === undefined ? (managerOptions?.codec ?? jsonCodec) : undefined
    this.manager = manager ?? createSessionManager(managerOptions as SessionManagerOptions)
    this.manager.on('write-after-destroy', this.#onWriteAfterDestroy)
    this.manager.on('store-down', this.#onStoreDown)
    this.manager.on('store-up', this.#onStoreUp)
    if (this.#everyStoreDown()) {
      // A borrowed manager may already be cut off; tell listeners attached in this tick.
      this.#disconnected = true
      process.nextTick(() => this.#events.emit('disconnect'))
    }
  }

  /**
   * The session's data; null when absent, expired, destroyed, or refused (unsigned while the
   * manager has `secrets`). A cookie with an expiry shows the stored one, so a touch (which
   * moves only the stored expiry) is seen by the next read.
   */
  async read(sessionId: string): Promise<SessionData | null> {
    try {
      const key = this.manager.sessionKey(sessionId)
      const current = await this.manager.readSession(key, { withVersion: true })
      if (current === null) return null
      this.#rememberRead(key, current)
      return withStoredExpiry(withoutCookieProto(current.data), current.expiresAt)
    } catch (error) {
      if (isMalformedId(error)) return null
      throw error
    }
  }

  /**
   * Writes the session with its cookie's expiry (else the manager's timeout); a cookie that
   * has already expired destroys the session instead. A session destroyed meanwhile stays
   * destroyed: the manager drops the write and this store emits `write-after-destroy`.
   */
  async save(
    sessionId: string,
    session: object,
    unchangedSinceLoad: (fingerprint: string) => boolean = () => false,
  ): Promise<void> {
    const now = Date.now()
    const { expiresAt, lifetime } = givenCookie(session, now)
    if (expiresAt !== null && expiresAt <= now) return this.destroy(sessionId)
    const key = this.manager.sessionKey(sessionId)
    // A browser-session cookie leaves the expiry to the session's timeout: now plus it.
    const wanted = expiresAt ?? this.#timeoutExpiry(key, now)
    if (
      wanted !== null &&
      (await this.#savedAsTouch(
        key,
        session,
        { expiresAt, wanted, lifetime, now },
        unchangedSinceLoad,
      ))
    ) {
      return
    }
    const saving = this.#saving.get(key) ?? { id: sessionId, count: 0 }
    saving.count += 1
    this.#saving.set(key, saving)
    try {
      const fingerprint = this.fingerprintOf(session)
      const written = await this.manager.writeSession(
        key,
        session as SessionData,
        expiresAt === null ? undefined : { expiresAt },
      )
      this.#see(key, written.dropped ? null : wanted, fingerprint, lifetime, written.version)
    } finally {
      saving.count -= 1
      if (saving.count === 0) this.#saving.delete(key)
    }
  }

  /**
   * Extends a live session to its cookie's expiry (else the manager's timeout); never creates
   * one. Resolves whether there was a live session. express-session touches instead of saving
   * whenever the data did not change, even when the app changed the cookie, so a touch does
   * what a save of its cookie would, as express-session's MemoryStore does (it stores the
   * cookie it is given):
   * - a cookie with another lifetime than the stored one (`maxAge` changed, or made null for a
   *   browser-session cookie) is stored with the session, and destroys it when it has already
   *   expired (`expires` in the past, `maxAge` 0 or negative); when the session was built from
   *   a read (`loaded`), only if the request changed the lifetime it loaded (one that kept it
   *   while another request stored another extends the session by the stored lifetime);
   * - a cookie with the stored lifetime only moves the expiry later: the manager's touch never
   *   shortens. An earlier expiry with the same lifetime comes from a request that began
   *   before another one extended the session (a long streamed response: express-session
   *   fixes the cookie when the headers go out and touches when the response ends), and the
   *   browser holds the later cookie: the session is neither shortened, nor rewritten, nor
   *   destroyed when that earlier cookie has expired;
   * - an expired cookie that carries no lifetime (no `originalMaxAge`) destroys the session.
   */
  async touch(sessionId: string, session: object, loaded?: LoadedSession): Promise<boolean> {
    const now = Date.now()
    const { cookie, expiresAt, lifetime } = givenCookie(session, now)
    try {
      const key = this.manager.sessionKey(sessionId)
      let seen = this.#seen.get(key)
      let current: VersionedSession | null | undefined
      // A request that kept the lifetime it loaded changed nothing, whatever is stored now (a
      // slow request must not undo a "remember me" made meanwhile). Unknown when the session
      // was not built from a read here: the stored lifetime then decides.
      const ownChange = loaded === undefined || !sameLifetime(lifetime, loaded.lifetime)
      // The stores are asked whenever the stored lifetime decides: what this app server last
      // saw may be stale or forgotten, and a cookie is never rewritten, a session never
      // destroyed, nor its expiry moved by another lifetime than the stored one on that alone.
      if (
        seen === undefined ||
        !sameLifetime(lifetime, seen.lifetime) ||
        (loaded !== undefined && ownChange)
      ) {
        current = await this.manager.readSession(key, { withVersion: true })
        if (current === null) return false
        seen = this.#rememberRead(key, current)
      }
      const stored = seen.lifetime
      const changed = ownChange && !sameLifetime(lifetime, stored)
      // Only a cookie that carries the stored lifetime can be told stale; one that says
      // nothing of its lifetime (not express-session's) and has expired ends it, as a save would.
      if (expiresAt !== null && expiresAt <= now && (changed || lifetime === undefined)) {
        await this.destroy(sessionId)
        return false
      }
      if (changed) {
        const replaced = await this.#replaceCookie(key, cookie, expiresAt, lifetime, current)
        if (replaced !== undefined) return replaced
      }
      // A request that kept the lifetime it loaded while another request stored another (a
      // "forget me"): the stored lifetime says how long the session lives after this use.
      const kept = !ownChange && stored !== undefined && !sameLifetime(lifetime, stored)
      const until = kept ? (stored === null ? null : now + stored) : expiresAt
      // A browser-session cookie leaves the expiry to the session's timeout: now plus it.
      const timeoutMillis = seen.timeoutMillis ?? null
      const wanted = until ?? (timeoutMillis === null ? null : now + timeoutMillis)
      if (wanted === null) return await this.manager.touch(key)
      if (this.#touchAfterMillis > 0 && !touchIsDue(seen, wanted, this.#touchAfterMillis, now)) {
        return true
      }
      const touched = await this.manager.touch(key, until === null ? {} : { expiresAt: until })
      // The stores keep the later expiry; a stale touch leaves the remembered one as it was.
      if (!touched) this.#seen.forget(key)
      else this.#touchedTo(key, seen, Math.max(seen.expiresAt, wanted))
      return touched
    } catch (error) {
      if (isMalformedId(error)) return false
      throw error
    }
  }

  /**
   * Gives the stored session the cookie of a touch that changed its lifetime, as
   * express-session's MemoryStore does (the stored data stays, the cookie is replaced), with
   * the cookie's expiry (null: the manager's timeout), over the version read (`current`, else
   * read now). Another request's write in between (a version conflict) is read and the cookie
   * put over it again, up to {@link REPLACE_COOKIE_ATTEMPTS} times; then the conflict is
   * thrown (the touch did not do what was asked). Resolves whether the session was live, or
   * undefined when it already has that lifetime (the touch then only extends the expiry).
   */
  async #replaceCookie(
    key: string,
    cookie: unknown,
    expiresAt: number | null,
    lifetime: CookieFacts['lifetime'],
    current?: VersionedSession | null,
  ): Promise<boolean | undefined> {
    for (let attempt = 1; ; attempt += 1) {
      const read = current ?? (await this.manager.readSession(key, { withVersion: true }))
      current = undefined
      if (read === null) return false
      if (sameLifetime(lifetime, cookieLifetime(read.data))) return undefined
      const data = { ...read.data, cookie } as SessionData
      const expectedVersion = read.version
      try {
        const fingerprint = this.fingerprintOf(data)
        const written = await this.manager.writeSession(
          key,
          data,
          expiresAt === null ? { expectedVersion } : { expiresAt, expectedVersion },
        )
        this.#see(key, written.dropped ? null : expiresAt, fingerprint, lifetime, written.version)
        return !written.dropped
      } catch (error) {
        if (!(error instanceof VersionConflictError) || attempt >= REPLACE_COOKIE_ATTEMPTS) {
          throw error
        }
      }
    }
  }

  /** Destroys the session for good (tombstones); a malformed id has no session to destroy. */
  async destroy(sessionId: string): Promise<void> {
    try {
      const key = this.manager.sessionKey(sessionId)
      this.#seen.forget(key)
      await this.manager.destroySession(key)
    } catch (error) {
      if (!isMalformedId(error)) throw error
    }
  }

  /** Every live session's key (its id, or the key derived from an id), once each (see {@link all}). */
  ids(): Promise<string[]> {
    return listedIds(this.manager)
  }

  /** How many live sessions there are, each counted once, as {@link all} lists them. */
  count(): Promise<number> {
    return listedCount(this.manager)
  }

  /**
   * Every live session with its key, as {@link read} shows it (the stored expiry as the
   * cookie's); one that ends while being listed is left out, and so is one under an id the
   * manager refuses (unsigned, or signed with a secret since dropped: no request reads it).
   */
  all(): Promise<{ id: string; data: SessionData }[]> {
    return listedSessions(this.manager)
  }

  /**
   * Destroys every live session through the manager, so none can come back. Sessions under
   * ids the manager refuses (see {@link all}) are left to expire: no request can read them.
   */
  clear(): Promise<void> {
    return clearListed(this.manager)
  }

  /** Stops relaying the manager's events, and closes the manager if the store created it. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      this.manager.off('write-after-destroy', this.#onWriteAfterDestroy)
      this.manager.off('store-down', this.#onStoreDown)
      this.manager.off('store-up', this.#onStoreUp)
      if (this.#owned) await this.manager.close()
    })()
    return this.#closing
  }

  /**
   * With a throttle, a save whose data is what this store last read or wrote is a touch: not
   * written at all while the expiry moves by less than the throttle, else only its expiry
   * moved. Resolves false when the save must be written (changed data, unknown or gone).
   */
  async #savedAsTouch(
    key: string,
    session: object,
    cookie: {
      expiresAt: number | null
      wanted: number
      lifetime: CookieFacts['lifetime']
      now: number
    },
    unchangedSinceLoad: (fingerprint: string) => boolean,
  ): Promise<boolean> {
    const { expiresAt, wanted, lifetime, now } = cookie
    if (this.#touchAfterMillis === 0) return false
    const seen = this.#seen.get(key)
    if (seen === undefined || seen.expiresAt <= now) return false
    if (lifetime !== seen.lifetime || wanted < seen.expiresAt) return false
    const fingerprint = dataFingerprint(session, this.#codec)
    if (fingerprint === null || fingerprint !== seen.fingerprint) return false
    // Equal to what this app server last saw is not enough: another may have written since
    // (a change saved from a request that loaded it earlier would then be lost). The request
    // must not have changed what it loaded: a pure re-save, which a write would only repeat.
    if (!unchangedSinceLoad(fingerprint)) return false
    if (!touchIsDue(seen, wanted, this.#touchAfterMillis, now)) return true
    if (!(await this.manager.touch(key, expiresAt === null ? {} : { expiresAt }))) return false
    this.#touchedTo(key, seen, wanted)
    return true
  }

  /**
   * Moves the remembered expiry after a touch, unless a write or a read remembered the session
   * anew while the touch ran: its fingerprint stands (the touch's would be of older data).
   */
  #touchedTo(key: string, before: SeenSession, expiresAt: number): void {
    if (this.#seen.get(key) === before) this.#seen.remember(key, { ...before, expiresAt })
  }

  /** Now plus the session's timeout, as a read here last found it; null when not known. */
  #timeoutExpiry(key: string, now: number): number | null {
    const timeoutMillis = this.#seen.get(key)?.timeoutMillis ?? null
    return timeoutMillis === null ? null : now + timeoutMillis
  }

  /**
   * Remembers what the store holds for `key` (null: nothing to go by): for touches, which
   * compare the cookie's lifetime, and for the throttle (which alone needs the data's
   * fingerprint).
   */
  #see(
    key: string,
    expiresAt: number | null,
    fingerprint: string | null,
    lifetime: CookieFacts['lifetime'],
    version: number,
  ): void {
    if (expiresAt === null) this.#seen.forget(key)
    else this.#remember(key, { version, expiresAt, fingerprint, lifetime })
  }

  /**
   * The throttle's fingerprint of data (null without a throttle): of a session as loaded, for
   * {@link save}'s `unchangedSinceLoad`; of data about to be written, taken in the same tick as
   * the write encodes it (the app may change the object while the write is in flight, and a
   * fingerprint of the changed object would pass its next save, never written, for a repeat).
   */
  fingerprintOf(data: object): string | null {
    return this.#touchAfterMillis === 0 ? null : dataFingerprint(data, this.#codec)
  }

  /**
   * {@link #see} of a live session. `lifetime` is the cookie's as read when the call began
   * (a cookie given by the framework is read once: a getter may answer a second read otherwise,
   * or throw, after the write it describes was stored).
   */
  #remember(
    key: string,
    facts: Omit<SeenSession, 'timeoutMillis'>,
    timeoutMillis?: number,
  ): SeenSession {
    const before = this.#seen.get(key)
    // A read that answered late, after a write of a newer version was remembered (this store's,
    // or one another app server made that a later read here found), would put the older data's
    // fingerprint back: a save of data equal to it would then pass for a repeat, not written.
    if (before !== undefined && before.version > facts.version) return before
    const seen = { ...facts, timeoutMillis: timeoutMillis ?? before?.timeoutMillis ?? null }
    this.#seen.remember(key, seen)
    return seen
  }

  /** {@link #remember} of a session as a read found it, with its timeout. */
  #rememberRead(key: string, current: VersionedSession): SeenSession {
    const { version, expiresAt, data, timeoutSeconds } = current
    const fingerprint = this.fingerprintOf(data)
    const facts = { version, expiresAt, fingerprint, lifetime: cookieLifetime(data) }
    return this.#remember(key, facts, timeoutSeconds * 1000)
  }

  readonly #onWriteAfterDestroy = (event: { sessionId: string }): void => {
    // The manager emits before the dropped write resolves, while the id is still counted.
    const saving = this.#saving.get(event.sessionId)
    if (saving !== undefined) this.#events.emit('write-after-destroy', { sessionId: saving.id })
  }

  readonly #onStoreDown = (): void => {
    if (this.#disconnected || !this.#everyStoreDown()) return
    this.#disconnected = true
    this.#events.emit('disconnect')
  }

  readonly #onStoreUp = (): void => {
    if (!this.#disconnected || this.#everyStoreDown()) return
    this.#disconnected = false
    this.#events.emit('connect')
  }

  #everyStoreDown(): boolean {
    const { stores } = this.manager.stats()
    return stores.length > 0 && stores.every((store) => store.state === 'down')
  }
}
