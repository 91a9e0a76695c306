/** Every statement the library sends: its SQL text, its parameters and the decoding of its result, together. */
import type { ResultSetHeader, RowDataPacket } from 'mysql2'
import { WriteOutcomeUnknownError } from '../errors.js'
import { VERSION_CEILING } from '../version-clock.js'
import type {
  CopiesAndDigests,
  CopyDigest,
  ListedRow,
  SessionWrite,
  StoredCopy,
  WriteManyInput,
  WriteOutcome,
} from './rows.js'
import { batchOutcomes } from './batch-outcomes.js'
import {
  copyFromRow,
  digestFromRow,
  listedRows,
  RESENT_FOUND_OWN_VERSION,
  ROW_GONE,
  storedVersion,
} from './rows.js'

/**
 * A statement: its text (which may depend on the input, for `IN (...)` lists and LIMITs), the
 * parameters in the order the text uses them, and what its result means. Every value travels
 * as a parameter; the table name (validated by schema.ts) and integers the library computes are
 * the only things spliced into the text.
 */
export interface Statement<I, R, O> {
  text(input: I): string
  params(input: I): unknown[]
  /** `resent`: the statement was sent again after a broken connection lost its answer. */
  decode(result: R, input: I, resent: boolean): O
}

/**
 * The stored version as the statements compare it: a version at or above
 * {@link VERSION_CEILING} was not minted by this library and counts as 0, the oldest, so that
 * it blocks no write and wins over no copy.
 */
export const STORED = `((version < ${VERSION_CEILING}) * version)`
/**
 * The condition under which a copy replaces a stored live copy: a higher version, or the same
 * version with the session's timeout where the stored copy has none (copy-rules.ts). Evaluated
 * before ttl_seconds is assigned (the assignments run left to right, ttl_seconds last but the
 * version, which is equal then).
 */
export const NEWER =
  `deleted = 0 AND (VALUES(version) > ${STORED} OR (VALUES(version) = ${STORED} AND ` +
  'ttl_seconds IS NULL AND VALUES(ttl_seconds) IS NOT NULL))'
/** The condition under which a write replaces a stored live copy: [from, below) holds it. */
const IN_RANGE = `${STORED} >= ? AND ${STORED} < ?`
const WRITABLE = `deleted = 0 AND ${IN_RANGE}`
/** A plain write's range, [0, the row's own version): the stored version is below it. */
const BELOW_OWN = `${STORED} < VALUES(version)`
/** insertId of the write when the row is a tombstone. */
const WRITE_HIT_TOMBSTONE = 1
const COPY_COLUMNS = 'version, expires_at, deleted, data, ttl_seconds, owner'
const DIGEST_COLUMNS = 'version, expires_at, deleted, ttl_seconds'

/** `(?, ?, ...)`: `count` placeholders. */
function placeholders(count: number): string {
  return `(${Array.from({ length: count }, () => '?').join(', ')})`
}

/**
 * How many ids a read of `count` ids sends in its IN list: the next power of two, so that reads
 * of any size take one of a few texts, each prepared once per store connection (connection.ts
 * bounds how many it keeps).
 */
export function paddedCount(count: number): number {
  let padded = Math.min(1, count)
  while (padded < count) padded *= 2
  return padded
}

/** `ids` with its last one repeated up to {@link paddedCount}: a repeat changes no IN list. */
function paddedIds(ids: readonly string[]): string[] {
  const padded = [...ids]
  const last = ids[ids.length - 1] as string
  while (padded.length < paddedCount(ids.length)) padded.push(last)
  return padded
}

/** Counts up to which {@link byCount} keeps a built text: a batch holds at most 100 rows. */
const REMEMBERED_COUNTS = 128

/**
 * `build(count)`, built once per count up to {@link REMEMBERED_COUNTS}: a batch statement's text
 * depends only on how many rows it has, and batches repeat the same few sizes, so building it
 * again (and the placeholders) for every batch is wasted work.
 */
function byCount(build: (count: number) => string): (count: number) => string {
  const built: string[] = []
  return (count) => (count > REMEMBERED_COUNTS ? build(count) : (built[count] ??= build(count)))
}

/** A validated integer LIMIT (LIMIT placeholders differ across servers). */
export function limitClause(limit: number): string {
  if (!Number.isSafeInteger(limit) || limit < 1)
    throw new TypeError('limit must be a positive integer')
  return ` LIMIT ${limit}`
}

