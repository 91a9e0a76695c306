/** The statements beside the session rows: lease locks, hints for stores that missed writes, the probe. */
import type { ResultSetHeader, RowDataPacket } from 'mysql2'
import { hintsTableName, locksTableName } from '../schema.js'
import type { Statement } from './statements.js'
import { ids, limitClause, nothing } from './statements.js'

/** insertId of the lock statement when another lease holds the lock. */
const LOCK_HELD = 2

/** The statements on the locks and hints tables of the session table `table`, and the probe. */
export function lockAndHintStatements(table: string) {
  const hints = `\`${hintsTableName(table)}\``
  const locks = `\`${locksTableName(table)}\``
  return {
    /** Take (or renew) a lease lock unless another live lease holds it: whether it is ours. */
    lock: {
      text: () =>
        `INSERT INTO ${locks} (id, token, expires_at) VALUES (?, ?, ?) ON DUPLICATE KEY UPDATE ` +
        // Taken (or renewed) when the lease ran out or is ours: LAST_INSERT_ID reports which.
        'token = IF(expires_at <= ? OR token = VALUES(token), ' +
        `IF(LAST_INSERT_ID(1), VALUES(token), VALUES(token)), IF(LAST_INSERT_ID(${LOCK_HELD}), token, token)), ` +
        'expires_at = IF(token = VALUES(token), VALUES(expires_at), expires_at)',
      params: (input: {
        sessionId: string
        token: string
        expiresAtMillis: number
        now: number
      }) => [input.sessionId, input.token, input.expiresAtMillis, input.now],
      decode: (result: ResultSetHeader) => result.insertId !== LOCK_HELD,
    } satisfies Statement<
      { sessionId: string; token: string; expiresAtMillis: number; now: number },
      ResultSetHeader,
      boolean
    >,

    /** Release a lease lock held with `token`. */
    unlock: {
      text: () => `DELETE FROM ${locks} WHERE id = ? AND token = ?`,
      params: ({ sessionId, token }: { sessionId: string; token: string }) => [sessionId, token],
      decode: nothing,
    } satisfies Statement<{ sessionId: string; token: string }, ResultSetHeader, void>,

    /** Remember that `target` missed a write of `sessionId` (kept on the store that took it). */
    addHint: {
      text: () => `INSERT IGNORE INTO ${hints} (target_store, id, created_at) VALUES (?, ?, ?)`,
      params: (input: { target: string; sessionId: string; now: number }) => [
        input.target,
        input.sessionId,
        input.now,
      ],
      decode: nothing,
    } satisfies Statement<
      { target: string; sessionId: string; now: number },
      ResultSetHeader,
      void
    >,

    /** Hinted ids for a store after `afterId`, in key order. */
    hintedIds: {
      text: ({ limit }: { target: string; afterId: string; limit: number }) =>
        `SELECT id FROM ${hints} WHERE target_store = ? AND id > ? ORDER BY id${limitClause(limit)}`,
      params: ({ target, afterId }: { target: string; afterId: string; limit: number }) => [
        target,
        afterId,
      ],
      decode: ids,
    } satisfies Statement<
      { target: string; afterId: string; limit: number },
      RowDataPacket[],
      string[]
    >,

    /** Forget a replayed hint. */
    deleteHint: {
      text: () => `DELETE FROM ${hints} WHERE target_store = ? AND id = ?`,
      params: ({ target, sessionId }: { target: string; sessionId: string }) => [target, sessionId],
      decode: nothing,
    } satisfies Statement<{ target: string; sessionId: string }, ResultSetHeader, void>,

    /** The stores that have hints kept on this store. */
    hintTargets: {
      text: () => `SELECT DISTINCT target_store FROM ${hints} LIMIT 1000`,
      params: () => [],
      decode: (rows: RowDataPacket[]) => rows.map((row) => String(row.target_store)),
    } satisfies Statement<void, RowDataPacket[], string[]>,

    /** A cheap statement that proves the server answers, and reports its uptime (restarts). */
    probe: {
      text: () => "SHOW GLOBAL STATUS LIKE 'Uptime'",
      params: () => [],
      decode: (rows: RowDataPacket[]) => Number(rows[0]?.Value ?? 0),
    } satisfies Statement<void, RowDataPacket[], number>,
  }
}

/** The statements of one table's locks and hints (see {@link lockAndHintStatements}). */
export type LockAndHintStatements = ReturnType<typeof lockAndHintStatements>
