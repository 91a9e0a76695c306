/** One store's connections: statements sent under one deadline each, transient errors retried. */
import type { Duplex } from 'node:stream'
import mysql from 'mysql2'
import type { Pool, PoolConnection } from 'mysql2'
import { debug } from '../debug.js'
import { errorSummary, StoreTimeoutError } from '../errors.js'
import type { ResolvedOptions } from '../options.js'
import type { ResolvedStore } from '../store-options.js'
import { DeadlineTracker } from './deadlines.js'
import type { PendingStatement } from './deadlines.js'
import { isTransientError, isUnreachableError, retryTransient } from './retry.js'
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
  /** The sockets of the pool's connections that have not closed yet. */
  readonly #sockets = new Set<Duplex>()
  /** Statements whose promise has not settled (each settles by its deadline at the latest). */
  #running = 0
  /** Set by close(): told when a socket closes, and when the last running statement settles. */
  #closing: { socketClosed(): void; idle(): void } | undefined
  #closed: Promise<void> | undefined

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
    // Once per connection, after its handshake: what close() may have to destroy itself.
    this.#pool.on('connection', (connection) => {
      const socket = socketOf(connection)
      this.#sockets.add(socket)
      socket.once('close', () => {
        this.#sockets.delete(socket)
        this.#closing?.socketClosed()
      })
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
      (connection, done) => send(connection, statement, input, protocol, done),
      deadline,
    )
  }

  /**
   * Ends every connection; statements in flight finish first (or at their deadline). Resolves
   * once every socket has closed: a store that does not close its end within
   * `queryTimeoutMillis` of the last statement settling (a hung or stopped server, whose
   * kernel still acknowledges the quit) has its sockets destroyed, so that nothing is left to
   * keep the process alive.
   */
  close(): Promise<void> {
    this.#closed ??= new Promise<void>((resolve) => {
      // Every connection has sent its COM_QUIT (or failed). A quit queued behind a statement
      // that is destroyed at its deadline never runs, so this may never come: the grace
      // period below ends the wait regardless.
      let quitSent = false
      let forced = false
      let grace: NodeJS.Timeout | undefined
      const settleIfDone = (): void => {
        if (!(quitSent || forced) || this.#sockets.size > 0) return
        clearTimeout(grace)
        this.#closing = undefined
        resolve()
      }
      const force = (): void => {
        forced = true
        if (this.#sockets.size > 0) {
          debug(
            'store %s: destroying %d connection(s) it did not close',
            this.#id,
            this.#sockets.size,
          )
        }
        for (const socket of this.#sockets) socket.destroy()
        settleIfDone()
      }
      const startGrace = (): void => {
        grace ??= setTimeout(force, this.#timeoutMillis)
        grace.unref()
      }
      this.#closing = { socketClosed: settleIfDone, idle: startGrace }
      if (this.#running === 0) startGrace()
      this.#pool.end(() => {
        quitSent = true
        settleIfDone()
      })
    })
    return this.#closed
  }

  #withConnection<T>(
    work: (connection: PoolConnection, done: (error: unknown, result?: T) => void) => void,
    deadline = { millis: this.#timeoutMillis, name: 'queryTimeoutMillis' },
  ): Promise<T> {
    let expired = false
    let current: PoolConnection | undefined
    // Callbacks rather than a promise per step (and per attempt): this runs for every statement.
    const attempt = (done: (error: unknown, result?: T) => void): void => {
      this.#pool.getConnection((connectError, connection) => {
        if (connectError) return done(connectError)
        if (expired) {
          connection.release()
          return done(new StoreTimeoutError(this.#id, deadline.millis, 0, deadline.name))
        }
        current = connection
        const finish = (error: unknown, result?: T): void => {
          current = undefined
          if (error === null) {
            if (expired) return connection.destroy()
            connection.release()
            return done(null, result)
          }
          // An SQL error leaves the connection clean; a broken connection does not.
          if (expired || isUnreachableError(error)) connection.destroy()
          else connection.release()
          done(error)
        }
        try {
          work(connection, finish)
        } catch (error) {
          // Thrown before anything was sent (the driver refusing a parameter, say): outside
          // any promise here, it would be an uncaught exception.
          finish(error)
        }
      })
    }
    return new Promise<T>((resolve, reject) => {
      this.#running++
      const pending: PendingStatement = {
        deadline: performance.now() + deadline.millis,
        untracked: true,
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
          this.#settled()
          reject(error)
        },
      }
      // After its deadline, the statement's promise has settled: its late outcome is not counted.
      const failed = (error: unknown): void => {
        this.#deadlines.delete(pending)
        debug('store %s: %s', this.#id, errorSummary(error as Error))
        if (!expired) this.#settled()
        reject(error)
      }
      const succeeded = (value: T): void => {
        this.#deadlines.delete(pending)
        if (!expired) this.#settled()
        resolve(value)
      }
      this.#deadlines.add(pending)
      attempt((error, result) => {
        if (error === null) return succeeded(result as T)
        if (!isTransientError(error) || this.#retries <= 0) return failed(error)
        const again = (): Promise<T> =>
          new Promise<T>((settle, fail) =>
            attempt((next, value) => (next === null ? settle(value as T) : fail(next))),
          )
        retryTransient(again, this.#retries).then(succeeded, failed)
      })
    })
  }

  /** One statement's promise has settled: the last one to settle starts close()'s grace period. */
  #settled(): void {
    if (--this.#running === 0) this.#closing?.idle()
  }
}

/** Sends one statement on a connection; `done` gets its decoded result (error null) or an error. */
function send<I, R, O>(
  connection: PoolConnection,
  statement: Statement<I, R, O>,
  input: I,
  protocol: Protocol,
  done: (error: unknown, result?: O) => void,
): void {
  const answered = (error: Error | null, result: unknown): void => {
    if (error) return done(error)
    let decoded: O
    try {
      decoded = statement.decode(result as R, input)
    } catch (decodeError) {
      return done(decodeError)
    }
    done(null, decoded)
  }
  const sql = statement.text(input)
  const values = statement.params(input)
  if (protocol === 'execute') connection.execute(sql, values as never, answered)
  else connection.query(sql, values, answered)
}

/** The socket under a connection (mysql2 keeps it as `stream`, a TLS socket once upgraded). */
function socketOf(connection: PoolConnection): Duplex {
  return (connection as unknown as { stream: Duplex }).stream
}
