/** The statements beside the session rows: lease locks, hints for stores that missed writes, the probe. */
import type { ResultSetHeader, RowDataPacket } from 'mysql2'
import { hintsTableName, locksTableName } from '../schema.js'
import type { Statement } from './statements.js'
import { limitClause, nothing } from './statements.js'

/** insertId of the lock statement when another lease holds the lock. */
const LOCK_HELD = 2

/**
 * The id of a hint row that stands for "this store missed writes past the hint window and
 * needs a full repair". No session has it (ids are at least 16 characters), replay never
 * reads it (it walks ids after ''), and only a finished `repair()` deletes it. Its version
 * counts how often it was set, so a repair clears only markers set before it began.
 */
export const REPAIR_MARKER_ID = ''

/**
 * The token of a released lock: `~` and the holder's token (tokens are base64url or UUIDs, which
 * never hold `~`). A release keeps the row, with minus the time of the release as its expiry
 * (so a lock statement sent at or after it takes it), rather than delete it: a lock statement of
 * the same holder that lands after it would otherwise find no row and take the lock back for a
 * whole lease, with no holder left to release it.
 */
function releasedToken(token: string): string {
  return `~${token}`
}

/**
 * How long a release is kept before sweeps delete it: far longer than any statement of the
 * released holder can be on its way.
 */
const RELEASE_KEPT_MILLIS = 600_000

/**
 * Whether a lock row's lease had ended by a time (two parameters, both that time): released at
 * or before it (a release's expiry is minus its time), or run out by then.
 */
const ENDED_BY = 'IF(expires_at < 0, -expires_at <= ?, expires_at <= ?)'

/** What a sweep deletes: `limit` rows expired by `expiredBy`, but none held back for `targets`. */
interface SweepArguments {
  expiredBy: number
  limit: number
  targets: readonly string[]
}

