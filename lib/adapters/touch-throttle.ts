/**
 * Throttled touches (`touchAfterSeconds`, as connect-mongo's `touchAfter`): what an adapter last
 * saw of each session, and whether a touch or an unchanged save is worth a write.
 */
import { createHash } from 'node:crypto'
import type { SessionCodec } from '../codec.js'

/** Sessions remembered at most; the least recently seen is forgotten first. */
const REMEMBERED_SESSIONS = 10_000

/** What an adapter last read or wrote of a session. */
export interface SeenSession {
  /** The version read or written: what is remembered never goes back to an older one. */
  version: number
  /** The stored expiry, milliseconds since the epoch. */
  expiresAt: number
  /** {@link dataFingerprint} of the stored data; null when it could not be taken (or no throttle needs it). */
  fingerprint: string | null
  /** The cookie's lifetime in the stored data (see `cookieLifetime`). */
  lifetime: number | null | undefined
  /**
   * How far a write or touch without an expiry moves it (the session's timeout, as a read
   * found it), in milliseconds; null when not known. A browser-session cookie (no `maxAge`)
   * leaves the expiry to it, and the throttle needs it to tell how far a touch would move it.
   */
  timeoutMillis?: number | null
}

/**
 * Whether moving a session's stored expiry to `wanted` is worth a write: when nothing is known
 * of the stored expiry, or the move is at least `touchAfterMillis`, or at least half the
 * session's lifetime (a throttle longer than that would let a session with a short timeout
 * expire between the writes that keep it alive). Skipping lets the stored expiry lag the
 * wanted one by less than the throttle, never more.
 */
export function touchIsDue(
  seen: Pick<SeenSession, 'expiresAt'> | undefined,
  wanted: number,
  touchAfterMillis: number,
  now: number,
): boolean {
  if (seen === undefined) return true
  return wanted - seen.expiresAt >= Math.min(touchAfterMillis, (wanted - now) / 2)
}

/**
 * A digest of a framework session's data and of its cookie's options (the cookie's expiry left
 * out: it changes on every request, and the store keeps the expiry apart), or null when there
 * is none to trust: the data then always counts as changed. Equal digests must mean equal
 * stored data, since a save that changes the data (or the cookie's `secure`, `sameSite`...,
 * which the frameworks restore from the stored session) is always written. With the manager's
 * `codec`, the data's part is the digest of the bytes that codec stores, exact for whatever it
 * encodes (null when it cannot encode it). Without it (a manager the store was given: its
 * codec is not public), it is the digest of the data's JSON, and only of data that JSON shows
 * exactly (plain objects, arrays, strings, finite numbers, booleans, null): a Map, a Date or an
 * undefined value, which a custom codec may keep and JSON would show alike, gets none.
 */
export function dataFingerprint(session: object, codec?: SessionCodec): string | null {
  let bytes: string | Buffer
  let options: string
  try {
    const { cookie, ...data } = session as Record<string, unknown>
    bytes = codec === undefined ? JSON.stringify(data, onlyExactJson) : codec.encode(data)
    options = cookieOptions(cookie)
  } catch {
    return null // a BigInt, a cycle, a Map without the codec, a getter that throws
  }
  if (typeof bytes !== 'string' && !Buffer.isBuffer(bytes)) return null
  const digest = (text: string | Buffer) => createHash('sha256').update(text).digest('base64url')
  return `${digest(bytes)}.${digest(options)}`
}

/**
 * A cookie's JSON (as the stores keep it: a framework's Cookie has a toJSON) without its expiry:
 * `expires`, and @fastify/session's `originalExpires`, which it sets to the expiry a read showed
 * (the stored one, which each write moves) and drops again when it restores a session.
 */
function cookieOptions(cookie: unknown): string {
  const stored: unknown = JSON.parse(JSON.stringify(cookie) ?? 'null')
  if (stored === null || typeof stored !== 'object' || Array.isArray(stored)) {
    return JSON.stringify(stored)
  }
  const {
    expires: _expires,
    originalExpires: _originalExpires,
    ...options
  } = stored as Record<string, unknown>
  return JSON.stringify(options)
}

/** Thrown by {@link onlyExactJson} to stop at the first value JSON would not show exactly. */
const INEXACT = Symbol('inexact')

/**
 * A JSON.stringify replacer that lets through only values JSON text shows exactly, so that
 * equal text means equal data: it looks at each value as held (`this[key]`), before any
 * `toJSON` ran. Objects must be plain (Object or Array prototype, no `toJSON`); numbers finite
 * and not -0; nothing undefined, no function, symbol or BigInt; an array hole counts as
 * undefined.
 */
function onlyExactJson(this: Record<string, unknown>, key: string, value: unknown): unknown {
  const held = this[key]
  switch (typeof held) {
    case 'string':
    case 'boolean':
      return value
    case 'number':
      if (Number.isFinite(held) && !Object.is(held, -0)) return value
      throw INEXACT
    case 'object': {
      if (held === null) return value
      const prototype = Object.getPrototypeOf(held) as unknown
      const plain = Array.isArray(held)
        ? prototype === Array.prototype
        : prototype === Object.prototype
      if (plain && typeof (held as { toJSON?: unknown }).toJSON !== 'function') return value
      throw INEXACT
    }
    default:
      throw INEXACT
  }
}

/**
 * What this adapter last saw of each session, bounded to {@link REMEMBERED_SESSIONS}. It only
 * ever lets a write be skipped that would change nothing but an expiry by less than the
 * throttle; anything unknown or changed is written.
 */
export class SeenSessions {
  readonly #seen = new Map<string, SeenSession>()

  get(key: string): SeenSession | undefined {
    return this.#seen.get(key)
  }

  /** Remembers `seen` for `key`, as the most recent; forgets the oldest beyond the bound. */
  remember(key: string, seen: SeenSession): void {
    this.#seen.delete(key)
    this.#seen.set(key, seen)
    if (this.#seen.size > REMEMBERED_SESSIONS) {
      this.#seen.delete(this.#seen.keys().next().value as string)
    }
  }

  forget(key: string): void {
    this.#seen.delete(key)
  }
}

/** What a framework's session held when it was built from a read (Express's createSession). */
export interface LoadedSession {
  /** The throttle's fingerprint (null without a throttle). */
  fingerprint: string | null
  /** Its cookie's lifetime (see cookieLifetime). */
  lifetime: number | null | undefined
}
