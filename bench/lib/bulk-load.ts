/** Many sessions written straight into the stores' tables, for benchmarks that need millions. */
import { performance } from 'node:perf_hooks'
import type { Pool, RowDataPacket } from 'mysql2/promise'
import { generateSessionId, jsonCodec } from '../../lib/index.js'
import type { Progress } from './progress.js'
import { sessionData } from './session-data.js'

/** Options of {@link bulkLoadSessions}. */
export interface BulkLoadOptions {
  /** The session's store order (a manager's `locate`). */
  locate(sessionId: string): readonly string[]
  /** A raw pool per store id. */
  rawPools: ReadonlyMap<string, Pool>
  table: string
  /** Sessions to insert. */
  count: number
  /** Copies of each, on the first stores of its order. */
  copies: number
  rowsPerInsert: number
  /** Every row's expiry, in milliseconds since the epoch (in the past for expired sessions). */
  expiresAtMillis: number
  progress: Progress
}

/**
 * Inserts `count` sessions with multi-row INSERTs of `rowsPerInsert` rows: each onto the first
 * `copies` stores of its order, with the columns and values a write through the library stores
 * (JSON data, a microsecond version, an expiry in milliseconds, no owner, no own timeout). Ids
 * are sorted first so each store's table grows at its end: random order into the stores' 32 MB
 * buffer pools would make the load the long part of a run. (A table filled in key order has
 * fuller pages than one grown at random, so scans read somewhat fewer pages than they would in
 * production.) Resolves the rows written and how long it took.
 */
export async function bulkLoadSessions(
  options: BulkLoadOptions,
): Promise<{ rows: number; seconds: number }> {
  const { rawPools, count, copies, progress } = options
  progress.update(`generating ${count.toLocaleString('en-US')} session ids`)
  const started = performance.now()
  const ids = Array.from({ length: count }, () => generateSessionId()).sort()
  const insert =
    `INSERT INTO \`${options.table}\` (id, version, expires_at, deleted, data, owner, ttl_seconds) ` +
    'VALUES ?'
  const batches = new Map<string, unknown[][]>([...rawPools.keys()].map((id) => [id, []]))
  const pending = new Map<string, Promise<void>>(
    [...rawPools.keys()].map((id) => [id, Promise.resolve()]),
  )
  let failure: { error: unknown } | undefined
  let rowsWritten = 0
  // One INSERT in flight per store, the stores in parallel; the next batch is built meanwhile.
  const flush = async (storeId: string): Promise<void> => {
    const rows = batches.get(storeId)!
    if (rows.length === 0) return
    batches.set(storeId, [])
    await pending.get(storeId)
    if (failure !== undefined) throw failure.error
    pending.set(
      storeId,
      rawPools
        .get(storeId)!
        .query(insert, [rows])
        .then(
          () => {
            rowsWritten += rows.length
          },
          (error: unknown) => {
            failure ??= { error }
          },
        ),
    )
  }
  const firstVersion = Date.now() * 1000
  for (const [index, id] of ids.entries()) {
    const encoded = jsonCodec.encode(sessionData(index))
    const row = [
      id,
      firstVersion + index,
      options.expiresAtMillis,
      0,
      typeof encoded === 'string' ? Buffer.from(encoded, 'utf8') : encoded,
      null,
      null,
    ]
    for (const storeId of options.locate(id).slice(0, copies)) {
      const batch = batches.get(storeId)!
      batch.push(row)
      if (batch.length >= options.rowsPerInsert) {
        await flush(storeId)
        progress.update(
          `loading ${count.toLocaleString('en-US')} sessions: ` +
            `${Math.round((index / count) * 100)} % (${rowsWritten.toLocaleString('en-US')} rows)`,
        )
      }
    }
  }
  for (const storeId of batches.keys()) await flush(storeId)
  await Promise.all(pending.values())
  if (failure !== undefined) throw failure.error
  if (rowsWritten !== count * copies) {
    throw new Error(`The bulk load wrote ${rowsWritten} rows, not ${count * copies}.`)
  }
  return { rows: rowsWritten, seconds: (performance.now() - started) / 1000 }
}

/**
 * Waits until the stores have written back the pages a load dirtied, so that what is measured
 * next does not share the CPUs and disk with that: until no store's count of dirty pages has
 * fallen for 2 s (InnoDB leaves a few dirty pages when idle), at most `maxMillis`.
 */
export async function settleStores(
  rawPools: ReadonlyMap<string, Pool>,
  maxMillis: number,
): Promise<void> {
  const deadline = performance.now() + maxMillis
  let lowest: number[] = []
  let lastFall = performance.now()
  for (;;) {
    const dirty = await Promise.all(
      [...rawPools.values()].map(async (pool) => {
        const [rows] = await pool.query<RowDataPacket[]>(
          "SHOW GLOBAL STATUS LIKE 'Innodb_buffer_pool_pages_dirty'",
        )
        return Number(rows[0]?.Value ?? 0)
      }),
    )
    const now = performance.now()
    if (dirty.some((pages, index) => pages < (lowest[index] ?? Infinity))) lastFall = now
    lowest = dirty.map((pages, index) => Math.min(pages, lowest[index] ?? Infinity))
    if (now - lastFall >= 2000 || now > deadline) return
    await new Promise((resolve) => setTimeout(resolve, 250))
  }
}