/** The statements on the locks and hints tables of the session table `table`, and the probe. */
export function lockAndHintStatements(table: string) {
  const hints = `\`${hintsTableName(table)}\``
  const sessions = `\`${table}\``
  const locks = `\`${locksTableName(table)}\``
  return {
    /**
     * Take (or renew) a lease lock unless another live lease holds it: whether it is ours. A
     * statement that lands after its caller gave up on it (a lock round that timed out, a
     * renewal in flight at the release) must not take the lock back: so never over its own
     * release (its give-back leaves one, see unlock), nor over a lease that had not ended by the
     * time the statement was sent (`now`, the sender's clock, which leases already assume
     * agrees across app servers): once another holder took the lock and released it, the
     * release is not its own.
     */
    lock: {
      text: () =>
        `INSERT INTO ${locks} (id, token, expires_at) VALUES (?, ?, ?) ON DUPLICATE KEY UPDATE ` +
        // Taken (or renewed) when ours, or when the lease had ended by the time the statement
        // was sent and is not our own release: LAST_INSERT_ID reports which.
        'token = IF(token = VALUES(token) OR ' +
        `(${ENDED_BY} AND token <> ?), ` +
        `IF(LAST_INSERT_ID(1), VALUES(token), VALUES(token)), IF(LAST_INSERT_ID(${LOCK_HELD}), token, token)), ` +
        // The later lease: of two renewals, the one sent first may land last.
        'expires_at = IF(token = VALUES(token), GREATEST(expires_at, VALUES(expires_at)), expires_at)',
      params: (input: {
        sessionId: string
        token: string
        expiresAtMillis: number
        now: number
      }) => [
        input.sessionId,
        input.token,
        input.expiresAtMillis,
        input.now,
        input.now,
        releasedToken(input.token),
      ],
      decode: (result: ResultSetHeader) => result.insertId !== LOCK_HELD,
    } satisfies Statement<
      { sessionId: string; token: string; expiresAtMillis: number; now: number },
      ResultSetHeader,
      boolean
    >,

    /**
     * Delete locks whose lease ran out (left by holders that died, or whose release failed)
     * and releases, both over {@link RELEASE_KEPT_MILLIS} ago: up to 1000 per sweep. Taking such
     * a lock overwrites its row all the same. Kept until then, a lease that ran out still tells
     * a late lock statement (sent before it ended) to take nothing, and the sweeper's clock,
     * which may run ahead of the holder's, never judges a live one run out.
     */
    sweepLocks: {
      text: () =>
        `DELETE FROM ${locks} WHERE (expires_at BETWEEN 0 AND ?) OR ` +
        '(expires_at < 0 AND expires_at > ?) LIMIT 1000',
      // A release's expiry is minus its time: released before now - RELEASE_KEPT_MILLIS means
      // an expiry above minus that.
      params: (now: number) => [now - RELEASE_KEPT_MILLIS, -(now - RELEASE_KEPT_MILLIS)],
      decode: (result: ResultSetHeader) => result.affectedRows,
    } satisfies Statement<number, ResultSetHeader, number>,

    /**
     * Release a lease lock held with `token`, or give back one a waiter's statement may still
     * take: the row becomes its release (see {@link releasedToken}) when `token` holds it, when
     * there is none yet, and when no lease holds it now (another holder's release, a lapsed
     * lease), so that a lock statement of this holder still on its way finds its own release and
     * takes nothing. A live lease of another holder stays as it is.
     */
    unlock: {
      text: () =>
        `INSERT INTO ${locks} (id, token, expires_at) VALUES (?, ?, ?) ON DUPLICATE KEY UPDATE ` +
        // expires_at first, then token: the token's condition sees the new expiry, which is a
        // release ended now exactly when the expiry's condition held, so both agree.
        `expires_at = IF(token = ? OR ${ENDED_BY}, VALUES(expires_at), expires_at), ` +
        `token = IF(token = ? OR ${ENDED_BY}, VALUES(token), token)`,
      params: ({ sessionId, token, now }: { sessionId: string; token: string; now: number }) => [
        sessionId,
        releasedToken(token),
        -now,
        token,
        now,
        now,
        token,
        now,
        now,
      ],
      decode: nothing,
    } satisfies Statement<{ sessionId: string; token: string; now: number }, ResultSetHeader, void>,

    /**
     * Remember that `target` missed a write of `sessionId` at `version` (kept on the store that
     * took it). A hint already there keeps its time (when the store first missed the session)
     * and takes the higher version.
     */
    addHint: {
      text: () =>
        `INSERT INTO ${hints} (target_store, id, created_at, version) VALUES (?, ?, ?, ?) ` +
        'ON DUPLICATE KEY UPDATE version = GREATEST(version, VALUES(version))',
      params: (input: { target: string; sessionId: string; now: number; version: number }) => [
        input.target,
        input.sessionId,
        input.now,
        input.version,
      ],
      decode: nothing,
    } satisfies Statement<
      { target: string; sessionId: string; now: number; version: number },
      ResultSetHeader,
      void
    >,

    /** Hints for a store after `afterId`, in key order: id and version. */
    hintedIds: {
      text: ({ limit }: { target: string; afterId: string; limit: number }) =>
        `SELECT id, version FROM ${hints} WHERE target_store = ? AND id > ? ORDER BY id${limitClause(limit)}`,
      params: ({ target, afterId }: { target: string; afterId: string; limit: number }) => [
        target,
        afterId,
      ],
      decode: (rows: RowDataPacket[]) =>
        rows.map((row) => ({ id: String(row.id), version: Number(row.version) })),
    } satisfies Statement<
      { target: string; afterId: string; limit: number },
      RowDataPacket[],
      { id: string; version: number }[]
    >,

    /** Forget a replayed hint, unless a newer write of the session was hinted meanwhile. */
    deleteHint: {
      text: () => `DELETE FROM ${hints} WHERE target_store = ? AND id = ? AND version <= ?`,
      params: ({
        target,
        sessionId,
        version,
      }: {
        target: string
        sessionId: string
        version: number
      }) => [target, sessionId, version],
      decode: nothing,
    } satisfies Statement<
      { target: string; sessionId: string; version: number },
      ResultSetHeader,
      void
    >,

    /**
     * Sets `target`'s repair marker (see {@link REPAIR_MARKER_ID}), or counts it up once more
     * if it is there: a repair clears only markers it saw, never one set while it ran.
     */
    markRepairNeeded: {
      text: () =>
        `INSERT INTO ${hints} (target_store, id, created_at, version) VALUES (?, ?, ?, 1) ` +
        'ON DUPLICATE KEY UPDATE version = version + 1',
      params: ({ target, now }: { target: string; now: number }) => [target, REPAIR_MARKER_ID, now],
      decode: nothing,
    } satisfies Statement<{ target: string; now: number }, ResultSetHeader, void>,

    /** `target`'s repair marker kept on this store: its count, or null when there is none. */
    repairMarker: {
      text: () => `SELECT version FROM ${hints} WHERE target_store = ? AND id = ?`,
      params: (target: string) => [target, REPAIR_MARKER_ID],
      decode: (rows: RowDataPacket[]) => (rows.length > 0 ? Number(rows[0]?.version) : null),
    } satisfies Statement<string, RowDataPacket[], number | null>,

    /** Clears `target`'s repair marker unless it was set again since its count was `seen`. */
    clearRepairMarker: {
      text: () => `DELETE FROM ${hints} WHERE target_store = ? AND id = ? AND version <= ?`,
      params: ({ target, seen }: { target: string; seen: number }) => [
        target,
        REPAIR_MARKER_ID,
        seen,
      ],
      decode: nothing,
    } satisfies Statement<{ target: string; seen: number }, ResultSetHeader, void>,

    /** The stores that have hints kept on this store. */
    hintTargets: {
      text: () => `SELECT DISTINCT target_store FROM ${hints} LIMIT 1000`,
      params: () => [],
      decode: (rows: RowDataPacket[]) => rows.map((row) => String(row.target_store)),
    } satisfies Statement<void, RowDataPacket[], string[]>,

    /**
     * The stores with hints kept on this store, and when the newest of them (or their repair
     * marker) was recorded: a scan of the hints, for sweeps (the health check lists the stores
     * alone, through the index).
     */
    hintTargetAges: {
      text: () =>
        `SELECT target_store, MAX(created_at) AS newest FROM ${hints} ` +
        'GROUP BY target_store LIMIT 1000',
      params: () => [],
      decode: (rows: RowDataPacket[]) =>
        rows.map((row) => ({ id: String(row.target_store), newestMillis: Number(row.newest) })),
    } satisfies Statement<void, RowDataPacket[], { id: string; newestMillis: number }[]>,

    /**
     * Delete up to `limit` rows expired by `expiredBy` (copies and tombstones), oldest first, but
     * none that the replay of a store that missed writes may still need: while this store keeps a
     * hint for a session (for one of `targets`, the stores the manager knows), its row stays;
     * while it keeps a repair marker, every expired row does. An expired copy or a tombstone is
     * the newest version of its session: deleted before a store that missed it was caught up,
     * it would leave that store's older copy, which may expire later (a session with a longer
     * life than the tombstones'), to be the session again. Resolves how many rows went.
     */
    sweep: {
      text: ({ limit, targets }: SweepArguments) => {
        const among =
          targets.length === 0 ? 'FALSE' : `target_store IN (${targets.map(() => '?').join(', ')})`
        return (
          `DELETE FROM ${sessions} WHERE expires_at <= ? ` +
          `AND NOT EXISTS (SELECT 1 FROM ${hints} WHERE ${among} AND id = ${sessions}.id) ` +
          `AND NOT EXISTS (SELECT 1 FROM ${hints} WHERE ${among} AND id = ?) ` +
          `ORDER BY expires_at${limitClause(limit)}`
        )
      },
      params: ({ expiredBy, targets }: SweepArguments) => [
        expiredBy,
        ...targets,
        ...targets,
        REPAIR_MARKER_ID,
      ],
      decode: (result: ResultSetHeader) => result.affectedRows,
    } satisfies Statement<SweepArguments, ResultSetHeader, number>,

    /**
     * Deletes up to 1000 hints and repair markers kept for the stores `retired` (no app server
     * lists them any more) recorded by `createdBy`: nothing replays them, and a marker would
     * keep every expired row here.
     */
    sweepHints: {
      text: ({ retired }: { retired: readonly string[]; createdBy: number }) =>
        `DELETE FROM ${hints} WHERE target_store IN (${retired.map(() => '?').join(', ')}) ` +
        'AND created_at <= ? LIMIT 1000',
      params: ({ retired, createdBy }: { retired: readonly string[]; createdBy: number }) => [
        ...retired,
        createdBy,
      ],
      decode: (result: ResultSetHeader) => result.affectedRows,
    } satisfies Statement<
      { retired: readonly string[]; createdBy: number },
      ResultSetHeader,
      number
    >,

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
