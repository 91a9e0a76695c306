/** One store's connections: statements sent under one deadline each, transient errors retried. */
import type { Duplex } from 'node:stream'
import mysql from 'mysql2'
import type { Pool, PoolConnection } from 'mysql2'
import { debug } from '../debug.js'
import { errorSummary, StoreBusyError, StoreTimeoutError } from '../errors.js'
import type { ResolvedOptions } from '../options.js'
import type { ResolvedStore } from '../store-options.js'
import { DeadlineTracker } from './deadlines.js'
import type { PendingStatement } from './deadlines.js'
import {
  isBrokenConnectionError,
  isTransientError,
  isUnreachableError,
  retryTransient,
} from './retry.js'
import type { Statement } from './statements.js'

/** How a statement travels: prepared (`execute`, the default) or as text (`query`, for DDL). */
export type Protocol = 'execute' | 'query'

/**
 * Statements each connection keeps prepared, least recently used closed first. Every text is
 * prepared once per connection and held on the server, which allows 16,382 in all by default
 * (`max_prepared_stmt_count`); mysql2 would keep 16,000 per connection, so the texts a caller's
 * batch sizes make (a LIMIT each) could use them up for every app server on the store. The
 * library's own hot texts (a batch's text per row count, reads padded to powers of two) fit.
 */
export const PREPARED_STATEMENTS_PER_CONNECTION = 256

/**
 * The connection pool of one store. Every call runs under one deadline that covers waiting for
 * a connection and every retry, so a hung store costs a caller at most `queryTimeoutMillis`;
 * a connection whose work passed the deadline, or broke part way, is destroyed rather than
 * returned to the pool (the server then rolls back whatever it left open).
 *
 * Callers wait for a connection here, never in mysql2's queue: a caller cannot leave that one,
 * so each that timed out stayed queued, with its statement's input (up to a whole session),
 * until a connection came free, and a hung store frees one per `connectTimeoutMillis` at best.
 * Here a caller leaves the wait at its deadline, and at most `maxOperationsInFlight` wait at
 * once: one more is refused at once with {@link StoreBusyError} and fails over.
 */
export class StoreConnection {
  readonly #id: string
  readonly #pool: Pool
  readonly #timeoutMillis: number
  readonly #retries: number
  readonly #deadlines: DeadlineTracker
  /** Connections the pool may have (its `connectionLimit`; unlimited there is 0). */
  readonly #connectionLimit: number
  /** Connections asked of the pool and not given back: being opened, or held by a caller. */
  #inUse = 0
  /** Callers waiting for a connection, oldest first; each leaves at its deadline. */
  readonly #waiting = new Set<() => void>()
  /** Callers that may wait at once. */
  readonly #maxWaiting: number
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
    const { connectionLimit, queueLimit, waitForConnections } = store.poolOptions
    this.#connectionLimit = connectionLimit ?? options.connectionsPerStore
    if (this.#connectionLimit === 0) this.#connectionLimit = Number.POSITIVE_INFINITY
    this.#maxWaiting =
      waitForConnections === false
        ? 0
        : Math.min(options.maxOperationsInFlight, queueLimit || Number.POSITIVE_INFINITY)
    this.#pool = mysql.createPool({
      connectionLimit: options.connectionsPerStore,
      maxPreparedStatements: PREPARED_STATEMENTS_PER_CONNECTION,
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

  /** Callers waiting for a connection now. */
  get waiting(): number {
    return this.#waiting.size
  }

  /** Runs one statement, within `queryTimeoutMillis` unless a `deadline` of its own is given. */
  run<I, R, O>(
    statement: Statement<I, R, O>,
    input: I,
    protocol: Protocol = 'execute',
    deadline?: { millis: number; name: string },
  ): Promise<O> {
    return this.#withConnection(
      (connection, done, resent) => send(connection, statement, input, protocol, done, resent),
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
      // Like those mysql2 queued itself: each is told at once that the pool is closed.
      for (const waiter of this.#waiting) {
        this.#waiting.delete(waiter)
        waiter()
      }
    })
    return this.#closed
  }

  #withConnection<T>(
    work: (
      connection: PoolConnection,
      done: (error: unknown, result?: T) => void,
      resent: boolean,
    ) => void,
    deadline = { millis: this.#timeoutMillis, name: 'queryTimeoutMillis' },
  ): Promise<T> {
    let expired = false
    /** Whether a connection broke under the work: a retry then sends it again, blind. */
    let answerLost = false
    let current: PoolConnection | undefined
    /** This call's place among the callers waiting for a connection, while it waits. */
    let waiter: (() => void) | undefined
    const timedOut = (): StoreTimeoutError =>
      new StoreTimeoutError(this.#id, deadline.millis, 0, deadline.name)
    /** Gives the connection back (at most once: the deadline may have done it already). */
    const putBack = (destroy: boolean): void => {
      const connection = current
      if (connection === undefined) return
      current = undefined
      if (destroy) {
        // mysql2's destroy only half-closes the socket: left open, the pool opens another in
        // its place, one more per statement that passes its deadline.
        connection.destroy()
        socketOf(connection).destroy()
      } else connection.release()
      this.#givenBack()
    }
    // Callbacks rather than a promise per step (and per attempt): this runs for every statement.
    const attempt = (done: (error: unknown, result?: T) => void): void => {
      // A retry that backed off past the deadline: nobody is waiting for its answer.
      if (expired) return done(timedOut())
      waiter = this.#connect((connectError, connection) => {
        waiter = undefined
        if (connectError) return done(connectError)
        current = connection
        if (expired) {
          putBack(false)
          return done(timedOut())
        }
        const finish = (error: unknown, result?: T): void => {
          if (error === null) {
            if (expired) return putBack(true)
            putBack(false)
            return done(null, result)
          }
          // An SQL error leaves the connection clean; a broken connection does not.
          putBack(expired || isUnreachableError(error))
          if (isBrokenConnectionError(error)) answerLost = true
          done(error)
        }
        try {
          work(connection!, finish, answerLost)
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
          if (waiter !== undefined) this.#waiting.delete(waiter)
          putBack(true)
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
        debug('store %s: %s', this.#id, errorSummary(error))
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

  /**
   * Asks the pool for a connection for `take` (which gives it back through {@link #givenBack}),
   * at once when the pool has one to give, else once one is given back; past `#maxWaiting`
   * waiting, `take` is refused at once. Returns the caller's place in the wait, if it waits.
   */
  #connect(
    take: (error: Error | null, connection?: PoolConnection) => void,
  ): (() => void) | undefined {
    const ask = (): void => {
      this.#inUse++
      this.#pool.getConnection((error, connection) => {
        if (error) {
          this.#givenBack()
          return take(error)
        }
        take(null, connection)
      })
    }
    if (this.#inUse < this.#connectionLimit) {
      ask()
      return undefined
    }
    if (this.#waiting.size >= this.#maxWaiting) {
      take(new StoreBusyError(this.#id, this.#maxWaiting))
      return undefined
    }
    this.#waiting.add(ask)
    return ask
  }

  /** A connection was released or destroyed, or never came: the longest waiter asks for one. */
  #givenBack(): void {
    this.#inUse--
    for (const next of this.#waiting) {
      this.#waiting.delete(next)
      next()
      return
    }
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
  resent: boolean,
): void {
  const answered = (error: Error | null, result: unknown): void => {
    if (error) return done(error)
    let decoded: O
    try {
      decoded = statement.decode(result as R, input, resent)
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
