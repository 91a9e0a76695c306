/** The express-session store: `session-shards/express`. @packageDocumentation */
import session from 'express-session'
import type { SessionData as ExpressSessionData, Session } from 'express-session'
import type { Request } from 'express'
import { InvalidOptionError } from '../errors.js'
import type { SessionManager } from '../session-manager.js'
import type { NodeCallback } from './callbacks.js'
import { serve } from './callbacks.js'
import type { ManagerSource, TouchThrottleOption } from './manager-link.js'
import type { LoadedSession } from './touch-throttle.js'
import { ManagerLink } from './manager-link.js'
import { cookieLifetime } from './cookie-expiry.js'
import { checkReadable } from '../validate.js'

export type {
  ExistingManagerOption,
  ManagerSource,
  OwnManagerOption,
  TouchThrottleOption,
} from './manager-link.js'

/** Options of the express-session {@link SessionShardsStore}. */
export type SessionShardsStoreOptions = ManagerSource &
  TouchThrottleOption & {
    /**
     * Make `touch` do nothing: a session then expires at the expiry of its last save, however
     * active it is (express-session calls `touch` on requests that do not change the session).
     * @default false
     */
    disableTouch?: boolean
  }

/** A stored express session, with its id, as {@link SessionShardsStore.all} lists it. */
export type ListedSession = ExpressSessionData & { id: string }

/**
 * An express-session store that keeps sessions in a {@link SessionManager}: replicated over
 * several MySQL stores, and a destroyed session never comes back. Every method takes an
 * optional callback and also returns a promise; with a callback the promise still settles but
 * never counts as an unhandled rejection.
 *
 * - Expiry follows the session cookie: `cookie.expires` (to the millisecond), else
 *   `cookie.maxAge`, else the manager's `ttlSeconds`. Saving a session whose cookie has
 *   already expired destroys it; so does a touch with a cookie the app made expire.
 * - Any id the framework makes is stored: one outside the library's id rules is kept under
 *   {@link SessionManager.sessionKey} (listings show that key). With `secrets`, ids keep their
 *   rules: an unsigned id reads as no session, and no store is asked.
 * - A read shows the stored expiry as `cookie.expires`, so a touch is seen by the next read.
 * - A save or touch that comes after the session was destroyed (a slow request finishing
 *   after logout) changes nothing, and the request completes normally.
 *
 * Events:
 * - `write-after-destroy` (`{ sessionId }`): a `set` reached a destroyed session and was
 *   dropped; the session stays destroyed.
 * - `disconnect`: every store is down; express-session then serves requests without a
 *   session instead of failing each one. One store down is not a disconnect.
 * - `connect`: after a `disconnect`, a store serves again.
 *
 * @example
 * import express from 'express'
 * import session from 'express-session'
 * import { SessionShardsStore } from 'session-shards/express'
 *
 * const store = new SessionShardsStore({
 *   managerOptions: { stores: [{ id: 'a', uri: 'mysql://...' }, { id: 'b', uri: 'mysql://...' }] },
 * })
 * app.use(session({
 *   store,
 *   genid: () => store.generateId(),
 *   secret: process.env.COOKIE_SECRET!,
 *   resave: false,
 *   saveUninitialized: false,
 *   cookie: { maxAge: 24 * 3600 * 1000 },
 * }))
 */
export class SessionShardsStore extends session.Store {
  /** The manager the sessions go through. */
  readonly manager: SessionManager
  /** Whether `touch` does nothing (the `disableTouch` option). */
  readonly disableTouch: boolean
  readonly #link: ManagerLink
  /** What the sessions built from reads held as built (see {@link createSession}). */
  readonly #loaded = new WeakMap<object, LoadedSession>()

  constructor(options: SessionShardsStoreOptions) {
    super()
    // A revoked Proxy is refused, typed; ManagerLink refuses a non-object.
    if (typeof options === 'object' && options !== null) checkReadable('options', options)
    const disableTouch = options?.disableTouch ?? false
    if (typeof disableTouch !== 'boolean') {
      throw new InvalidOptionError('disableTouch', 'must be a boolean')
    }
    this.#link = new ManagerLink(this, options, options)
    this.manager = this.#link.manager
    this.disableTouch = disableTouch
  }

  /** A new session id from the manager (signed when it has `secrets`): use it as `genid`. */
  generateId(): string {
    return this.manager.generateId()
  }

  /** The session, or null when it does not exist, has expired or was destroyed. */
  get(
    sid: string,
    callback?: NodeCallback<ExpressSessionData | null>,
  ): Promise<ExpressSessionData | null> {
    const read = this.#link.read(sid) as Promise<ExpressSessionData | null>
    return serve(read, callback)
  }

  /**
   * Builds the framework's session from a read, remembering what it held: a later save or
   * touch is judged against it (another app server may have changed the session since, so
   * what this one last wrote cannot tell a request's own change from none).
   */
  override createSession(req: Request, sess: ExpressSessionData): Session & ExpressSessionData {
    const session = super.createSession(req, sess)
    this.#loaded.set(session, {
      fingerprint: this.#link.fingerprintOf(session),
      lifetime: cookieLifetime(session),
    })
    return session
  }

  /** Saves the session, expiring with its cookie; an already expired cookie destroys it. */
  set(sid: string, sess: ExpressSessionData, callback?: NodeCallback<void>): Promise<void> {
    const loaded = this.#loaded.get(sess)?.fingerprint
    const unchanged = (fingerprint: string): boolean => fingerprint === loaded
    return serve(this.#link.save(sid, sess, unchanged), callback)
  }

  /**
   * Extends a live session to its cookie's expiry without rewriting it. Never creates a
   * session, never brings back a destroyed one; does nothing with `disableTouch`. A cookie
   * whose lifetime the app changed (express-session touches when only the cookie changed) is
   * stored with the session, or destroys it when already expired; an earlier expiry with the
   * same lifetime (a request that began before a later one) never shortens the session.
   */
  touch(sid: string, sess: ExpressSessionData, callback?: NodeCallback<void>): Promise<void> {
    const touched = this.disableTouch
      ? Promise.resolve()
      : this.#link.touch(sid, sess, this.#loaded.get(sess)).then(() => undefined)
    return serve(touched, callback)
  }

  /** Destroys the session for good: no late save and no returning store brings it back. */
  destroy(sid: string, callback?: NodeCallback<void>): Promise<void> {
    return serve(this.#link.destroy(sid), callback)
  }

  /** Every live session, once each, with its `id`. Reads every session: for tools, not requests. */
  all(callback?: NodeCallback<ListedSession[]>): Promise<ListedSession[]> {
    const listed = this.#link
      .all()
      .then((sessions) =>
        sessions.map(({ id, data }) => Object.assign(data, { id }) as unknown as ListedSession),
      )
    return serve(listed, callback)
  }

  /** How many live sessions there are, each counted once (a full scan of the stores). */
  length(callback?: NodeCallback<number>): Promise<number> {
    return serve(this.#link.count(), callback)
  }

  /** The id of every live session, once each, in id order (a full scan of the stores). */
  ids(callback?: NodeCallback<string[]>): Promise<string[]> {
    return serve(this.#link.ids(), callback)
  }

  /** Destroys every live session (with tombstones, so none comes back). */
  clear(callback?: NodeCallback<void>): Promise<void> {
    return serve(this.#link.clear(), callback)
  }

  /**
   * Stops relaying the manager's events and, if the store created the manager
   * (`managerOptions`), closes it. A manager passed as `manager` stays open.
   */
  close(callback?: NodeCallback<void>): Promise<void> {
    return serve(this.#link.close(), callback)
  }
}
