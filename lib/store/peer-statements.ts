/** The statements on the peers table: each manager's placement configuration (config-guard.ts). */
import type { ResultSetHeader, RowDataPacket } from 'mysql2'
import { peersTableName } from '../schema.js'
import type { Statement } from './statements.js'
import { nothing } from './statements.js'

/** One manager's published placement configuration. */
export interface PeerRow {
  manager: string
  fingerprint: string
  /** The configuration as JSON (store ids, placement, copies; never a URI). */
  config: string
  expiresAtMillis: number
}

/** Live peers read at most per store and round: a bound, far above any real farm's managers. */
const PEERS_READ_LIMIT = 200

/** The statements on the peers table of the session table `table`. */
export function peerStatements(table: string) {
  const peers = `\`${peersTableName(table)}\``
  return {
    /** Publish (or renew) this manager's configuration. */
    publishPeer: {
      text: () =>
        `INSERT INTO ${peers} (manager, fingerprint, config, expires_at) VALUES (?, ?, ?, ?) ` +
        'ON DUPLICATE KEY UPDATE fingerprint = VALUES(fingerprint), config = VALUES(config), ' +
        'expires_at = VALUES(expires_at)',
      params: (input: PeerRow) => [
        input.manager,
        input.fingerprint,
        input.config,
        input.expiresAtMillis,
      ],
      decode: nothing,
    } satisfies Statement<PeerRow, ResultSetHeader, void>,

    /** Other managers' configurations not yet expired, and expired rows deleted (a bounded table). */
    livePeers: {
      text: () =>
        `SELECT manager, fingerprint, config FROM ${peers} WHERE expires_at > ? AND manager <> ? ` +
        `LIMIT ${PEERS_READ_LIMIT}`,
      params: (input: { now: number; manager: string }) => [input.now, input.manager],
      decode: (rows: RowDataPacket[]) =>
        rows.map((row) => ({
          manager: String(row.manager),
          fingerprint: String(row.fingerprint),
          config: String(row.config),
        })),
    } satisfies Statement<
      { now: number; manager: string },
      RowDataPacket[],
      Omit<PeerRow, 'expiresAtMillis'>[]
    >,

    /** Deletes expired rows, left by managers that stopped without withdrawing. */
    sweepPeers: {
      text: () => `DELETE FROM ${peers} WHERE expires_at <= ? LIMIT 1000`,
      params: (now: number) => [now],
      decode: nothing,
    } satisfies Statement<number, ResultSetHeader, void>,

    /** Withdraws this manager's row (on close). */
    withdrawPeer: {
      text: () => `DELETE FROM ${peers} WHERE manager = ?`,
      params: (manager: string) => [manager],
      decode: nothing,
    } satisfies Statement<string, ResultSetHeader, void>,
  }
}
