/** The statements on the stale table: which stores missed which manager's writes (read-lease.ts). */
import type { ResultSetHeader, RowDataPacket } from 'mysql2'
import { staleTableName } from '../schema.js'
import type { Statement } from './statements.js'
import { nothing } from './statements.js'

/** One manager's announcement that `target` missed its writes. */
export interface StaleAnnouncement {
  target: string
  manager: string
  /** Counts the manager's announcements for `target`: a withdrawal removes only its own. */
  generation: number
  expiresAtMillis: number
}

type Withdrawal = Omit<StaleAnnouncement, 'expiresAtMillis'>

/** The statements on the stale table of the session table `table`. */
export function staleStatements(table: string) {
  const stale = `\`${staleTableName(table)}\``
  return {
    /**
     * Announce that `target` missed writes, announce it again with a new generation, or keep
     * an announcement standing: a store that missed it (down then, or not up for the manager
     * when it was first stored) takes it here too. Never moves one back: an older generation
     * sent late leaves a newer one as it is, and an expiry only grows.
     */
    announceStale: {
      text: () =>
        `INSERT INTO ${stale} (target_store, manager, generation, expires_at) VALUES (?, ?, ?, ?) ` +
        'ON DUPLICATE KEY UPDATE expires_at = IF(VALUES(generation) >= generation, ' +
        'GREATEST(expires_at, VALUES(expires_at)), expires_at), ' +
        // After expires_at, which reads the generation stored before this statement.
        'generation = GREATEST(generation, VALUES(generation))',
      params: (input: StaleAnnouncement) => [
        input.target,
        input.manager,
        input.generation,
        input.expiresAtMillis,
      ],
      decode: nothing,
    } satisfies Statement<StaleAnnouncement, ResultSetHeader, void>,

    /** Withdraw an announcement, unless the manager announced again since (a newer generation). */
    withdrawStale: {
      text: () => `DELETE FROM ${stale} WHERE target_store = ? AND manager = ? AND generation = ?`,
      params: (input: Withdrawal) => [input.target, input.manager, input.generation],
      decode: nothing,
    } satisfies Statement<Withdrawal, ResultSetHeader, void>,

    /** Delete expired announcements (left by managers that stopped before withdrawing them). */
    sweepStale: {
      text: () => `DELETE FROM ${stale} WHERE expires_at <= ? LIMIT 1000`,
      params: (now: number) => [now],
      decode: (result: ResultSetHeader) => result.affectedRows,
    } satisfies Statement<number, ResultSetHeader, number>,

    /** The stores announced stale on this store, by announcements not yet expired. */
    staleTargets: {
      text: () => `SELECT DISTINCT target_store FROM ${stale} WHERE expires_at > ? LIMIT 1000`,
      params: (now: number) => [now],
      decode: (rows: RowDataPacket[]) => rows.map((row) => String(row.target_store)),
    } satisfies Statement<number, RowDataPacket[], string[]>,
  }
}

/** The statements of one table's stale announcements (see {@link staleStatements}). */
export type StaleStatements = ReturnType<typeof staleStatements>
