/**
 * Throttled touches (`touchAfterSeconds`, as connect-mongo's `touchAfter`): what an adapter last
 * saw of each session, and whether a touch or an unchanged save is worth a write.
 */
import { createHash } from 'node:crypto'

/** Sessions remembered at most; the least recently seen is forgotten first. */
const REMEMBERED_SESSIONS = 10_000

/** What an adapter last read or wrote of a session. */
export interface SeenSession {
  /** The stored expiry, milliseconds since the epoch. */
  expiresAt: number
  /** {@link dataFingerprint} of the stored data; null when it could not be taken (or no throttle needs it). */
  fingerprint: string | null
  /** The cookie's lifetime in the stored data (see `cookieLifetime`). */
  lifetime: number | null | undefined
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
 * A digest of a framework session's data, its cookie left out (the cookie's expiry changes on
 * every request; the store keeps the expiry apart). Null for data JSON cannot represent, which
 * then always counts as changed.
 */
export function dataFingerprint(session: object): string | null {
  const { cookie: _cookie, ...data } = session as Record<string, unknown>
  let text: string
  try {
    text = JSON.stringify(data)
  } catch {
    return null // a BigInt, a cycle: data a custom codec may carry
  }
  return createHash('sha256').update(text).digest('base64url')
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
