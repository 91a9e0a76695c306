/** Read-only views for operators: every store's row of one session, and every store's health and rows. */
import type { RowDataPacket } from 'mysql2'
import type { CopyVerdict } from '../copy-rules.js'
import { judgeCopies } from '../copy-rules.js'
import { errorSummary } from '../errors.js'
import type { Clock } from '../clock.js'
import type { Statement } from '../store/statements.js'
import type { Store } from '../store/store.js'
import type { StoredCopy } from '../store/rows.js'

/** One store's row of a session, as {@link SessionManager.inspectSession} shows it (never the data). */
export interface InspectedCopy {
  version: number
  /** Milliseconds since the epoch. */
  expiresAt: number
  /** A tombstone: the session was destroyed. */
  deleted: boolean
  /** Bytes of the encoded data; null for a tombstone. */
  dataBytes: number | null
  /** The per-session timeout, null for the manager's default. */
  ttlSeconds: number | null
}

/** One store in {@link SessionInspection}. */
export interface InspectedStore {
  storeId: string
  /** Among the session's first `copies` stores. */
  holdsCopy: boolean
  /** Only in `previousStores`: not in the order; a rebalance moves its copy away. */
  retiring: boolean
  /** The store's row, null when it has none or could not be asked. */
  copy: InspectedCopy | null
  /** Why the store could not be asked (a one-line summary), or null. */
  error: string | null
}

/** Every copy of a session, from {@link SessionManager.inspectSession}. */
export interface SessionInspection {
  /** What the copies say, by the same rule reads follow. */
  state: CopyVerdict<StoredCopy>['state']
  /** The winning version; null when there is none. */
  version: number | null
  /** The session's order, then the retiring stores. */
  stores: InspectedStore[]
}

/** One store in {@link SessionManager.storeReports}. */
export interface StoreReport {
  storeId: string
  /** Only in `previousStores`. */
  retiring: boolean
  /** `up`, `down`, or `behind` (up, replaying writes it missed), as this manager sees it. */
  state: 'up' | 'down' | 'behind'
  /** One round trip of a probe on an open connection; null when the store did not answer. */
  probeMillis: number | null
  /** Null when not asked for, or unreachable, or the count failed. */
  rows: RowCounts | null
  /** Why the store is a problem (a one-line summary), or null. */
  error: string | null
}

/** Every store's row of `sessionId`, read-only (no repair): `order` first, then `retiring`. */
export async function inspectSession(
  sessionId: string,
  order: readonly Store[],
  retiring: readonly Store[],
  copies: number,
  clock: Clock,
): Promise<SessionInspection> {
  const asked = await Promise.all(
    [...order, ...retiring].map(async (store, index) => {
      try {
        return { store, index, copy: await store.read(sessionId), error: null }
      } catch (error) {
        return { store, index, copy: null, error: describeError(error) }
      }
    }),
  )
  const verdict = judgeCopies(
    asked.map((entry) => entry.copy),
    clock.now(),
  )
  return {
    state: verdict.state,
    version: verdict.state === 'none' ? null : verdict.copy.version,
    stores: asked.map(({ store, index, copy, error }) => ({
      storeId: store.id,
      holdsCopy: index < copies,
      retiring: index >= order.length,
      copy:
        copy === null
          ? null
          : {
              version: copy.version,
              expiresAt: copy.expiresAtMillis,
              deleted: copy.deleted,
              dataBytes: copy.data === null ? null : copy.data.length,
              ttlSeconds: copy.ttlSeconds,
            },
      error,
    })),
  }
}

/** Live, expired and tombstone rows of one store's session table. */
export interface RowCounts {
  live: number
  expired: number
  tombstones: number
}

type CountRow = { total: unknown; tombstones: unknown; expired: unknown }

/** Counts a session table's rows at `now` (a full scan of the table). */
function rowCounts(table: string): Statement<number, CountRow[], RowCounts> {
  return {
    text: () =>
      'SELECT COUNT(*) AS total, COALESCE(SUM(deleted = 1), 0) AS tombstones, ' +
      `COALESCE(SUM(deleted = 0 AND expires_at <= ?), 0) AS expired FROM \`${table}\``,
    params: (now) => [now],
    decode: (rows) => {
      const total = Number(rows[0]?.total ?? 0)
      const tombstones = Number(rows[0]?.tombstones ?? 0)
      const expired = Number(rows[0]?.expired ?? 0)
      return { live: total - tombstones - expired, expired, tombstones }
    },
  }
}

/**
 * Whether the session table can be read: one row at most. The probe lets an SQL error pass
 * (requests report it themselves); a report without counts must not.
 */
function tableRead(table: string): Statement<undefined, RowDataPacket[], void> {
  return {
    text: () => `SELECT 1 FROM \`${table}\` LIMIT 1`,
    params: () => [],
    decode: () => undefined,
  }
}

/**
 * Each store's standing, a timed probe, and its rows counted at `clock.now()` (without
 * `clock`, one row read: the table must answer either way).
 */
export async function storeReports(
  stores: readonly Store[],
  retiring: readonly Store[],
  table: string,
  clock: Clock | null,
): Promise<StoreReport[]> {
  return Promise.all(
    stores.map(async (store) => {
      const { standing } = store
      const report: StoreReport = {
        storeId: store.id,
        retiring: retiring.includes(store),
        state: !standing.up ? 'down' : standing.behind ? 'behind' : 'up',
        probeMillis: null,
        rows: null,
        error: null,
      }
      try {
        report.probeMillis = Math.round((await store.probeMillis()) * 100) / 100
        if (clock !== null) report.rows = await store.background(rowCounts(table), clock.now())
        else await store.background(tableRead(table), undefined)
      } catch (error) {
        report.error = describeError(error)
      }
      return report
    }),
  )
}

/** A one-line cause; "apply the schema" when the table is missing. */
export function describeError(error: unknown): string {
  if (!(error instanceof Error)) return String(error)
  if ((error as { code?: unknown }).code === 'ER_NO_SUCH_TABLE') {
    return 'the session table is missing: apply the schema (session-shards schema apply)'
  }
  // A connection refused on every address of a host comes as an AggregateError without a message.
  const summary = (errorSummary(error).split('\n', 1)[0] ?? '').trim()
  const code = (error as { code?: unknown }).code
  return summary !== '' ? summary : typeof code === 'string' ? code : error.name
}
