/** One store's connections: statements sent under one deadline each, transient errors retried. */
import mysql from 'mysql2'
import type { Pool, PoolConnection } from 'mysql2'
import { debug } from '../debug.js'
import { errorSummary, StoreTimeoutError } from '../errors.js'
import type { ResolvedOptions } from '../options.js'
import type { ResolvedStore } from '../store-options.js'
import { DeadlineTracker } from './deadlines.js'
import { isUnreachableError, withTransientRetry } from './retry.js'
import type { Statement } from './statements.js'

/** How a statement travels: prepared (`execute`, the default) or as text (`query`, for DDL). */
export type Protocol = 'execute' | 'query'

/**
 * The connection pool of one store. Every call runs under one deadline that covers waiting for
 * a connection and every retry, so a hung store costs a caller at most `queryTimeoutMillis`;
 * a connection whose work passed the deadline, or broke part way, is destroyed rather than
 * returned to the pool (the server then rolls back whatever it left open).
 */
export class StoreConnection {
  readonly #id: string
  readonly #pool: Pool
  readonly #timeoutMillis: number
  readonly #retries: number
  readonly #deadlines: DeadlineTracker

  constructor(store: ResolvedStore, options: ResolvedOptions) {
    this.#id = store.id
    this.#timeoutMillis = options.queryTimeoutMillis
    this.#retries = options.transientRetries
    this.#deadlines = new DeadlineTracker(
      Math.max(5, Math.min(100, options.queryTimeoutMillis / 10)),
    )
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

  /** The deadline tracker, shared with the store's batchers (one timer per store). */
  get deadlines(): DeadlineTracker {
    return this.#deadlines
  }

  /** Runs one statement, within `queryTimeoutMillis` unless a `deadline` of its own is given. */
  run<I, R, O>(
    statement: Statement<I, R, O>,
    input: I,
    protocol: Protocol = 'execute',
    deadline?: { millis: number; name: string },
  ): Promise<O> {
    return this.#withConnection(
      (connection) => send(connection, statement, input, protocol),
      deadline,
    )
  }

  /** Ends every connection; statements in flight finish first. */
  close(): Promise<void> {
    return new Promise((resolve) => this.#pool.end(() => resolve()))
  }

  async #withConnection<T>(
    work: (connection: PoolConnection) => Promise<T>,
    deadline = { millis: this.#timeoutMillis, name: 'queryTimeoutMillis' },
  ): Promise<T> {
    let expired = false
    let current: PoolConnection | undefined
    const attempt = (): Promise<T> =>
      new Promise<T>((resolve, reject) => {
        this.#pool.getConnection((connectError, connection) => {
          if (connectError) return reject(connectError)
          if (expired) {
            connection.release()
            return reject(new StoreTimeoutError(this.#id, deadline.millis, 0, deadline.name))
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
              // An SQL error leaves the connection clean; a broken connection does not.
              if (expired || isUnreachableError(error)) connection.destroy()
              else connection.release()
              reject(error)
            },
          )
        })
      })
    return new Promise<T>((resolve, reject) => {
      const pending = {
        deadline: performance.now() + deadline.millis,
        expire: (lateByMillis: number) => {
          expired = true
          current?.destroy()
          const error = new StoreTimeoutError(
            this.#id,
            deadline.millis,
            lateByMillis,
            deadline.name,
          )
          debug('store %s: %s', this.#id, error.message)
          reject(error)
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
          debug('store %s: %s', this.#id, errorSummary(error as Error))
          reject(error)
        },
      )
    })
  }
}

/** Sends one statement on a connection and decodes its result. */
function send<I, R, O>(
  connection: PoolConnection,
  statement: Statement<I, R, O>,
  input: I,
  protocol: Protocol = 'execute',
): Promise<O> {
  return new Promise((resolve, reject) => {
    const done = (error: Error | null, result: unknown): void => {
      if (error) return reject(error)
      try {
        resolve(statement.decode(result as R, input))
      } catch (decodeError) {
        reject(decodeError)
      }
    }
    const sql = statement.text(input)
    const values = statement.params(input)
    if (protocol === 'execute') connection.execute(sql, values as never, done)
    else connection.query(sql, values, done)
  })
}
