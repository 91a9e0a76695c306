import { inspect } from 'node:util'
import mysql from 'mysql2'
import type { Pool, PoolConnection, ResultSetHeader, RowDataPacket } from 'mysql2'
import { DeadlineTracker } from './deadlines.js'
import { StatementBatcher } from './statement-batcher.js'
import { Circuit } from './circuit.js'
import { debug } from './debug.js'
import { errorSummary, StoreDownError, StoreTimeoutError } from './errors.js'
import { LatencyWindow } from './latency.js'
import type { ResolvedOptions, ResolvedStore } from './options.js'
import { isUnreachableError, withTransientRetry } from './retry.js'
import { schemaStatements } from './schema.js'
import type { Statements } from './statements.js'
import {
  readManySql,
  storedVersion,
  versionsSql,
  withLimit,
  writeManySql,
  WRITE_HIT_TOMBSTONE,
} from './statements.js'

/** One copy of a session as a store holds it. */
export interface StoredCopy {
  version: number
  expiresAtMillis: number
  deleted: boolean
  data: Buffer | null
  /** The per-session timeout set by `setTimeout`, or null for the manager's default. */
  ttlSeconds: number | null
}

/** What a write stores besides the data. */
export interface WriteFields {
  version: number
  expiresAtMillis: number
  /** The expiry is the caller's own (a per-call TTL), not derived from a stored timeout. */
  explicitExpiry: boolean
  /** A new per-session timeout to store; null keeps the stored one. */
  ttlSeconds: number | null
  owner: string | null
  /**
   * For a compare-and-set: apply only if the stored version is exactly this (0: only if there
   * is no row). Undefined for a plain write, which applies if the stored version is below
   * `version`.
   */
  expectedVersion: number | undefined
  /**
   * The operation's time: a stored per-session timeout runs from it. One reading for every
   * copy, so that the copies agree on the expiry.
   */
  now: number
}

/** A plain write waiting for a batch. */
interface QueuedWrite {
  sessionId: string
  data: Buffer
  fields: WriteFields
}

type WriteBatcher = StatementBatcher<QueuedWrite, WriteOutcome>

/** One row of a key-order listing. */
export interface ListedRow {
  id: string
  deleted: boolean
  expiresAtMillis: number
  /** 0 from the owner index. */
  version: number
  data: Buffer | null
}

/** What a write found on one store. */
export type WriteOutcome =
  | { kind: 'written' }
  | { kind: 'tombstone' }
  /** The stored version is not below the write's bound; nothing was written. */
  | { kind: 'outdated'; storedVersion: number }

/** Counters of one store, as {@link SessionManager.stats} reports them. */
export interface StoreCounters {
  operations: number
  errors: number
}

/** Called when a failure opens a store's circuit. */
export type CircuitListener = (pool: StorePool, error: Error) => void

/**
 * One MySQL store: its connection pool, the statements run on it, their deadline and
 * retries, and the store's circuit. Placement and failover live in the session manager;
 * this class only talks to one store.
 */
export class StorePool {
  readonly id: string
  readonly counters: StoreCounters = { operations: 0, errors: 0 }
  readonly circuit: Circuit
  readonly latency = new LatencyWindow()
  readonly #pool: Pool
  readonly #statements: Statements
  readonly #timeoutMillis: number
  readonly #retries: number
  readonly #table: string
  readonly #defaultTtlSeconds: number
  readonly #onOpen: CircuitListener
  readonly #deadlines: DeadlineTracker
  /** Coalesce concurrent reads and plain writes, unless the `batching` option is off. */
  readonly #reads: StatementBatcher<string, StoredCopy | null> | null
  /** Plain writes, by explicitExpiry (0: false, 1: true), which the batch statement shares. */
  readonly #writes: [WriteBatcher, WriteBatcher] | null

