/** What a store's session rows hold, and how a row decodes into a copy, a digest or a listed row. */
import type { RowDataPacket } from 'mysql2'
import { VERSION_CEILING } from '../version-clock.js'

/** One copy of a session as a store holds it. */
export interface StoredCopy {
  version: number
  expiresAtMillis: number
  deleted: boolean
  data: Buffer | null
  /** The per-session timeout set by `setSessionTimeout`, or null for the manager's default. */
  ttlSeconds: number | null
  /** The owner column as stored (the `ownerKey` value its writer found), carried by copies. */
  owner: Buffer | null
}

/**
 * What a digest read returns: what the copy rule looks at in a copy, without the data (the
 * other stores a read asks send only this).
 */
export interface CopyDigest {
  version: number
  expiresAtMillis: number
  deleted: boolean
  /** The per-session timeout, or null (the copy rule prefers a copy that carries it). */
  ttlSeconds: number | null
}

/** What one write stores, besides the session id and the data. */
export interface WriteFields {
  version: number
  expiresAtMillis: number
  /** The expiry is the caller's own (a per-call TTL), not derived from a stored timeout. */
  explicitExpiry: boolean
  /** A new per-session timeout to store; null keeps the stored one. */
  ttlSeconds: number | null
  owner: string | null
  /**
   * For a compare-and-set: apply only if the stored version is exactly this (0: only if there
   * is no row). Undefined for a plain write, which applies if the stored version is below
   * `version`.
   */
  expectedVersion: number | undefined
  /**
   * For a compare-and-set above version 0: whether a store with no row for the session takes
   * the write (during a change of the store list, when the session may not have been moved to
   * it yet). Otherwise a missing or expired row matches no expected version.
   */
  createsAbsent: boolean
  /**
   * The operation's time: a stored per-session timeout runs from it. One reading for every
   * copy, so that the copies agree on the expiry.
   */
  now: number
}

/** One write of a session. */
export interface SessionWrite {
  sessionId: string
  data: Buffer
  fields: WriteFields
}

/** A batch of plain writes sharing `explicitExpiry`, in one multi-row upsert. */
export interface WriteManyInput {
  writes: readonly SessionWrite[]
  defaultTtlSeconds: number
}

/** Sessions whose copies a statement fetches whole, and sessions it fetches digests of. */
export interface CopiesAndDigests {
  whole: readonly string[]
  digest: readonly string[]
}

/** What a write found on one store. */
export type WriteOutcome =
  | { kind: 'written' }
  | { kind: 'tombstone' }
  /** The stored version is not one the write applies over; nothing was written. */
  | { kind: 'outdated'; storedVersion: number }

/**
 * What a write sent again after a broken connection answers when it finds its own version
 * stored: its first send applied only if the row holds its data (read back to tell), since
 * another app server may have proposed the same version.
 */
export const RESENT_FOUND_OWN_VERSION = 'resent-found-own-version'

/**
 * What a write read back answers when its session has no row at all: swept or removed since
 * the statement ran, whatever it left there (this write, or the tombstone or newer copy it did
 * not apply over). Nothing tells which, so the write is sent again alone.
 */
export const ROW_GONE = 'row-gone'

/** One row of a key-order listing. */
export interface ListedRow {
  id: string
  deleted: boolean
  expiresAtMillis: number
  /** 0 from the owner index. */
  version: number
  data: Buffer | null
  /** The per-session timeout (the copy rule prefers a copy that carries it); null: none. */
  ttlSeconds: number | null
}

/**
 * A stored version (a number, or a string when it is beyond double precision), or null when it
 * is not one the library can have minted (at or above {@link VERSION_CEILING}).
 */
export function storedVersion(value: unknown): number | null {
  const version = typeof value === 'number' ? value : Number.NaN
  return Number.isSafeInteger(version) && version >= 0 && version < VERSION_CEILING ? version : null
}

/**
 * A row as a copy, or null for a live row whose version the library cannot have minted (a
 * broken or hostile peer wrote it): such a row is no copy of the session, and every write
 * replaces it. A tombstone stays a tombstone whatever its version.
 */
export function copyFromRow(row: RowDataPacket): StoredCopy | null {
  const version = storedVersion(row.version)
  const deleted = row.deleted === 1
  if (version === null && !deleted) return null
  return {
    version: version ?? 0,
    expiresAtMillis: Number(row.expires_at),
    deleted,
    data: row.data as Buffer | null,
    ttlSeconds: row.ttl_seconds === null ? null : Number(row.ttl_seconds),
    owner: (row.owner as Buffer | null | undefined) ?? null,
  }
}

/** A row's digest, or null for a live row of a foreign version (see {@link copyFromRow}). */
export function digestFromRow(row: RowDataPacket): CopyDigest | null {
  const version = storedVersion(row.version)
  const deleted = row.deleted === 1
  if (version === null && !deleted) return null
  return {
    version: version ?? 0,
    expiresAtMillis: Number(row.expires_at),
    deleted,
    ttlSeconds: row.ttl_seconds === null ? null : Number(row.ttl_seconds),
  }
}

/** What a page of a key-order listing decodes to: live rows of foreign versions are left out. */
export function listedRows(rows: RowDataPacket[], withData: boolean): ListedRow[] {
  return rows.flatMap((row) => {
    const version = storedVersion(row.version)
    const deleted = row.deleted === 1
    if (version === null && !deleted) return []
    return [
      {
        id: String(row.id),
        deleted,
        expiresAtMillis: Number(row.expires_at),
        version: version ?? 0,
        data: withData ? (row.data as Buffer | null) : null,
        ttlSeconds: row.ttl_seconds == null ? null : Number(row.ttl_seconds),
      },
    ]
  })
}
