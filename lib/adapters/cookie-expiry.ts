/** When a framework's session cookie says the session expires. */
import { hasProtoKey, PROTO_KEY } from '../codec.js'
import { InvalidSessionDataError } from '../errors.js'

/** What a framework session's cookie says of its expiry, read once. */
export interface CookieFacts {
  /** The session's `cookie` field as given (undefined when the session has none). */
  cookie: unknown
  /** See {@link cookieExpiry}. */
  expiresAt: number | null
  /** See {@link cookieLifetime}. */
  lifetime: number | null | undefined
}

/**
 * The cookie of a framework session and what it says of its expiry, each field read once:
 * whatever a getter throws is thrown (the caller decides how to refuse such a session).
 */
export function cookieFacts(session: unknown, now: number): CookieFacts {
  const cookie =
    session === null || typeof session !== 'object'
      ? undefined
      : (session as { cookie?: unknown }).cookie
  if (cookie === null || typeof cookie !== 'object') {
    return { cookie, expiresAt: null, lifetime: undefined }
  }
  const { expires, maxAge, originalMaxAge } = cookie as Record<string, unknown>
  const lifetime =
    typeof originalMaxAge === 'number' || originalMaxAge === null ? originalMaxAge : undefined
  if (expires instanceof Date || typeof expires === 'string') {
    const millis = new Date(expires).getTime()
    if (!Number.isNaN(millis)) return { cookie, expiresAt: millis, lifetime }
  }
  const fromMaxAge = typeof maxAge === 'number' && Number.isFinite(maxAge) ? now + maxAge : null
  return { cookie, expiresAt: fromMaxAge, lifetime }
}

/**
 * When a framework session should expire, from its cookie, in milliseconds since the epoch:
 * `cookie.expires` (a `Date`, or the ISO string a stored session carries), else `now` plus
 * `cookie.maxAge` (milliseconds). Null when the cookie gives neither (a browser-session
 * cookie): the manager's own timeout then applies. The result may be at or before `now`.
 */
export function cookieExpiry(session: unknown, now: number): number | null {
  return cookieFacts(session, now).expiresAt
}

/**
 * The cookie's lifetime as the framework keeps it (`cookie.originalMaxAge`, milliseconds; null
 * for a browser-session cookie), or undefined when the session has no such field. It lives in
 * the session's data: a change of it is a change of the data.
 */
export function cookieLifetime(session: unknown): number | null | undefined {
  return cookieFacts(session, 0).lifetime
}

/**
 * `session` with its cookie's `expires` set to the stored expiry, as the ISO text a stored
 * cookie carries. A touch moves only the stored expiry (the data is not rewritten); this
 * makes it visible to the framework on the next read. A cookie without an expiry (a
 * browser-session cookie) stays one: its stored expiry is the manager's timeout. So does a
 * cookie whose stored expiry no Date can hold (a row written by other software: the manager
 * refuses such an expiry), rather than failing every read of the session.
 */
export function withStoredExpiry<T extends object>(session: T, expiresAt: number): T {
  const cookie = (session as { cookie?: unknown }).cookie
  if (cookie === null || typeof cookie !== 'object' || Array.isArray(cookie)) return session
  const { expires } = cookie as { expires?: unknown }
  if (expires === undefined || expires === null || expires === false) return session
  const stored = new Date(expiresAt)
  if (Number.isNaN(stored.getTime())) return session
  return { ...session, cookie: { ...cookie, expires: stored.toISOString() } }
}

/**
 * `session` without an own `__proto__` key in its cookie (JSON.parse makes one from a stored
 * row): express-session's Cookie copies the stored cookie's keys with `this[key] = value`, which
 * for that key replaces the cookie's prototype. The manager refuses the key at the top level;
 * deeper data is not walked, and the cookie is the one nested object a framework copies so.
 */
export function withoutCookieProto<T extends object>(session: T): T {
  const cookie = (session as { cookie?: unknown }).cookie
  if (cookie === null || typeof cookie !== 'object' || !hasProtoKey(cookie)) {
    return session
  }
  const kept: Record<string, unknown> = { ...cookie }
  delete kept[PROTO_KEY]
  return { ...session, cookie: kept }
}

/**
 * How far a touch's cookie lifetime may be from the stored one and still be the same lifetime.
 * express-session recomputes `originalMaxAge` as `expires - now` from two clock reads on every
 * request, so an unchanged lifetime comes back a millisecond or so short (more on a stalled
 * process); an app that changes `maxAge` changes it by far more.
 */
const LIFETIME_SLACK_MILLIS = 100

/** Whether two cookie lifetimes are the same, up to {@link LIFETIME_SLACK_MILLIS}. */
export function sameLifetime(
  given: number | null | undefined,
  stored: number | null | undefined,
): boolean {
  if (typeof given === 'number' && typeof stored === 'number') {
    return Math.abs(given - stored) <= LIFETIME_SLACK_MILLIS
  }
  return given === stored
}

/**
 * The cookie of a session handed to a save or a touch. One that cannot be read (a throwing
 * getter, a revoked Proxy) is refused as the manager refuses such data, before any statement.
 */
export function givenCookie(session: unknown, now: number): CookieFacts {
  if (session === null || typeof session !== 'object') {
    throw new InvalidSessionDataError('a session must be an object')
  }
  try {
    return cookieFacts(session, now)
  } catch (error) {
    throw new InvalidSessionDataError('the session cookie cannot be read (a throwing getter?)', {
      cause: error,
    })
  }
}
