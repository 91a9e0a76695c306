import { hintsTableName, locksTableName } from './schema.js'
import { VERSION_CEILING } from './version-clock.js'

/**
 * The SQL text of every statement, built once per table name (validated by schema.ts, the
 * only thing spliced in besides validated integers). Every value travels as a parameter.
 */
export interface Statements {
  /** [id] → version, expires_at, deleted, data, ttl_seconds */
  readonly read: string
  /** [ids...] (one placeholder per id, built by {@link readManySql}) → id, version, expires_at, deleted, data */
  readonly readManyPrefix: string
  /**
   * [id, version, expires_at, data, owner, ttl_seconds, from, below, from, below, from, below,
   * ttl_seconds, from, below, explicit, now, from, below] → an upsert that applies only if the
   * stored version is in [from, below): [0, the proposed version) for a plain write (so a
   * statement that arrives late, e.g. after a timeout on a hung store, never overwrites newer
   * data), [expected, expected + 1) for a compare-and-set. It never overwrites a tombstone; a
   * version the library cannot have minted counts as 0 (see {@link storedVersion}).
   * The OK packet's insertId reports the outcome: 0 = written with the proposed version,
   * 1 = the row is a tombstone, anything else = not written, the stored version is that.
   * A stored per-session timeout (`ttl_seconds`) is kept unless a new one is given, and sets
   * the expiry unless the write gives its own (`explicit` = 1).
   */
  readonly write: string
  /** [id, version, expires_at] → a tombstone replaces whatever is stored. */
  readonly destroy: string
  /** [id, version, expires_at, data, owner, ttl_seconds] → store this exact copy unless the row is a tombstone or at least as new. */
  readonly copy: string
  /** [expiresAt | null, now, defaultTtlSeconds, id, now] → extend a live, unexpired copy's expiry. */
  readonly touch: string
  /** [ttlSeconds, expires_at, id, now] → set a live copy's per-session timeout and expiry. */
  readonly setTimeout: string
  /** [now] → delete expired rows and tombstones, oldest first (LIMIT spliced). */
  readonly sweepPrefix: string
  /** [id, version] → delete a live copy no newer than `version`. */
  readonly removeCopy: string
  /** [id] → delete a tombstone. */
  readonly clearTombstone: string
  /** [afterId] → the next ids in key order (LIMIT spliced by {@link withLimit}). */
  readonly scanPrefix: string
  /** [afterId] → the next rows' id, deleted, expires_at and version in key order (LIMIT spliced). */
  readonly listPrefix: string
  /** [afterId] → like {@link listPrefix}, with version and data (for find). */
  readonly listDataPrefix: string
  /** [target_store, id, created_at] → remember that `target_store` missed a write of `id`. */
  readonly insertHint: string
  /** [target_store, afterId] → hinted ids for a store, in key order (LIMIT spliced). */
  readonly hintsPrefix: string
  /** [target_store, id] → forget a replayed hint. */
  readonly deleteHint: string
  /** [] → the stores that have hints kept on this store. */
  readonly hintTargets: string
  /**
   * [id, token, expires_at, now] → take (or renew) the lease lock unless another live lease
   * holds it. insertId: 0 or 1 = taken, 2 = held by another.
   */
  readonly lock: string
  /** [id, token] → release a lease lock held with `token`. */
  readonly unlock: string
  /** [owner] → rows whose owner is `owner`: id, deleted, expires_at. */
  readonly byOwner: string
  /** A cheap statement that proves the server answers, and reports its uptime (restarts). */
  readonly probe: string
}

/**
 * The stored version as the statements compare it: a version at or above
 * {@link VERSION_CEILING} was not minted by this library (a broken or hostile peer wrote it)
 * and counts as 0, the oldest, so that it blocks no write and wins over no copy.
 */
const STORED = `((version < ${VERSION_CEILING}) * version)`
/** The condition under which a copy replaces a stored live copy. */
const NEWER = `deleted = 0 AND VALUES(version) > ${STORED}`
/** The condition under which a write replaces a stored live copy: [from, below) holds it. */
const IN_RANGE = `${STORED} >= ? AND ${STORED} < ?`
const WRITABLE = `deleted = 0 AND ${IN_RANGE}`