  constructor(
    store: ResolvedStore,
    options: ResolvedOptions,
    statements: Statements,
    onOpen: CircuitListener,
  ) {
    this.id = store.id
    this.#statements = statements
    this.#timeoutMillis = options.queryTimeoutMillis
    this.#retries = options.transientRetries
    this.#table = options.table
    this.#defaultTtlSeconds = options.ttlSeconds
    this.#onOpen = onOpen
    this.circuit = new Circuit(options.failThreshold)
    this.#deadlines = new DeadlineTracker(
      Math.max(5, Math.min(100, options.queryTimeoutMillis / 10)),
    )
    const limits = {
      timeoutMillis: options.queryTimeoutMillis,
      maxInFlight: 4,
      maxBatch: 100,
      maxBatchBytes: 4 * 1024 * 1024,
    }
    this.#reads = options.batching
      ? new StatementBatcher(
          store.id,
          {
            one: (id) => this.#readOne(id),
            many: async (ids) => {
              const found = await this.readMany([...new Set(ids)])
              return ids.map((id) => found.get(id) ?? null)
            },
            available: () => this.circuit.state === 'up',
          },
          this.#deadlines,
          limits,
        )
      : null
    const writeBatcher = (): WriteBatcher =>
      new StatementBatcher(
        store.id,
        {
          one: ({ sessionId, data, fields }) => this.#writeOne(sessionId, data, fields),
          many: (items) => this.#writeMany(items),
          size: ({ sessionId, data }) => data.length + sessionId.length + 64,
          available: () => this.circuit.state === 'up',
        },
        this.#deadlines,
        limits,
      )
    this.#writes = options.batching ? [writeBatcher(), writeBatcher()] : null
    this.#pool = mysql.createPool({
      connectionLimit: options.connectionsPerStore,
      maxIdle: options.connectionsPerStore,
      connectTimeout: options.connectTimeoutMillis,
      enableKeepAlive: true,
      supportBigNumbers: true,
      // mysql2 captures a stack trace on every call by default; that costs more per statement
      // than everything else the library does. Pass trace: true in the store options to debug.
      trace: false,
      ...store.poolOptions,
    })
  }

  /** The copy stored for `sessionId`, or null when the store has no row. */
  read(sessionId: string): Promise<StoredCopy | null> {
    return this.#reads === null ? this.#readOne(sessionId) : this.#reads.submit(sessionId)
  }

  async #readOne(sessionId: string): Promise<StoredCopy | null> {
    const rows = await this.#run<RowDataPacket[]>(this.#statements.read, [sessionId])
    return rows[0] === undefined ? null : toCopy(rows[0])
  }

  /** The copies stored for several sessions, by id (absent ids have no row). */
  async readMany(sessionIds: readonly string[]): Promise<Map<string, StoredCopy>> {
    const copies = new Map<string, StoredCopy>()
    if (sessionIds.length === 0) return copies
    const sql = readManySql(this.#statements, sessionIds.length)
    const rows = await this.#run<RowDataPacket[]>(sql, [...sessionIds])
    for (const row of rows) {
      const copy = toCopy(row)
      if (copy !== null) copies.set(String(row.id), copy)
    }
    return copies
  }

  /** Upserts a live copy unless the store holds a tombstone or a version at least as high. */
  write(sessionId: string, data: Buffer, fields: WriteFields): Promise<WriteOutcome> {
    // Compare-and-set writes are never batched.
    if (this.#writes === null || fields.expectedVersion !== undefined) {
      return this.#writeOne(sessionId, data, fields)
    }
    return this.#writes[fields.explicitExpiry ? 1 : 0].submit({ sessionId, data, fields })
  }

  async #writeOne(sessionId: string, data: Buffer, fields: WriteFields): Promise<WriteOutcome> {
    const result = await this.#run<ResultSetHeader>(
      this.#statements.write,
      writeParameters(sessionId, data, fields),
    )
    if (result.insertId === 0) return { kind: 'written' }
    if (result.insertId === WRITE_HIT_TOMBSTONE) return { kind: 'tombstone' }
    return { kind: 'outdated', storedVersion: storedVersion(result.insertId) ?? 0 }
  }

  /** One multi-row upsert, then one read of what it left, for the outcome of each write. */
  async #writeMany(queued: readonly QueuedWrite[]): Promise<WriteOutcome[]> {
    // Rows in id order (then version order), so that concurrent batches lock rows in one
    // order and cannot deadlock, and two writes of one session apply oldest first.
    const items = [...queued].sort((a, b) =>
      a.sessionId < b.sessionId
        ? -1
        : a.sessionId > b.sessionId
          ? 1
          : a.fields.version - b.fields.version,
    )
    const explicit = (items[0] as QueuedWrite).fields.explicitExpiry ? 1 : 0
    const values = items.flatMap(({ sessionId, data, fields }) =>
      rowValues(sessionId, data, fields),
    )
    const ids = [...new Set(items.map((item) => item.sessionId))]
    // One transaction: the rows stay locked from the upsert to the read of what it left, so
    // the read tells exactly which writes applied (a write landing in between would make an
    // applied write look outdated, and an outdated one look applied).
    const rows = await this.#onConnection(async (connection) => {
      await send(connection, 'query', 'START TRANSACTION', [])
      await send(connection, 'execute', writeManySql(this.#table, items.length), [
        ...values,
        explicit,
        this.#defaultTtlSeconds,
      ])
      const read = await send<RowDataPacket[]>(
        connection,
        'execute',
        versionsSql(this.#table, ids.length),
        ids,
      )
      await send(connection, 'query', 'COMMIT', [])
      return read
    })
    const stored = new Map(rows.map((row) => [String(row.id), row]))
    // Of several writes of one session in the batch, the newest one's version is what a
    // successful batch leaves; the others applied before it or lost to it, in the same batch.
    const newestInBatch = new Map<string, number>()
    for (const { sessionId, fields } of items) newestInBatch.set(sessionId, fields.version)
    const outcomes = new Map<QueuedWrite, WriteOutcome>()
    for (const item of items) {
      const row = stored.get(item.sessionId)
      let outcome: WriteOutcome
      if (row === undefined || row.deleted === 1) {
        outcome = row === undefined ? { kind: 'written' } : { kind: 'tombstone' }
      } else {
        const version = storedVersion(row.version) ?? 0
        outcome =
          version === newestInBatch.get(item.sessionId)
            ? { kind: 'written' }
            : { kind: 'outdated', storedVersion: version }
      }
      outcomes.set(item, outcome)
    }
    return queued.map((item) => outcomes.get(item) as WriteOutcome)
  }

  /** Replaces the copy (if any) with a tombstone. */
  async destroy(sessionId: string, version: number, expiresAtMillis: number): Promise<void> {
    await this.#run(this.#statements.destroy, [sessionId, version, expiresAtMillis])
  }

  /** Stores `copy` (a live copy read elsewhere) unless this store's row is a tombstone or newer. */
  async copy(sessionId: string, copy: StoredCopy): Promise<void> {
    await this.#run(this.#statements.copy, [
      sessionId,
      copy.version,
      copy.expiresAtMillis,
      copy.data,
      null,
      copy.ttlSeconds,
    ])
  }

  /**
   * Extends a live copy's expiry to `expiresAtMillis` (null: now + its per-session timeout, or
   * `defaultTtlSeconds`); never shortens it, never touches a missing, expired or destroyed
   * session. Resolves whether a copy was there.
   */
  async touch(
    sessionId: string,
    expiresAtMillis: number | null,
    defaultTtlSeconds: number,
    now: number,
  ): Promise<boolean> {
    const result = await this.#run<ResultSetHeader>(this.#statements.touch, [
      expiresAtMillis,
      now,
      defaultTtlSeconds,
      sessionId,
      now,
    ])
    return result.affectedRows > 0
  }

  /**
   * Sets a live copy's per-session timeout and its expiry to `now` + the timeout; resolves
   * whether a copy was there.
   */
  async setTimeout(sessionId: string, ttlSeconds: number, now: number): Promise<boolean> {
    const result = await this.#run<ResultSetHeader>(this.#statements.setTimeout, [
      ttlSeconds,
      now + ttlSeconds * 1000,
      sessionId,
      now,
    ])
    return result.affectedRows > 0
  }

  /** Deletes up to `limit` expired rows (copies and tombstones), oldest first; resolves how many. */
  async sweepExpired(limit: number): Promise<number> {
    const sql = withLimit(this.#statements.sweepPrefix, limit)
    const result = await this.#run<ResultSetHeader>(sql, [Date.now()])
    return result.affectedRows
  }

  /** Deletes a live copy whose version is at most `version`. */
  async removeCopy(sessionId: string, version: number): Promise<void> {
    await this.#run(this.#statements.removeCopy, [sessionId, version])
  }

  /** Deletes a tombstone. */
  async clearTombstone(sessionId: string): Promise<void> {
    await this.#run(this.#statements.clearTombstone, [sessionId])
  }

  /** Up to `limit` session ids after `afterId`, in key order: one page of a full scan. */
  async scanIds(afterId: string, limit: number): Promise<string[]> {
    const rows = await this.#run<RowDataPacket[]>(withLimit(this.#statements.scanPrefix, limit), [
      afterId,
    ])
    return rows.map((row) => String(row.id))
  }

  /**
   * Up to `limit` rows after `afterId` in key order: id, tombstone flag and expiry, and with
   * `withData` the version and data too.
   */
  async listPage(afterId: string, limit: number, withData = false): Promise<ListedRow[]> {
    const prefix = withData ? this.#statements.listDataPrefix : this.#statements.listPrefix
    const rows = await this.#run<RowDataPacket[]>(withLimit(prefix, limit), [afterId])
    return rows.flatMap((row) => {
      const version = storedVersion(row.version)
      const deleted = row.deleted === 1
      // A live copy with a version the library cannot have minted is not a copy (see toCopy).
      if (version === null && !deleted) return []
      return [
        {
          id: String(row.id),
          deleted,
          expiresAtMillis: Number(row.expires_at),
          version: version ?? 0,
          data: withData ? (row.data as Buffer | null) : null,
        },
      ]
    })
  }

  /** Ids of rows whose owner column is `owner` (through the owner index). */
  async idsByOwner(owner: string): Promise<ListedRow[]> {
    const rows = await this.#run<RowDataPacket[]>(this.#statements.byOwner, [owner])
    return rows.map((row) => ({
      id: String(row.id),
      deleted: row.deleted === 1,
      expiresAtMillis: Number(row.expires_at),
      version: 0,
      data: null,
    }))
  }

  /** Takes or renews the lease lock of `sessionId` with `token`; false if another lease holds it. */
  async lock(sessionId: string, token: string, expiresAtMillis: number): Promise<boolean> {
    const result = await this.#run<ResultSetHeader>(this.#statements.lock, [
      sessionId,
      token,
      expiresAtMillis,
      Date.now(),
    ])
    return result.insertId !== 2
  }

  /** Releases the lease lock of `sessionId` if `token` still holds it. */
  async unlock(sessionId: string, token: string): Promise<void> {
    await this.#run(this.#statements.unlock, [sessionId, token])
  }

  /** Records that `targetStoreId` missed a write of `sessionId` (kept on this store). */
  async addHint(targetStoreId: string, sessionId: string): Promise<void> {
    await this.#run(this.#statements.insertHint, [targetStoreId, sessionId, Date.now()])
  }

  /** Up to `limit` ids hinted for `targetStoreId` after `afterId`. */
  async hintedIds(targetStoreId: string, afterId: string, limit: number): Promise<string[]> {
    const sql = withLimit(this.#statements.hintsPrefix, limit)
    const rows = await this.#run<RowDataPacket[]>(sql, [targetStoreId, afterId])
    return rows.map((row) => String(row.id))
  }

  /** Forgets a hint once replayed. */
  async deleteHint(targetStoreId: string, sessionId: string): Promise<void> {
    await this.#run(this.#statements.deleteHint, [targetStoreId, sessionId])
  }

  /** Ids of the stores that have hints kept on this store. */
  async hintTargets(): Promise<string[]> {
    const rows = await this.#run<RowDataPacket[]>(
      this.#statements.hintTargets,
      [],
      'execute',
      false,
    )
    return rows.map((row) => String(row.target_store))
  }

  /** Probes the store; resolves to its uptime in seconds. Neither counted nor fed to the circuit. */
  async probe(): Promise<number> {
    const rows = await this.#run<RowDataPacket[]>(this.#statements.probe, [], 'query', false)
    return Number(rows[0]?.Value ?? 0)
  }

  /**
   * Creates the session tables if they are missing. Administration, not a request: it is sent
   * even while requests skip the store, neither counted nor fed to the circuit.
   */
  async applySchema(): Promise<void> {
    for (const statement of schemaStatements(this.#table)) {
      await this.#run(statement, [], 'query', false)
    }
  }

  /** Ends every connection; statements in flight finish first. */
  close(): Promise<void> {
    return new Promise((resolve) => this.#pool.end(() => resolve()))
  }

  /** Runs one statement (see {@link #onConnection}). */
  #run<T>(
    sql: string,
    values: unknown[],
    method: 'execute' | 'query' = 'execute',
    isRequest = true,
  ): Promise<T> {
    return this.#onConnection((connection) => send<T>(connection, method, sql, values), {
      isRequest,
      singleStatement: true,
    })
  }

  /**
   * Runs `work` on one pooled connection under one deadline that covers waiting for the
   * connection and every retry, so a hung store costs a caller at most `queryTimeoutMillis`.
   * A connection whose work passed the deadline or failed part way is destroyed rather than
   * returned to the pool (the server then rolls back whatever it left open).
   */
  async #onConnection<T>(
    work: (connection: PoolConnection) => Promise<T>,
    { isRequest = true, singleStatement = false } = {},
  ): Promise<T> {
    // A request never goes to a store whose circuit is open, even one that chose this store
    // before the circuit opened: it fails over at once instead of paying a timeout.
    if (isRequest && this.circuit.state === 'down') throw new StoreDownError(this.id)
    if (isRequest) this.counters.operations++
    const started = performance.now()
    let expired = false
    let current: PoolConnection | undefined
    const attempt = (): Promise<T> =>
      new Promise<T>((resolve, reject) => {
        this.#pool.getConnection((connectError, connection) => {
          if (connectError) return reject(connectError)
          if (expired) {
            connection.release()
            return reject(new StoreTimeoutError(this.id, this.#timeoutMillis))
          }
          current = connection
          work(connection).then(
            (result) => {
              current = undefined
              if (expired) return connection.destroy()
              connection.release()
              resolve(result)
            },
            (error: unknown) => {
              current = undefined
              if (expired) return connection.destroy()
              // An SQL error leaves a single statement's connection clean; a broken connection
              // or unfinished multi-statement work does not.
              if (isUnreachableError(error) || !singleStatement) connection.destroy()
              else connection.release()
              reject(error)
            },
          )
        })
      })
    try {
      const result = await new Promise<T>((resolve, reject) => {
        const pending = {
          deadline: started + this.#timeoutMillis,
          expire: () => {
            expired = true
            current?.destroy()
            reject(new StoreTimeoutError(this.id, this.#timeoutMillis))
          },
        }
        this.#deadlines.add(pending)
        withTransientRetry(attempt, this.#retries).then(
          (value) => {
            this.#deadlines.delete(pending)
            resolve(value)
          },
          (error: unknown) => {
            this.#deadlines.delete(pending)
            reject(error)
          },
        )
      })
      this.latency.record(performance.now() - started)
      if (isRequest) this.circuit.succeeded()
      return result
    } catch (error) {
      debug('store %s: %s', this.id, errorSummary(error as Error))
      if (isRequest) {
        this.counters.errors++
        if (!isUnreachableError(error)) this.circuit.succeeded()
        else if (this.circuit.failed()) this.#onOpen(this, error as Error)
      }
      throw error
    }
  }

  [inspect.custom](): string {
    return `StorePool { id: '${this.id}', state: '${this.circuit.state}' }`
  }
}

/** Sends one statement on a connection. */
function send<T>(
  connection: PoolConnection,
  method: 'execute' | 'query',
  sql: string,
  values: unknown[],
): Promise<T> {
  return new Promise((resolve, reject) => {
    const done = (error: Error | null, result: unknown): void =>
      error ? reject(error) : resolve(result as T)
    if (method === 'execute') connection.execute(sql, values as never, done)
    else connection.query(sql, values, done)
  })
}

/** The values of one row of a write: id, version, expires_at, data, owner, ttl_seconds. */
function rowValues(sessionId: string, data: Buffer, fields: WriteFields): unknown[] {
  return [sessionId, fields.version, fields.expiresAtMillis, data, fields.owner, fields.ttlSeconds]
}

/** The parameters of {@link Statements.write}, in the order its text uses them. */
export function writeParameters(sessionId: string, data: Buffer, fields: WriteFields): unknown[] {
  const expected = fields.expectedVersion
  // The stored versions the write applies over: [from, below).
  const from = expected ?? 0
  const below = expected === undefined ? fields.version : expected + 1
  return [
    ...rowValues(sessionId, data, fields),
    from,
    below,
    from,
    below,
    from,
    below,
    fields.ttlSeconds,
    from,
    below,
    fields.explicitExpiry ? 1 : 0,
    fields.now,
    from,
    below,
  ]
}

/**
 * A row as a copy, or null for a live row whose version the library cannot have minted (a
 * broken or hostile peer wrote it): such a row is no copy of the session, and every write
 * replaces it. A tombstone stays a tombstone whatever its version.
 */
function toCopy(row: RowDataPacket): StoredCopy | null {
  const version = storedVersion(row.version)
  const deleted = row.deleted === 1
  if (version === null && !deleted) {
    debug('a copy with a version outside the library range is ignored')
    return null
  }
  return {
    version: version ?? 0,
    expiresAtMillis: Number(row.expires_at),
    deleted,
    data: row.data as Buffer | null,
    ttlSeconds: row.ttl_seconds === null ? null : Number(row.ttl_seconds),
  }
}
