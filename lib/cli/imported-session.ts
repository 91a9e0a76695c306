/**
 * What a source's session becomes in the stores: the pure half of `session-shards import`
 * (import-sources/ do the reading, commands/import.ts the writing).
 */
import { cookieExpiry } from '../adapters/cookie-expiry.js'
import { MAX_DATE_MILLIS } from '../call-arguments.js'
import type { SessionData } from '../codec.js'

/** One session as a source holds it: a row of a table, a key of Redis. */
export interface SourceRow {
  id: string
  /**
   * When the source would drop it (Unix milliseconds): express-mysql-session's column, rounded
   * to the second; Redis's time to live. Undefined: never (a Redis key without one).
   */
  expiresAt: number | undefined
  /** The session as JSON (text, or bytes from a binary column); null if there is none. */
  data: string | Buffer | null
}

/**
 * A source's session as it is written, or why it is not. Without `expiresAt` (neither the
 * cookie nor the source says), the stores' default time to live applies.
 */
export type ImportedSession =
  { data: SessionData; expiresAt: number | undefined } | 'expired' | 'unreadable'

/**
 * The session a source holds, with its expiry: the later of the cookie's own (as the Express
 * and Fastify stores store it on a save) and the source's (express-mysql-session's
 * `expiration`, connect-redis's `ttl`) when the source kept the session longer (see
 * {@link laterExpiry}), or whichever is given.
 * `'unreadable'` when the data is not a JSON object, or when that expiry lies beyond a Date's
 * range (a cookie's `maxAge` of 1e300, a Redis TTL past the year 275760): the stores refuse
 * such an expiry, so writing it would fail on every run; `'expired'` once that expiry is not
 * after `now`.
 */
export function importedSession(row: SourceRow, now: number): ImportedSession {
  let data: unknown
  try {
    data = JSON.parse(String(row.data))
  } catch {
    return 'unreadable'
  }
  if (data === null || typeof data !== 'object' || Array.isArray(data)) return 'unreadable'
  const expiresAt = laterExpiry(cookieExpiry(data, now) ?? undefined, row.expiresAt)
  if (expiresAt !== undefined && !(expiresAt > now)) return 'expired'
  if (expiresAt !== undefined && expiresAt > MAX_DATE_MILLIS) return 'unreadable'
  return { data: data as SessionData, expiresAt }
}

/** How much later than the cookie's a source may keep a session that it never touched. */
const ROUNDING_SLACK_MILLIS = 2000

/**
 * The expiry to import. A source's `touch` moves only its own expiry (a row's column, a key's
 * TTL), not the cookie's inside the data, which stays as of the last save: an active user's
 * cookie may say the session has ended while the source keeps it, and the source's is then
 * the one. Otherwise the cookie's, which is exact: a source rounds to the second.
 */
function laterExpiry(cookie: number | undefined, source: number | undefined): number | undefined {
  if (cookie === undefined || source === undefined) return cookie ?? source
  return source > cookie + ROUNDING_SLACK_MILLIS ? source : cookie
}