/**
 * A version as a store returned it (a number, or a string when it is beyond double precision),
 * or null when it is not one the library can have minted (at or above {@link VERSION_CEILING}).
 */
export function storedVersion(value: unknown): number | null {
  const version = typeof value === 'number' ? value : Number.NaN
  return Number.isSafeInteger(version) && version >= 0 && version < VERSION_CEILING ? version : null
}

/** insertId of {@link Statements.write} when the row is a tombstone. */
export const WRITE_HIT_TOMBSTONE = 1

export function buildStatements(table: string): Statements {
  const t = `\`${table}\``
  const hints = `\`${hintsTableName(table)}\``
  const locks = `\`${locksTableName(table)}\``
  const columns = 'version, expires_at, deleted, data, ttl_seconds'
  return {
    read: `SELECT ${columns} FROM ${t} WHERE id = ?`,
    readManyPrefix: `SELECT id, ${columns} FROM ${t} WHERE id IN `,
    write:
      `INSERT INTO ${t} (id, version, expires_at, deleted, data, owner, ttl_seconds) ` +
      'VALUES (?, ?, ?, 0, ?, ?, ?) ON DUPLICATE KEY UPDATE ' +
      `data = IF(${WRITABLE}, VALUES(data), data), ` +
      `owner = IF(${WRITABLE}, VALUES(owner), owner), ` +
      `ttl_seconds = IF(${WRITABLE}, COALESCE(?, ttl_seconds), ttl_seconds), ` +
      `expires_at = IF(${WRITABLE}, IF(? = 1 OR ttl_seconds IS NULL, VALUES(expires_at), ` +
      '? + ttl_seconds * 1000), expires_at), ' +
      // Assignments run left to right, so version (read by the IFs above) is updated last.
      `version = IF(deleted = 1, version + 0 * LAST_INSERT_ID(${WRITE_HIT_TOMBSTONE}), ` +
      `IF(${IN_RANGE}, VALUES(version), LAST_INSERT_ID(version)))`,
    destroy:
      `INSERT INTO ${t} (id, version, expires_at, deleted, data, owner) VALUES (?, ?, ?, 1, NULL, NULL) ` +
      'ON DUPLICATE KEY UPDATE data = NULL, owner = NULL, deleted = 1, ' +
      'expires_at = GREATEST(expires_at, VALUES(expires_at)), ' +
      `version = GREATEST(${STORED} + 1, VALUES(version))`,
    copy:
      `INSERT INTO ${t} (id, version, expires_at, deleted, data, owner, ttl_seconds) ` +
      'VALUES (?, ?, ?, 0, ?, ?, ?) ON DUPLICATE KEY UPDATE ' +
      `data = IF(${NEWER}, VALUES(data), data), ` +
      `expires_at = IF(${NEWER}, VALUES(expires_at), expires_at), ` +
      `owner = IF(${NEWER}, VALUES(owner), owner), ` +
      `ttl_seconds = IF(${NEWER}, VALUES(ttl_seconds), ttl_seconds), ` +
      `version = IF(${NEWER}, VALUES(version), version)`,
    touch:
      `UPDATE ${t} SET expires_at = GREATEST(expires_at, COALESCE(?, ? + COALESCE(ttl_seconds, ?) * 1000)) ` +
      'WHERE id = ? AND deleted = 0 AND expires_at > ?',
    setTimeout: `UPDATE ${t} SET ttl_seconds = ?, expires_at = ? WHERE id = ? AND deleted = 0 AND expires_at > ?`,
    sweepPrefix: `DELETE FROM ${t} WHERE expires_at < ? ORDER BY expires_at LIMIT `,
    removeCopy: `DELETE FROM ${t} WHERE id = ? AND ${STORED} <= ? AND deleted = 0`,
    clearTombstone: `DELETE FROM ${t} WHERE id = ? AND deleted = 1`,
    scanPrefix: `SELECT id FROM ${t} WHERE id > ? ORDER BY id LIMIT `,
    listPrefix: `SELECT id, deleted, expires_at, version FROM ${t} WHERE id > ? ORDER BY id LIMIT `,
    listDataPrefix: `SELECT id, deleted, expires_at, version, data FROM ${t} WHERE id > ? ORDER BY id LIMIT `,
    insertHint: `INSERT IGNORE INTO ${hints} (target_store, id, created_at) VALUES (?, ?, ?)`,
    hintsPrefix: `SELECT id FROM ${hints} WHERE target_store = ? AND id > ? ORDER BY id LIMIT `,
    deleteHint: `DELETE FROM ${hints} WHERE target_store = ? AND id = ?`,
    hintTargets: `SELECT DISTINCT target_store FROM ${hints} LIMIT 1000`,
    lock:
      `INSERT INTO ${locks} (id, token, expires_at) VALUES (?, ?, ?) ON DUPLICATE KEY UPDATE ` +
      // Taken (or renewed) when the lease ran out or is ours: LAST_INSERT_ID reports which.
      'token = IF(expires_at < ? OR token = VALUES(token), ' +
      'IF(LAST_INSERT_ID(1), VALUES(token), VALUES(token)), IF(LAST_INSERT_ID(2), token, token)), ' +
      'expires_at = IF(token = VALUES(token), VALUES(expires_at), expires_at)',
    unlock: `DELETE FROM ${locks} WHERE id = ? AND token = ?`,
    // The optimizer may prefer a scan of a small or freshly filled table; the lookup must not
    // turn into a scan as the table grows between statistics updates.
    byOwner: `SELECT id, deleted, expires_at FROM ${t} FORCE INDEX (\`${table}_owner\`) WHERE owner = ?`,
    probe: "SHOW GLOBAL STATUS LIKE 'Uptime'",
  }
}

