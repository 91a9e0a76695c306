/** Which errors are worth a retry on the same store, and which mean it is unreachable. */
import pRetry from 'p-retry'
import { WriteOutcomeUnknownError } from '../errors.js'

/** MySQL errors worth a second try on the same store: the next attempt is likely to succeed. */
const TRANSIENT_ERRNOS = new Set([
  1205, // ER_LOCK_WAIT_TIMEOUT
  1213, // ER_LOCK_DEADLOCK
])

/**
 * Connection errors of an already open (pooled) connection: the server may have restarted and
 * a fresh connection may work. Every statement the library sends is idempotent (upserts keep
 * versions growing, deletes and tombstones repeat safely), so resending is safe.
 */
const BROKEN_CONNECTION_CODES = new Set(['ECONNRESET', 'EPIPE', 'PROTOCOL_CONNECTION_LOST'])

/**
 * Whether a connection broke under a statement: its answer is lost, and the statement may or
 * may not have applied (a lock wait timeout or a deadlock, also retried, applied nothing).
 */
export function isBrokenConnectionError(error: unknown): boolean {
  const { code } = error as { code?: unknown }
  return typeof code === 'string' && BROKEN_CONNECTION_CODES.has(code)
}

/** Whether an error is worth retrying on the same store. Timeouts never are: they would cost another timeout. */
export function isTransientError(error: unknown): boolean {
  const { errno, code } = error as { errno?: unknown; code?: unknown }
  return (
    (typeof errno === 'number' && TRANSIENT_ERRNOS.has(errno)) ||
    (typeof code === 'string' && BROKEN_CONNECTION_CODES.has(code))
  )
}

/**
 * After a first attempt failed with a transient error: `attempt` again, up to `retries` times
 * with a short backoff (through p-retry). The first attempt is the caller's own, outside
 * p-retry's machinery and any promise: it is the hot path of every statement.
 */
export function retryTransient<T>(attempt: () => Promise<T>, retries: number): Promise<T> {
  return pRetry(attempt, {
    retries: retries - 1,
    minTimeout: 5,
    maxTimeout: 50,
    randomize: true,
    shouldRetry: ({ error }) => isTransientError(error),
  })
}

/**
 * Errors that no slowness explains: nothing listens where the store should be, or what listens
 * cannot speak as configured (TLS asked of a server without it).
 */
const ABSENT_CODES = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'HANDSHAKE_NO_SSL_SUPPORT'])

/**
 * Whether an error proves the store absent (see {@link ABSENT_CODES}): a store can be taken out
 * of service at once for it, whatever the manager's own slowness.
 */
export function isAbsentError(error: unknown): boolean {
  const { code, errors } = error as { code?: unknown; errors?: unknown }
  if (typeof code === 'string' && ABSENT_CODES.has(code)) return true
  // A host with several addresses fails with one error per address.
  return Array.isArray(errors) && errors.length > 0 && errors.every(isAbsentError)
}

/** Server errors that mean the server cannot serve (it answered, but only to say so). */
const UNAVAILABLE_ERRNOS = new Set([
  1040, // ER_CON_COUNT_ERROR: too many connections
  1053, // ER_SERVER_SHUTDOWN
  1927, // ER_CONNECTION_KILLED
])

/**
 * Whether an error says the store is unreachable (and counts toward its circuit) rather than
 * that it answered with an SQL error: errors the server sent carry a `sqlState`.
 */
export function isUnreachableError(error: unknown): boolean {
  // The store answered; only what its answer meant is unknown.
  if (error instanceof WriteOutcomeUnknownError) return false
  const { errno, sqlState } = error as { errno?: unknown; sqlState?: unknown }
  if (typeof sqlState !== 'string') return true
  return typeof errno === 'number' && UNAVAILABLE_ERRNOS.has(errno)
}