/** The values of one row of a write: id, version, expires_at, data, owner, ttl_seconds. */
function rowValues({ sessionId, data, fields }: SessionWrite): unknown[] {
  return [sessionId, fields.version, fields.expiresAtMillis, data, fields.owner, fields.ttlSeconds]
}

export const ids = (rows: RowDataPacket[]): string[] => rows.map((row) => String(row.id))
export const changed = (result: ResultSetHeader): boolean => result.affectedRows > 0
export const nothing = (): void => undefined

/**
 * Whether a multi-row upsert applied every one of its rows, from its OK packet alone: a row
 * counts 1 when inserted, 2 when an existing row changed, and 0 (1 with the FOUND_ROWS flag
 * mysql2 sets) when it was left as it was; the info text counts the rows that met an existing
 * one ("Duplicates"). An applied row always changes (its version grows), so every row applied
 * exactly when the count is rows + duplicates. False when the info text is not there, and for
 * a batch sent again after a broken connection (its first send's rows are left as they were):
 * the batch is then read back.
 */
export function everyRowApplied(result: ResultSetHeader, input: WriteManyInput): boolean {
  const duplicates = /Duplicates: (\d+)/.exec(result.info ?? '')?.[1]
  if (duplicates === undefined) return false
  return result.affectedRows === input.writes.length + Number(duplicates)
}

/**
 * A write's assignments of every column but the version, each taken only where `guard` holds.
 * The expiry is the write's, unless the write sets none explicitly (its parameter is not 1)
 * and the row keeps a timeout of its own: then that timeout runs from `timeoutStart`.
 */
function guardedColumns(guard: string, timeoutStart: string): string {
  return (
    `data = IF(${guard}, VALUES(data), data), ` +
    `owner = IF(${guard}, VALUES(owner), owner), ` +
    `ttl_seconds = IF(${guard}, COALESCE(VALUES(ttl_seconds), ttl_seconds), ttl_seconds), ` +
    `expires_at = IF(${guard}, IF(? = 1 OR ttl_seconds IS NULL, VALUES(expires_at), ` +
    `${timeoutStart} + ttl_seconds * 1000), expires_at), `
  )
}

