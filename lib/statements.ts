/**
 * The SQL text of every per-session statement, built once per table name (validated by
 * schema.ts, the only thing spliced in). Every value travels as a parameter.
 */
export interface Statements {
  /** [id] → version, expires_at, deleted, data */
  readonly read: string
  /**
   * [id, version, expires_at, data, owner] → an upsert. A tombstone is never overwritten.
   * The stored version becomes max(stored + 1, proposed), so it only grows; the OK packet's
   * insertId reports the outcome: 0 = inserted with the proposed version, 1 = the row is a
   * tombstone (nothing written), otherwise the version the row now has.
   */
  readonly write: string
  /** [id, version, expires_at] → a tombstone replaces whatever is stored. */
  readonly destroy: string
  /** [newVersion, id, writtenVersion] → raise one copy's version to match its siblings. */
  readonly alignVersion: string
}

/** insertId of {@link Statements.write} when the row is a tombstone. */
export const WRITE_HIT_TOMBSTONE = 1

export function buildStatements(table: string): Statements {
  const t = `\`${table}\``
  return {
    read: `SELECT version, expires_at, deleted, data FROM ${t} WHERE id = ?`,
    write:
      `INSERT INTO ${t} (id, version, expires_at, deleted, data, owner) VALUES (?, ?, ?, 0, ?, ?) ` +
      'ON DUPLICATE KEY UPDATE ' +
      'data = IF(deleted = 1, data, VALUES(data)), ' +
      'expires_at = IF(deleted = 1, expires_at, VALUES(expires_at)), ' +
      'owner = IF(deleted = 1, owner, VALUES(owner)), ' +
      // Assignments run left to right, so version (read by the IFs above) is updated last.
      `version = IF(deleted = 1, version + 0 * LAST_INSERT_ID(${WRITE_HIT_TOMBSTONE}), ` +
      'LAST_INSERT_ID(GREATEST(version + 1, VALUES(version))))',
    destroy:
      `INSERT INTO ${t} (id, version, expires_at, deleted, data, owner) VALUES (?, ?, ?, 1, NULL, NULL) ` +
      'ON DUPLICATE KEY UPDATE data = NULL, owner = NULL, deleted = 1, ' +
      'expires_at = GREATEST(expires_at, VALUES(expires_at)), ' +
      'version = GREATEST(version + 1, VALUES(version))',
    alignVersion: `UPDATE ${t} SET version = ? WHERE id = ? AND version = ? AND deleted = 0`,
  }
}
