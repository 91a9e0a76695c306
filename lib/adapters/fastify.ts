/** The @fastify/session store: `session-shards/fastify`. @packageDocumentation */
import { EventEmitter } from 'node:events'
import type { SessionStore } from '@fastify/session'
import type { Session } from 'fastify'
import type { SessionManager } from '../session-manager.js'
import type { NodeCallback } from './callbacks.js'
import { serve } from './callbacks.js'
import type { ManagerSource, TouchThrottleOption } from './manager-link.js'
import { ManagerLink } from './manager-link.js'

export type {
  ExistingManagerOption,
  ManagerSource,
  OwnManagerOption,
  TouchThrottleOption,
} from './manager-link.js'

/**
 * Options of the @fastify/session {@link SessionShardsStore}: a manager, or options for one,
 * and `touchAfterSeconds` (@fastify/session saves every request with `rolling`; with a
 * throttle, a save of an unchanged session only moves its expiry, at most that often).
 */
export type SessionShardsStoreOptions = ManagerSource & TouchThrottleOption

/**
 * A @fastify/session store that keeps sessions in a {@link SessionManager}: replicated over
 * several MySQL stores, and a destroyed session never comes back. Every method takes an
 * optional callback and also returns a promise.
 *
 * @fastify/session saves the session on every request by default (`rolling`,
 * `saveUninitialized`), so `set` is one write: no read first, the session encoded once and
 * sent to its stores in parallel.
 *
 * - Expiry follows the session cookie: `cookie.expires` (to the millisecond), else the
 *   manager's `ttlSeconds`. Saving a session whose cookie has already expired destroys it.
 * - Any id the framework makes is stored: one outside the library's id rules is kept under
 *   {@link SessionManager.sessionKey} (listings show that key). With `secrets`, ids keep their
 *   rules: an unsigned id reads as no session, and no store is asked.
 * - A read shows the stored expiry as `cookie.expires`, so a touch is seen by the next read.
 * - A save that comes after the session was destroyed (a slow request finishing after logout)
 *   changes nothing, and the request completes normally.
 *
 * Events: `write-after-destroy` (`{ sessionId }`) when a `set` reached a destroyed session
 * and was dropped; `disconnect` when every store is down; `connect` when one serves again.
 *
 * @example
 * import Fastify from 'fastify'
 * import fastifyCookie from '@fastify/cookie'
 * import fastifySession from '@fastify/session'
 * import { SessionShardsStore } from 'session-shards/fastify'
 *
 * const store = new SessionShardsStore({ managerOptions: { stores: [...] } })
 * const app = Fastify()
 * app.register(fastifyCookie)
 * app.register(fastifySession, {
 *   store,
 *   idGenerator: () => store.generateId(),
 *   secret: process.env.COOKIE_SECRET!,
 *   cookie: { maxAge: 24 * 3600 * 1000 },
 * })
 * app.addHook('onClose', () => store.close())
 */
export class SessionShardsStore extends EventEmitter implements SessionStore {
  /** The manager the sessions go through. */
  readonly manager: SessionManager
  readonly #link: ManagerLink

  constructor(options: SessionShardsStoreOptions) {
    super()
    this.#link = new ManagerLink(this, options, options)
    this.manager = this.#link.manager
  }

  /** A new session id from the manager (signed when it has `secrets`): use it as `idGenerator`. */
  generateId(): string {
    return this.manager.generateId()
  }

  /** The session, or null when it does not exist, has expired or was destroyed. */
  get(sessionId: string, callback?: NodeCallback<Session | null>): Promise<Session | null> {
    return serve(this.#link.read(sessionId) as Promise<Session | null>, callback)
  }

  /** Saves the session, expiring with its cookie; an already expired cookie destroys it. */
  set(sessionId: string, session: Session, callback?: NodeCallback<void>): Promise<void> {
    // With touchAfterSeconds, only a save @fastify/session makes of an unmodified session
    // (`rolling`) may be skipped.
    return serve(
      this.#link.save(sessionId, session, () => notModified(session)),
      callback,
    )
  }

  /** Destroys the session for good: no late save and no returning store brings it back. */
  destroy(sessionId: string, callback?: NodeCallback<void>): Promise<void> {
    return serve(this.#link.destroy(sessionId), callback)
  }

  /**
   * Stops relaying the manager's events and, if the store created the manager
   * (`managerOptions`), closes it. A manager passed as `manager` stays open.
   */
  close(callback?: NodeCallback<void>): Promise<void> {
    return serve(this.#link.close(), callback)
  }
}

/** Whether @fastify/session says the session is as it was loaded (false when it cannot tell). */
function notModified(session: Session): boolean {
  try {
    const { isModified } = session as { isModified?: unknown }
    return typeof isModified === 'function' && isModified.call(session) === false
  } catch {
    return false
  }
}