/** The statements on the session table `table`. */
export function sessionStatements(table: string) {
  const t = `\`${table}\``
  /** The upsert of one write: `writable` guards the columns, `inRange` the version (see write). */
  const conditionalWrite = (writable: string, inRange: string): string =>
    `INSERT INTO ${t} (id, version, expires_at, deleted, data, owner, ttl_seconds) ` +
    'VALUES (?, ?, ?, 0, ?, ?, ?) ON DUPLICATE KEY UPDATE ' +
    guardedColumns(writable, '?') +
    // Assignments run left to right, so version (read by the IFs above) is updated last.
    `version = IF(deleted = 1, version + 0 * LAST_INSERT_ID(${WRITE_HIT_TOMBSTONE}), ` +
    `IF(${inRange}, VALUES(version), LAST_INSERT_ID(version)))`
  /**
   * A compare-and-set above 0 during a change of the store list, where a missing row takes it
   * (`createsAbsent`): the range [expected, expected + 1) travels as parameters. A plain write's
   * range is [0, its version): the lower bound always holds and the upper one is the row's own
   * version, so its statement needs neither as a parameter: 8 parameters instead of 18, and
   * about a tenth less server time per write (measured side by side on MariaDB 10.11).
   */
  const compareAndSetOrCreateText = conditionalWrite(WRITABLE, IN_RANGE)
  /**
   * A compare-and-set on version 0, "only if there is no session": a row that has expired (at
   * the write's time) is none, as reads answer. Its guard reads expires_at, so the version is
   * assigned before the expiry here, which then follows whether the version became this
   * write's.
   */
  const absent = `(${STORED} < 1 OR expires_at <= ?)`
  const createText =
    `INSERT INTO ${t} (id, version, expires_at, deleted, data, owner, ttl_seconds) ` +
    'VALUES (?, ?, ?, 0, ?, ?, ?) ON DUPLICATE KEY UPDATE ' +
    `data = IF(deleted = 0 AND ${absent}, VALUES(data), data), ` +
    `owner = IF(deleted = 0 AND ${absent}, VALUES(owner), owner), ` +
    `ttl_seconds = IF(deleted = 0 AND ${absent}, ` +
    'COALESCE(VALUES(ttl_seconds), ttl_seconds), ttl_seconds), ' +
    `version = IF(deleted = 1, version + 0 * LAST_INSERT_ID(${WRITE_HIT_TOMBSTONE}), ` +
    `IF(${absent}, VALUES(version), LAST_INSERT_ID(version))), ` +
    'expires_at = IF(deleted = 0 AND version = VALUES(version), ' +
    'IF(? = 1 OR ttl_seconds IS NULL, VALUES(expires_at), ? + ttl_seconds * 1000), expires_at)'
  /**
   * A compare-and-set above version 0: an update of the live row at `expected` alone, so that
   * no row (never written, swept) and an expired one are left alone. Its condition is the
   * WHERE clause, read before any assignment, so the expiry it sets cannot change it.
   */
  const compareAndSetText =
    `UPDATE ${t} SET data = ?, owner = ?, ttl_seconds = COALESCE(?, ttl_seconds), ` +
    'expires_at = IF(? = 1 OR ttl_seconds IS NULL, ?, ? + ttl_seconds * 1000), version = ? ' +
    `WHERE id = ? AND deleted = 0 AND ${STORED} = ? AND expires_at > ?`
  const plainWriteText = conditionalWrite(`deleted = 0 AND ${BELOW_OWN}`, BELOW_OWN)
  const readDigestManyText = byCount(
    (count) => `SELECT id, ${DIGEST_COLUMNS} FROM ${t} WHERE id IN ${placeholders(count)}`,
  )
  const readCopiesAndDigestsText = byCount((count) => {
    const ids = placeholders(count)
    return (
      `SELECT id, version, expires_at, deleted, IF(id IN ${ids}, data, NULL) AS data, ` +
      `ttl_seconds, owner FROM ${t} WHERE id IN ${ids}`
    )
  })
  const readManyText = byCount(
    (count) => `SELECT id, ${COPY_COLUMNS} FROM ${t} WHERE id IN ${placeholders(count)}`,
  )
  const writeManyText = byCount((count) => {
    const apply = `deleted = 0 AND ${STORED} < VALUES(version)`
    return (
      `INSERT INTO ${t} (id, version, expires_at, deleted, data, owner, ttl_seconds) VALUES ` +
      Array.from({ length: count }, () => '(?, ?, ?, 0, ?, ?, ?)').join(', ') +
      ' ON DUPLICATE KEY UPDATE ' +
      guardedColumns(apply, 'VALUES(expires_at) - ? * 1000') +
      `version = IF(${apply}, VALUES(version), version)`
    )
  })
  const writtenVersionsText = byCount(
    (count) =>
      `SELECT id, version, deleted, SHA2(data, 256) AS data_sha256 FROM ${t} ` +
      `WHERE id IN ${placeholders(count)}`,
  )

  return {
    /** The copy a store holds, or null. */
    read: {
      text: () => `SELECT ${COPY_COLUMNS} FROM ${t} WHERE id = ?`,
      params: (sessionId: string) => [sessionId],
      decode: (rows: RowDataPacket[]) => (rows[0] === undefined ? null : copyFromRow(rows[0])),
    } satisfies Statement<string, RowDataPacket[], StoredCopy | null>,

    /** A copy's digest (version, expiry, tombstone flag), or null. */
    readDigest: {
      text: () => `SELECT ${DIGEST_COLUMNS} FROM ${t} WHERE id = ?`,
      params: (sessionId: string) => [sessionId],
      decode: (rows: RowDataPacket[]) => (rows[0] === undefined ? null : digestFromRow(rows[0])),
    } satisfies Statement<string, RowDataPacket[], CopyDigest | null>,

    /** The digests of several sessions, by id. */
    readDigestMany: {
      text: (sessionIds: readonly string[]) => readDigestManyText(paddedCount(sessionIds.length)),
      params: paddedIds,
      decode: (rows: RowDataPacket[]) => {
        const digests = new Map<string, CopyDigest>()
        for (const row of rows) {
          const digest = digestFromRow(row)
          if (digest !== null) digests.set(String(row.id), digest)
        }
        return digests
      },
    } satisfies Statement<readonly string[], RowDataPacket[], Map<string, CopyDigest>>,

    /**
     * Copies of some sessions and digests of others in one statement (a read's data lane and
     * another read's digest lane meeting at one store): the data column only for `whole` ids.
     * Both lists non-empty, without duplicates, disjoint. The text depends only on how many ids
     * there are, padded (the `whole` list is padded with NULLs, which match no id), so that a
     * store connection prepares one statement per padded batch size, not one per split.
     */
    readCopiesAndDigests: {
      text: ({ whole, digest }: CopiesAndDigests) =>
        readCopiesAndDigestsText(paddedCount(whole.length + digest.length)),
      params: ({ whole, digest }: CopiesAndDigests) => {
        const ids = paddedIds([...whole, ...digest])
        return [...whole, ...ids.slice(whole.length).map(() => null), ...ids]
      },
      decode: (rows: RowDataPacket[], { whole }: CopiesAndDigests) => {
        const wanted = new Set(whole)
        const found = new Map<string, StoredCopy | CopyDigest>()
        for (const row of rows) {
          const id = String(row.id)
          const copy = wanted.has(id) ? copyFromRow(row) : digestFromRow(row)
          if (copy !== null) found.set(id, copy)
        }
        return found
      },
    } satisfies Statement<CopiesAndDigests, RowDataPacket[], Map<string, StoredCopy | CopyDigest>>,

    /** The copies of several sessions, by id (absent ids have no row). */
    readMany: {
      text: (sessionIds: readonly string[]) => readManyText(paddedCount(sessionIds.length)),
      params: paddedIds,
      decode: (rows: RowDataPacket[]) => {
        const copies = new Map<string, StoredCopy>()
        for (const row of rows) {
          const copy = copyFromRow(row)
          if (copy !== null) copies.set(String(row.id), copy)
        }
        return copies
      },
    } satisfies Statement<readonly string[], RowDataPacket[], Map<string, StoredCopy>>,

    /**
     * An upsert that applies only if the stored version is in [from, below): [0, the proposed
     * version) for a plain write (so a statement that arrives late, e.g. after a timeout on a
     * hung store, never overwrites newer data), [expected, expected + 1) for a compare-and-set
     * (expected 0: no row, or one expired at the write's time; above 0, only with
     * `createsAbsent`, else {@link compareAndSet} below).
     * It never overwrites a tombstone. The OK packet's insertId reports the outcome: 0 =
     * written, 1 = a tombstone, anything else = not written, the stored version is that. A
     * stored per-session timeout is kept unless a new one is given, and sets the expiry unless
     * the write gives its own.
     */
    write: {
      text: ({ fields }: SessionWrite) =>
        fields.expectedVersion === undefined
          ? plainWriteText
          : fields.expectedVersion === 0
            ? createText
            : compareAndSetOrCreateText,
      params: (write: SessionWrite) => {
        const { fields } = write
        const expected = fields.expectedVersion
        const expiry = [fields.explicitExpiry ? 1 : 0, fields.now]
        if (expected === undefined) return [...rowValues(write), ...expiry]
        if (expected === 0) {
          const now = fields.now
          return [...rowValues(write), now, now, now, now, ...expiry]
        }
        const range = [expected, expected + 1]
        return [...rowValues(write), ...range, ...range, ...range, ...range, ...expiry, ...range]
      },
      decode: (
        result: ResultSetHeader,
        write: SessionWrite,
        resent: boolean,
      ): WriteOutcome | typeof RESENT_FOUND_OWN_VERSION => {
        if (result.insertId === 0) return { kind: 'written' }
        if (result.insertId === WRITE_HIT_TOMBSTONE) return { kind: 'tombstone' }
        const stored = storedVersion(result.insertId) ?? 0
        if (resent) {
          // Sent again, a write that finds its own version stored may be its first send,
          // applied, or another app server's write that proposed the same version: the data
          // tells (Store reads it back).
          if (stored === write.fields.version) return RESENT_FOUND_OWN_VERSION
          // A compare-and-set that finds neither the expected version nor its own cannot tell
          // a conflict from its first send applied and then written over.
          if (write.fields.expectedVersion !== undefined) throw new WriteOutcomeUnknownError()
        }
        // Sent once, its own version stored is another write's that proposed the same one.
        return { kind: 'outdated', storedVersion: stored }
      },
    } satisfies Statement<
      SessionWrite,
      ResultSetHeader,
      WriteOutcome | typeof RESENT_FOUND_OWN_VERSION
    >,

    /**
     * A compare-and-set above version 0 outside a change of the store list: whether it matched
     * the live row at the expected version (and applied); when not, the row's digest tells why
     * (unmatchedCompareAndSet). `write` above creates a missing row instead.
     */
    compareAndSet: {
      text: () => compareAndSetText,
      params: ({ sessionId, data, fields }: SessionWrite) => [
        data,
        fields.owner,
        fields.ttlSeconds,
        fields.explicitExpiry ? 1 : 0,
        fields.expiresAtMillis,
        fields.now,
        fields.version,
        sessionId,
        fields.expectedVersion,
        fields.now,
      ],
      decode: (result: ResultSetHeader, _write: SessionWrite, resent: boolean) => ({
        matched: changed(result),
        resent,
      }),
    } satisfies Statement<SessionWrite, ResultSetHeader, { matched: boolean; resent: boolean }>,

    /**
     * Plain writes of several sessions in one statement: each row applies only above its own
     * stored version and never over a tombstone. The outcomes are read back with
     * {@link writtenVersions} when not every row applied.
     *
     * A stored per-session timeout runs from the row's own operation time, which rows of
     * different operations cannot share as one parameter: without an explicit expiry a row's
     * expires_at is its time plus the manager's default TTL, so its time is expires_at minus it.
     * All rows of one batch share `explicitExpiry` (the batcher keeps them apart).
     */
    writeMany: {
      text: ({ writes }: WriteManyInput) => writeManyText(writes.length),
      params: ({ writes, defaultTtlSeconds }: WriteManyInput) => [
        ...writes.flatMap(rowValues),
        (writes[0] as SessionWrite).fields.explicitExpiry ? 1 : 0,
        defaultTtlSeconds,
      ],
      decode: everyRowApplied,
    } satisfies Statement<WriteManyInput, ResultSetHeader, boolean>,

    /** What a batch of writes left, decoded into each write's outcome (batch-outcomes.ts). */
    writtenVersions: {
      text: (writes: readonly SessionWrite[]) =>
        writtenVersionsText(paddedCount(new Set(writes.map((w) => w.sessionId)).size)),
      params: (writes: readonly SessionWrite[]) =>
        paddedIds([...new Set(writes.map((w) => w.sessionId))]),
      decode: batchOutcomes,
    } satisfies Statement<
      readonly SessionWrite[],
      RowDataPacket[],
      (WriteOutcome | typeof ROW_GONE)[]
    >,

    /** The next ids after `afterId` in key order: one page of a full scan. */
    scanIds: {
      text: ({ limit }: { afterId: string; limit: number }) =>
        `SELECT id FROM ${t} WHERE id > ? ORDER BY id${limitClause(limit)}`,
      params: ({ afterId }: { afterId: string; limit: number }) => [afterId],
      decode: ids,
    } satisfies Statement<{ afterId: string; limit: number }, RowDataPacket[], string[]>,

    /** The next rows after `afterId` in key order: id, tombstone flag, expiry, version, timeout (and data). */
    listPage: {
      text: ({ limit, withData }: { afterId: string; limit: number; withData: boolean }) =>
        `SELECT id, deleted, expires_at, version, ttl_seconds${withData ? ', data' : ''} ` +
        `FROM ${t} ` +
        `WHERE id > ? ORDER BY id${limitClause(limit)}`,
      params: ({ afterId }: { afterId: string; limit: number; withData: boolean }) => [afterId],
      decode: (
        rows: RowDataPacket[],
        { withData }: { afterId: string; limit: number; withData: boolean },
      ) => listedRows(rows, withData),
    } satisfies Statement<
      { afterId: string; limit: number; withData: boolean },
      RowDataPacket[],
      ListedRow[]
    >,

    /**
     * Rows whose owner is `owner`. The index is forced: on a small or freshly filled table the
     * optimizer may prefer a scan, and the lookup must not turn into one as the table grows
     * between statistics updates.
     */
    byOwner: {
      text: () =>
        `SELECT id, deleted, expires_at FROM ${t} FORCE INDEX (\`${table}_owner\`) WHERE owner = ?`,
      params: (owner: string) => [owner],
      decode: ids,
    } satisfies Statement<string, RowDataPacket[], string[]>,
  }
}

/** The statements of one session table (see {@link sessionStatements}). */
export type SessionStatements = ReturnType<typeof sessionStatements>
