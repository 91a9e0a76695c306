/** The statements that keep a session's copies in shape: tombstones, copies, touches, removals. */
import { createHash } from 'node:crypto'
import type { ResultSetHeader } from 'mysql2'
import type { StoredCopy } from './rows.js'
import type { Statement } from './statements.js'
import { changed, NEWER, nothing, STORED } from './statements.js'

/**
 * The condition under which a copy of the stored live copy's very version brings only its
 * later expiry (a touch that missed the stored one; between copies of one version the later
 * expiry wins), unless it lacks the session's timeout the stored one has (copy-rules.ts).
 */
const LATER_EXPIRY =
  `deleted = 0 AND VALUES(version) = ${STORED} AND VALUES(expires_at) > expires_at AND ` +
  '(VALUES(ttl_seconds) IS NOT NULL OR ttl_seconds IS NULL)'
/** A removal of a live copy older than `version`, or at it expiring by `expiresAtMillis`. */
interface CopyRemoval {
  sessionId: string
  version: number
  expiresAtMillis: number
}

/** A copy to write over the bytes of one of its version that do not decode. */
interface UnreadableCopy {
  sessionId: string
  copy: StoredCopy
  unreadable: Buffer
}

/** The upkeep statements on the session table `table`. */
export function upkeepStatements(table: string) {
  const t = `\`${table}\``
  const copyText =
    `INSERT INTO ${t} (id, version, expires_at, deleted, data, owner, ttl_seconds) ` +
    'VALUES (?, ?, ?, 0, ?, ?, ?) ON DUPLICATE KEY UPDATE ' +
    `data = IF(${NEWER}, VALUES(data), data), ` +
    `expires_at = IF(${NEWER} OR ${LATER_EXPIRY}, VALUES(expires_at), expires_at), ` +
    `owner = IF(${NEWER}, VALUES(owner), owner), ` +
    `ttl_seconds = IF(${NEWER}, VALUES(ttl_seconds), ttl_seconds), ` +
    `version = IF(${NEWER}, VALUES(version), version)`

  return {
    /** A tombstone replaces whatever is stored, above its version. */
    destroy: {
      text: () =>
        `INSERT INTO ${t} (id, version, expires_at, deleted, data, owner) VALUES (?, ?, ?, 1, NULL, NULL) ` +
        'ON DUPLICATE KEY UPDATE data = NULL, owner = NULL, deleted = 1, ' +
        'expires_at = GREATEST(expires_at, VALUES(expires_at)), ' +
        `version = GREATEST(${STORED} + 1, VALUES(version))`,
      params: (input: { sessionId: string; version: number; expiresAtMillis: number }) => [
        input.sessionId,
        input.version,
        input.expiresAtMillis,
      ],
      decode: nothing,
    } satisfies Statement<
      { sessionId: string; version: number; expiresAtMillis: number },
      ResultSetHeader,
      void
    >,

    /** Store this exact copy (read elsewhere) unless the row is a tombstone or at least as new. */
    copy: {
      text: () => copyText,
      params: ({ sessionId, copy }: { sessionId: string; copy: StoredCopy }) => [
        sessionId,
        copy.version,
        copy.expiresAtMillis,
        copy.data,
        copy.owner,
        copy.ttlSeconds,
      ],
      decode: nothing,
    } satisfies Statement<{ sessionId: string; copy: StoredCopy }, ResultSetHeader, void>,

    /**
     * Write `copy`'s bytes over a live copy of its very version that holds `unreadable` (bytes
     * that do not decode: copy would leave it, being as new); anything else stays. The bad
     * bytes go by their SHA-256: sent whole beside the good ones, a large session's two copies
     * would pass the server's packet limit.
     */
    copyOverUnreadable: {
      text: () =>
        `UPDATE ${t} SET data = ? WHERE id = ? AND deleted = 0 AND ${STORED} = ? ` +
        'AND SHA2(data, 256) = ?',
      params: ({ sessionId, copy, unreadable }: UnreadableCopy) => [
        copy.data,
        sessionId,
        copy.version,
        createHash('sha256').update(unreadable).digest('hex'),
      ],
      decode: nothing,
    } satisfies Statement<UnreadableCopy, ResultSetHeader, void>,

    /**
     * Extend a live, unexpired copy's expiry to `expiresAtMillis` (null: now + its per-session
     * timeout, else the default); never shortens it. Decodes to whether a copy was there.
     */
    touch: {
      text: () =>
        `UPDATE ${t} SET expires_at = GREATEST(expires_at, COALESCE(?, ? + COALESCE(ttl_seconds, ?) * 1000)) ` +
        'WHERE id = ? AND deleted = 0 AND expires_at > ?',
      params: (input: {
        sessionId: string
        expiresAtMillis: number | null
        defaultTtlSeconds: number
        now: number
      }) => [input.expiresAtMillis, input.now, input.defaultTtlSeconds, input.sessionId, input.now],
      decode: changed,
    } satisfies Statement<
      { sessionId: string; expiresAtMillis: number | null; defaultTtlSeconds: number; now: number },
      ResultSetHeader,
      boolean
    >,

    /**
     * Delete a live copy older than `version` (a foreign version counts as 0), or at `version`
     * expiring no later than `expiresAtMillis`: one a touch extended since it was read stays.
     */
    removeCopy: {
      text: () =>
        `DELETE FROM ${t} WHERE id = ? AND deleted = 0 AND ` +
        `(${STORED} < ? OR (${STORED} = ? AND expires_at <= ?))`,
      params: ({ sessionId, version, expiresAtMillis }: CopyRemoval) => [
        sessionId,
        version,
        version,
        expiresAtMillis,
      ],
      decode: nothing,
    } satisfies Statement<CopyRemoval, ResultSetHeader, void>,

    /** Delete a tombstone. */
    clearTombstone: {
      text: () => `DELETE FROM ${t} WHERE id = ? AND deleted = 1`,
      params: (sessionId: string) => [sessionId],
      decode: nothing,
    } satisfies Statement<string, ResultSetHeader, void>,
  }
}

/** The statements of one table's upkeep (see {@link upkeepStatements}). */
export type UpkeepStatements = ReturnType<typeof upkeepStatements>
