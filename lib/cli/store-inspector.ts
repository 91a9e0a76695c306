import { performance } from 'node:perf_hooks'
import mysql from 'mysql2/promise'
import type { Pool, RowDataPacket } from 'mysql2/promise'
import { errorSummary } from '../errors.js'
import type { ResolvedOptions, ResolvedStore } from '../options.js'
import { allStores } from './config.js'

/** Row counts of one store's session table. */
export interface RowCounts {
  /** Live copies not yet expired. */
  live: number
  /** Copies past their expiry, waiting for a sweep. */
  expired: number
  /** Destroyed sessions' marks. */
  tombstones: number
}

/** One copy of a session as a store holds it; the data itself is never read. */
export interface CopyOnStore {
  version: number
  expiresAt: string
  deleted: boolean
  /** Size of the encoded data; null for a tombstone. */
  dataBytes: number | null
  /** The per-session timeout, null for the manager's default. */
  ttlSeconds: number | null
}

/** A store's answer, or why there is none (a one-line summary, never a connection string). */
export type StoreAnswer<T> = { ok: true; value: T } | { ok: false; error: string }

/**
 * Read-only statements on each store over its own connections, for what the session manager
 * has no public call for: a timed probe, row counts and every copy of one session. It knows the
 * table layout of schema.ts; it never writes.
 */
export class StoreInspector {
  readonly #table: string
  readonly #timeoutMillis: number
  readonly #pools = new Map<string, Pool>()
  readonly #stores: readonly ResolvedStore[]

  constructor(options: ResolvedOptions) {
    this.#table = `\`${options.table}\``
    this.#timeoutMillis = options.queryTimeoutMillis
    this.#stores = allStores(options)
    for (const store of this.#stores) {
      this.#pools.set(
        store.id,
        mysql.createPool({
          ...store.poolOptions,
          connectionLimit: 1,
          maxIdle: 1,
          connectTimeout: options.connectTimeoutMillis,
          supportBigNumbers: true,
        }),
      )
    }
  }

  /** The configured stores in order, then those only in `previousStores`. */
  get stores(): readonly ResolvedStore[] {
    return this.#stores
  }

  /** Connects, then times one `SELECT 1` round trip. */
  async probe(storeId: string): Promise<StoreAnswer<{ millis: number }>> {
    return this.#answer(async () => {
      const pool = this.#pool(storeId)
      await pool.query({ sql: 'SELECT 1', timeout: this.#timeoutMillis })
      const started = performance.now()
      await pool.query({ sql: 'SELECT 1', timeout: this.#timeoutMillis })
      return { millis: performance.now() - started }
    })
  }

  /** Live, expired and tombstone rows (a full scan of the table). */
  async rowCounts(storeId: string): Promise<StoreAnswer<RowCounts>> {
    return this.#answer(async () => {
      const [rows] = await this.#pool(storeId).query<RowDataPacket[]>({
        sql:
          'SELECT COUNT(*) AS total, COALESCE(SUM(deleted = 1), 0) AS tombstones, ' +
          `COALESCE(SUM(deleted = 0 AND expires_at <= ?), 0) AS expired FROM ${this.#table}`,
        values: [Date.now()],
        timeout: Math.max(this.#timeoutMillis, 60_000),
      })
      const row = rows[0]
      const total = Number(row?.total ?? 0)
      const tombstones = Number(row?.tombstones ?? 0)
      const expired = Number(row?.expired ?? 0)
      return { live: total - tombstones - expired, expired, tombstones }
    })
  }

  /** Rows a sweep would delete now (through the expiry index). */
  async expiredRows(storeId: string): Promise<StoreAnswer<number>> {
    return this.#answer(async () => {
      const [rows] = await this.#pool(storeId).query<RowDataPacket[]>({
        sql: `SELECT COUNT(*) AS expired FROM ${this.#table} WHERE expires_at < ?`,
        values: [Date.now()],
        timeout: Math.max(this.#timeoutMillis, 60_000),
      })
      return Number(rows[0]?.expired ?? 0)
    })
  }

  /** The store's copy of `sessionId`, or null when it holds no row. */
  async copy(storeId: string, sessionId: string): Promise<StoreAnswer<CopyOnStore | null>> {
    return this.#answer(async () => {
      const [rows] = await this.#pool(storeId).query<RowDataPacket[]>({
        sql:
          'SELECT version, expires_at, deleted, OCTET_LENGTH(data) AS bytes, ttl_seconds ' +
          `FROM ${this.#table} WHERE id = ?`,
        values: [sessionId],
        timeout: this.#timeoutMillis,
      })
      const row = rows[0]
      if (row === undefined) return null
      return {
        version: Number(row.version),
        expiresAt: new Date(Number(row.expires_at)).toISOString(),
        deleted: Number(row.deleted) === 1,
        dataBytes: row.bytes === null ? null : Number(row.bytes),
        ttlSeconds: row.ttl_seconds === null ? null : Number(row.ttl_seconds),
      }
    })
  }

  /** Ends every connection. */
  async close(): Promise<void> {
    await Promise.allSettled([...this.#pools.values()].map((pool) => pool.end()))
  }

  #pool(storeId: string): Pool {
    const pool = this.#pools.get(storeId)
    if (pool === undefined) throw new Error(`no store "${storeId}" in the configuration`)
    return pool
  }

  async #answer<T>(question: () => Promise<T>): Promise<StoreAnswer<T>> {
    try {
      return { ok: true, value: await question() }
    } catch (error) {
      return { ok: false, error: describeStoreError(error) }
    }
  }
}

/** A one-line cause for a store error; "run schema apply" when the table is missing. */
export function describeStoreError(error: unknown): string {
  if (!(error instanceof Error)) return String(error)
  if ((error as { code?: unknown }).code === 'ER_NO_SUCH_TABLE') {
    return 'the session table is missing: run `session-shards schema apply`'
  }
  // A connection refused on every address of a host comes as an AggregateError without a message.
  const summary = (errorSummary(error).split('\n', 1)[0] ?? '').trim()
  const code = (error as { code?: unknown }).code
  return summary !== '' ? summary : typeof code === 'string' ? code : error.name
}
