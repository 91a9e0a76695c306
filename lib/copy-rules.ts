/** Which copy of a session wins, and which copies are stale: the one rule every path follows. */

/** What the rule looks at in a copy (a row of one store). */
export interface CopyFacts {
  readonly version: number
  readonly expiresAtMillis: number
  /** A tombstone: the session was destroyed. */
  readonly deleted: boolean
  /** The session's own timeout (setSessionTimeout) as this copy carries it; null: none. */
  readonly ttlSeconds: number | null
}

/**
 * Orders two copies, newest first: the higher version wins. Between equal versions (one
 * write), a copy that carries the session's own timeout wins over one that does not: a plain
 * write takes the timeout from the row it replaces, so its copy on a store that held no row
 * (it failed over there) got the manager's default lifetime instead, which must not outlive
 * the timeout. Then the later expiry wins (a later touch missed a copy). Negative when `a`
 * comes first.
 */
export function newestFirst(a: CopyFacts, b: CopyFacts): number {
  return b.version - a.version || timed(b) - timed(a) || b.expiresAtMillis - a.expiresAtMillis
}

/**
 * Whether `copy` should be written over `other` (same session): a higher version, or the same
 * version with the session's timeout where `other` lacks it (see {@link newestFirst}). Expiry
 * alone does not count: a touch that missed a copy is not worth a rewrite.
 */
export function supersedes(copy: CopyFacts, other: CopyFacts): boolean {
  return (
    copy.version > other.version || (copy.version === other.version && timed(copy) > timed(other))
  )
}

function timed(copy: CopyFacts): number {
  return copy.ttlSeconds === null ? 0 : 1
}

/** The newest of some copies (see {@link newestFirst}); undefined for none. */
export function newestCopy<C extends CopyFacts>(copies: readonly C[]): C | undefined {
  let newest: C | undefined
  for (const copy of copies)
    if (newest === undefined || newestFirst(copy, newest) < 0) newest = copy
  return newest
}

/** What a session's copies say. */
export type CopyVerdict<C extends CopyFacts> =
  /** A tombstone anywhere: destroyed for good (`copy` is the newest tombstone). */
  | { readonly state: 'destroyed'; readonly copy: C }
  /** The newest live copy, not expired. */
  | { readonly state: 'live'; readonly copy: C }
  /** The newest live copy has expired: the session is over (a sweep removes it). */
  | { readonly state: 'expired'; readonly copy: C }
  /** No copy at all. */
  | { readonly state: 'none' }

/**
 * The verdict on a session from the copies read (null: a store without a row): a tombstone
 * anywhere wins over every live copy, whatever their versions, so that no destroyed session
 * comes back; otherwise the newest live copy is the session, unless it has expired at `now`.
 */
export function judgeCopies<C extends CopyFacts>(
  copies: readonly (C | null)[],
  now: number,
): CopyVerdict<C> {
  const present = copies.filter((copy): copy is C => copy !== null)
  const tombstone = newestCopy(present.filter((copy) => copy.deleted))
  if (tombstone !== undefined) return { state: 'destroyed', copy: tombstone }
  const newest = newestCopy(present)
  if (newest === undefined) return { state: 'none' }
  return newest.expiresAtMillis > now
    ? { state: 'live', copy: newest }
    : { state: 'expired', copy: newest }
}

/**
 * Whether a store's copy (null: none) falls short of the verdict, so that a repair should
 * rewrite it: it lacks the tombstone of a destroyed session, or the newest version (and
 * expiry) of a live one, or it is an older copy of an expired one (which would be the session
 * again once the sweep deleted the expired copies).
 */
export function isStale<C extends CopyFacts>(copy: C | null, verdict: CopyVerdict<C>): boolean {
  if (verdict.state === 'destroyed') return copy === null || !copy.deleted
  if (verdict.state === 'expired') return copy !== null && supersedes(verdict.copy, copy)
  if (verdict.state !== 'live') return false
  return copy === null || copy.deleted || newestFirst(copy, verdict.copy) > 0
}