/**
 * A multi-row {@link Statements.write} for batches of plain writes: each row applies only
 * above its own stored version (the proposed version is its bound) and never over a
 * tombstone. Parameters: six per row (id, version, expires_at, data, owner, ttl_seconds), then
 * explicit, defaultTtlSeconds. Outcomes are read back with {@link versionsSql}.
 *
 * A stored per-session timeout runs from the row's own operation time, which a batch of rows
 * from different operations cannot share as one parameter: without an explicit expiry a row's
 * expires_at is its time plus the manager's default TTL, so its time is expires_at minus that.
 */
export function writeManySql(table: string, rows: number): string {
  const apply = `deleted = 0 AND ${STORED} < VALUES(version)`
  return (
    `INSERT INTO \`${table}\` (id, version, expires_at, deleted, data, owner, ttl_seconds) VALUES ` +
    Array.from({ length: rows }, () => '(?, ?, ?, 0, ?, ?, ?)').join(', ') +
    ' ON DUPLICATE KEY UPDATE ' +
    `data = IF(${apply}, VALUES(data), data), ` +
    `owner = IF(${apply}, VALUES(owner), owner), ` +
    `ttl_seconds = IF(${apply}, COALESCE(VALUES(ttl_seconds), ttl_seconds), ttl_seconds), ` +
    `expires_at = IF(${apply}, IF(? = 1 OR ttl_seconds IS NULL, VALUES(expires_at), ` +
    'VALUES(expires_at) - ? * 1000 + ttl_seconds * 1000), expires_at), ' +
    `version = IF(${apply}, VALUES(version), version)`
  )
}

/** `SELECT id, version, deleted ... WHERE id IN (...)`: what a batch of writes left behind. */
export function versionsSql(table: string, count: number): string {
  return (
    `SELECT id, version, deleted FROM \`${table}\` WHERE id IN ` +
    `(${Array.from({ length: count }, () => '?').join(', ')})`
  )
}

/** `SELECT ... WHERE id IN (?, ?, ...)` with one placeholder per id. */
export function readManySql(statements: Statements, count: number): string {
  return statements.readManyPrefix + `(${Array.from({ length: count }, () => '?').join(', ')})`
}

/** A statement with a validated integer LIMIT appended (LIMIT placeholders differ across servers). */
export function withLimit(prefix: string, limit: number): string {
  if (!Number.isSafeInteger(limit) || limit < 1)
    throw new TypeError('limit must be a positive integer')
  return prefix + String(limit)
}
