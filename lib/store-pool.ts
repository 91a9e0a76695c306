import { inspect } from 'node:util'
import mysql from 'mysql2/promise'
import type { Pool, ResultSetHeader, RowDataPacket } from 'mysql2/promise'
import { StoreTimeoutError } from './errors.js'
import type { ResolvedOptions, ResolvedStore } from './options.js'
import { schemaStatements } from './schema.js'
import type { Statements } from './statements.js'
import { WRITE_HIT_TOMBSTONE } from './statements.js'
import { debug } from './debug.js'

/** One copy of a session as a store holds it. */
export interface StoredCopy {
  version: number
  expiresAtMillis: number
  deleted: boolean
  data: Buffer | null
}

/** What a write found on one store. */
export type WriteOutcome = { kind: 'written'; version: number } | { kind: 'tombstone' }

/** Counters of one store, as {@link SessionManager.stats} reports them. */
export interface StoreCounters {
  operations: number
  errors: number
}

/**
 * One MySQL store: its connection pool, the statements run on it and their deadline.
 * Placement and failover live in the session manager; this class only talks to one store.
 */
export class StorePool {
  readonly id: string
  readonly counters: StoreCounters = { operations: 0, errors: 0 }
  readonly #pool: Pool
  readonly #statements: Statements
  readonly #timeoutMillis: number
  readonly #table: string

  constructor(store: ResolvedStore, options: ResolvedOptions, statements: Statements) {
    this.id = store.id
    this.#statements = statements
    this.#timeoutMillis = options.queryTimeoutMillis
    this.#table = options.table
    this.#pool = mysql.createPool({
      connectionLimit: options.connectionsPerStore,
      maxIdle: options.connectionsPerStore,
      connectTimeout: options.connectTimeoutMillis,
      enableKeepAlive: true,
      supportBigNumbers: true,
      ...store.poolOptions,
    })
  }

  /** The copy stored for `sessionId`, or null when the store has no row. */
  async read(sessionId: string): Promise<StoredCopy | null> {
    const rows = await this.#run<RowDataPacket[]>(this.#statements.read, [sessionId])
    const row = rows[0]
    if (row === undefined) return null
    return {
      version: Number(row.version),
      expiresAtMillis: Number(row.expires_at),
      deleted: row.deleted === 1,
      data: row.data as Buffer | null,
    }
  }

  /** Upserts a live copy unless the store holds a tombstone for the id. */
  async write(
    sessionId: string,
    version: number,
    expiresAtMillis: number,
    data: Buffer,
    owner: string | null,
  ): Promise<WriteOutcome> {
    const result = await this.#run<ResultSetHeader>(this.#statements.write, [
      sessionId,
      version,
      expiresAtMillis,
      data,
      owner,
    ])
    if (result.insertId === WRITE_HIT_TOMBSTONE) return { kind: 'tombstone' }
    return { kind: 'written', version: result.insertId === 0 ? version : Number(result.insertId) }
  }

  /** Replaces the copy (if any) with a tombstone. */
  async destroy(sessionId: string, version: number, expiresAtMillis: number): Promise<void> {
    await this.#run(this.#statements.destroy, [sessionId, version, expiresAtMillis])
  }

  /** Raises the version of the copy written with `writtenVersion` (and not changed since) to `version`. */
  async alignVersion(sessionId: string, writtenVersion: number, version: number): Promise<void> {
    await this.#run(this.#statements.alignVersion, [version, sessionId, writtenVersion])
  }

  /** Creates the session table if it is missing. */
  async applySchema(): Promise<void> {
    for (const statement of schemaStatements(this.#table)) await this.#run(statement, [], 'query')
  }

  /** Ends every connection; statements in flight finish first. */
  async close(): Promise<void> {
    await this.#pool.end()
  }

  async #run<T>(
    sql: string,
    values: unknown[],
    method: 'execute' | 'query' = 'execute',
  ): Promise<T> {
    this.counters.operations++
    let timer: NodeJS.Timeout | undefined
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new StoreTimeoutError(this.id, this.#timeoutMillis)),
        this.#timeoutMillis,
      )
    })
    // mysql2's own timeout destroys the connection of a statement that ran too long; the
    // deadline also covers waiting for a connection, which mysql2 does not time.
    const query = { sql, timeout: this.#timeoutMillis }
    const statement =
      method === 'execute'
        ? this.#pool.execute<RowDataPacket[]>(query, values as never)
        : this.#pool.query<RowDataPacket[]>(query, values)
    statement.catch(() => {}) // settled through the race below; silence late rejections
    try {
      const [result] = await Promise.race([statement, deadline])
      return result as unknown as T
    } catch (error) {
      this.counters.errors++
      debug('store %s: %s', this.id, (error as Error).message)
      throw error
    } finally {
      clearTimeout(timer)
    }
  }

  [inspect.custom](): string {
    return `StorePool { id: '${this.id}' }`
  }
}
