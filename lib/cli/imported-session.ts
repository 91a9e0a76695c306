/**
 * What an express-mysql-session row becomes in the stores: the pure half of
 * `session-shards import` (commands/import.ts does the reading and the writing).
 */
import { cookieExpiry } from '../adapters/cookie-expiry.js'
import type { SessionData } from '../codec.js'

/** One row of an express-mysql-session table, its columns named as the import reads them. */
export interface SourceRow {
  id: string
  /** Unix seconds, rounded by express-mysql-session from the cookie's expiry. */
  expires: number | string
  /** The session as JSON (text, or bytes from a binary column). */
  data: string | Buffer | null
}

/** A row's session as it is written, or why it is not. */
export type ImportedSession = { data: SessionData; expiresAt: number } | 'expired' | 'unreadable'

/**
 * The session a row holds, with its expiry: the cookie's own (as the Express and Fastify stores
 * store it on a save; the row's is rounded to the second), else the row's (a cookie without
 * one: express-mysql-session's `expiration`). `'unreadable'` when the data is not a JSON
 * object, `'expired'` once that expiry is not after `now`.
 */
export function importedSession(row: SourceRow, now: number): ImportedSession {
  let data: unknown
  try {
    data = JSON.parse(String(row.data))
  } catch {
    return 'unreadable'
  }
  if (data === null || typeof data !== 'object' || Array.isArray(data)) return 'unreadable'
  const expiresAt = cookieExpiry(data, now) ?? Number(row.expires) * 1000
  if (!(expiresAt > now)) return 'expired'
  return { data: data as SessionData, expiresAt }
}
