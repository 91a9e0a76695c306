/** The errors the library throws on purpose: one class per failure, each with a stable code. */
/**
 * Every error the library throws on purpose is a {@link SessionShardsError} with a stable
 * `code`, so callers can branch on `err.code` without parsing messages. Messages are
 * sentences that say what to do; they never contain passwords, URIs or signing secrets.
 */

/** Base class of every error thrown by session-shards. */
export class SessionShardsError extends Error {
  /** Stable, documented identifier of the failure (see docs/errors.md). */
  readonly code: string

  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = new.target.name
    this.code = code
  }
}

/** An option passed to {@link createSessionManager} is missing or invalid. Thrown before any connection is made. */
export class InvalidOptionError extends SessionShardsError {
  /** The option path at fault, e.g. `stores[2].uri` or `copies`. */
  readonly option: string

  constructor(option: string, rule: string) {
    super('INVALID_OPTION', `${option} option ${rule}`)
    this.option = option
  }
}

/** A session id is not a string of the accepted form (or fails its signature). No store was queried. */
export class InvalidSessionIdError extends SessionShardsError {
  constructor(reason: string) {
    super('INVALID_SESSION_ID', `Invalid session id: ${reason}. No store was queried.`)
  }
}

/** Session data is not a plain object the codec can encode. Nothing was written. */
export class InvalidSessionDataError extends SessionShardsError {
  constructor(reason: string, options?: { cause?: unknown }) {
    super('INVALID_SESSION_DATA', `Invalid session data: ${reason}. Nothing was written.`, options)
  }
}

/** Encoded session data is larger than the `maxSessionBytes` option allows. Nothing was written. */
export class SessionTooLargeError extends SessionShardsError {
  readonly bytes: number
  readonly maxBytes: number

  constructor(bytes: number, maxBytes: number) {
    super(
      'SESSION_TOO_LARGE',
      `Session data is ${bytes} bytes encoded, more than maxSessionBytes (${maxBytes}). ` +
        'Store less in the session or raise maxSessionBytes. Nothing was written.',
    )
    this.bytes = bytes
    this.maxBytes = maxBytes
  }
}

/** What one store answered when an operation failed on it. */
export interface StoreFailure {
  storeId: string
  error: Error
}

/**
 * Too few stores could take a write: fewer than `minCopies` copies were written.
 * `failures` holds each store's cause. Some stores may still hold the new data.
 */
export class NotEnoughStoresError extends SessionShardsError {
  readonly copiesWritten: number
  readonly copiesRequired: number
  readonly failures: StoreFailure[]

  constructor(copiesWritten: number, copiesRequired: number, failures: StoreFailure[]) {
    super(
      'NOT_ENOUGH_STORES',
      `Only ${copiesWritten} of the ${copiesRequired} copies required by minCopies could be written` +
        describeFailures(failures) +
        '. Bring stores back up, or lower minCopies to accept fewer copies in a degraded cluster.',
    )
    this.copiesWritten = copiesWritten
    this.copiesRequired = copiesRequired
    this.failures = failures
  }
}

/** No store in a session's order could answer a read or a delete. `failures` holds each store's cause. */
export class NoStoreAvailableError extends SessionShardsError {
  readonly failures: StoreFailure[]

  constructor(operation: string, failures: StoreFailure[]) {
    super(
      'NO_STORE_AVAILABLE',
      `No store could ${operation}` +
        describeFailures(failures) +
        '. Check that the stores are up.',
    )
    this.failures = failures
  }
}

/** A statement on one store did not finish within `queryTimeoutMillis` (or, creating tables, the schema's own deadline). */
export class StoreTimeoutError extends SessionShardsError {
  readonly storeId: string
  /**
   * How late the timeout was noticed: far beyond a few milliseconds, this process was not
   * running (a busy event loop, a starved CPU), which says nothing about the store.
   */
  readonly lateByMillis: number

  constructor(
    storeId: string,
    timeoutMillis: number,
    lateByMillis = 0,
    limit = 'queryTimeoutMillis',
  ) {
    super('STORE_TIMEOUT', `Store ${storeId} did not answer within ${timeoutMillis} ms (${limit}).`)
    this.storeId = storeId
    this.lateByMillis = lateByMillis
  }
}

/**
 * A write with `expectedVersion` (or one made by `updateSession`, a per-key operation or a
 * lock holder) found the session at another version. Nothing was written; read again and
 * retry.
 */
export class VersionConflictError extends SessionShardsError {
  /** The version the write expected. */
  readonly expectedVersion: number
  /** The version the deciding store holds. */
  readonly actualVersion: number

  constructor(actualVersion: number, expectedVersion: number) {
    super(
      'VERSION_CONFLICT',
      `The session is at version ${actualVersion}, not the expected ${expectedVersion}: ` +
        'another request changed it. Read it again and retry (updateSession does this for you).',
    )
    this.expectedVersion = expectedVersion
    this.actualVersion = actualVersion
  }
}

/**
 * A compare-and-set (a write with `expectedVersion`, `updateSession`, a per-key operation)
 * lost its answer with a broken connection, and the statement, sent again, found another write
 * over the expected version: the first send may have applied before that write (which then
 * carries its change), or not at all. Not retried by `updateSession`, which would apply a
 * change twice; nothing was acknowledged.
 */
export class WriteOutcomeUnknownError extends SessionShardsError {
  constructor() {
    super(
      'WRITE_OUTCOME_UNKNOWN',
      'The compare-and-set lost its answer with its connection, and another write has changed ' +
        'the session since: it may or may not have applied. Read the session to see before ' +
        'changing it again.',
    )
  }
}

/**
 * A store holds the session at the top of the version range, which only a row written by
 * something other than session-shards can reach: no higher version is left for this session,
 * so nothing was written. Other sessions are not affected; destroy this one (or delete its
 * rows) to use its id again.
 */
export class VersionOverflowError extends SessionShardsError {
  readonly storedVersion: number

  constructor(storedVersion: number) {
    super(
      'VERSION_OVERFLOW',
      `A store holds the session at version ${storedVersion}, the top of the range session-shards mints: ` +
        'nothing was written. Destroy the session (or delete its rows) to start it again.',
    )
    this.storedVersion = storedVersion
  }
}

/** The session does not exist (or expired, or was destroyed) where an operation needs it to. */
export class SessionNotFoundError extends SessionShardsError {
  constructor(operation: string) {
    super('SESSION_NOT_FOUND', `No live session to ${operation}.`)
  }
}

/**
 * A lease lock could not be taken within `waitMillis`: another holder has it, or the store
 * that holds the session's locks (in service, but failing) did not answer in time. `failure`
 * (also the `cause`) is that store's last error, if its failure ended the wait.
 */
export class LockTimeoutError extends SessionShardsError {
  readonly failure: StoreFailure | undefined

  constructor(waitMillis: number, failure?: StoreFailure) {
    super(
      'LOCK_TIMEOUT',
      failure === undefined
        ? `The session is locked by another holder and was not released within ${waitMillis} ms (waitMillis). ` +
            'Retry later, or raise waitMillis.'
        : `The lock could not be taken within ${waitMillis} ms (waitMillis): its store is in service but failed` +
            describeFailures([failure]) +
            '. Retry later, or raise waitMillis; a store that keeps failing is taken out of service (failThreshold) and the lock moves to the next one.',
      failure === undefined ? undefined : { cause: failure.error },
    )
    this.failure = failure
  }
}

/**
 * `lockSession` (or `withSessionLock`) was given a `signal` that aborted before the lock was
 * taken: nothing is held (a lock the last round took is given back). The `cause` is the
 * signal's reason.
 */
export class LockAbortedError extends SessionShardsError {
  constructor(reason: unknown) {
    super(
      'LOCK_ABORTED',
      'The wait for the session lock was aborted (its signal); no lock is held.',
      {
        cause: reason,
      },
    )
  }
}

/** A lock holder tried to write after its lease ran out; nothing was written (fencing). */
export class LockExpiredError extends SessionShardsError {
  constructor() {
    super(
      'LOCK_EXPIRED',
      'The lease of this lock has run out, so another holder may have the session: nothing was written. ' +
        'Take the lock again, or use a longer leaseMillis.',
    )
  }
}

/** A request reached a store whose circuit is open (it opened after the request chose the store); nothing was sent. */
export class StoreDownError extends SessionShardsError {
  readonly storeId: string

  constructor(storeId: string) {
    super('STORE_DOWN', `Store ${storeId} is marked down; the request was not sent to it.`)
    this.storeId = storeId
  }
}

/**
 * A store already had `maxOperationsInFlight` requests of this manager waiting for one of its
 * connections (all of them busy, or being opened): this one was refused at once, before any
 * statement, and fails over like a timeout. It says nothing against the store (its circuit
 * does not count it): the backlog is this manager's.
 */
export class StoreBusyError extends SessionShardsError {
  readonly storeId: string
  /** Requests that may wait for a connection of one store at once. */
  readonly limit: number

  constructor(storeId: string, limit: number) {
    super(
      'STORE_BUSY',
      `Store ${storeId} already has ${limit} requests waiting for a connection (maxOperationsInFlight); ` +
        'the request was not sent to it.',
    )
    this.storeId = storeId
    this.limit = limit
  }
}

/** `applySchema` could not create the tables on some stores; `failures` holds each one's cause. */
export class SchemaNotAppliedError extends SessionShardsError {
  readonly failures: StoreFailure[]

  constructor(failures: StoreFailure[]) {
    super(
      'SCHEMA_NOT_APPLIED',
      'The session tables could not be created on every store' +
        describeFailures(failures) +
        '. Fix those stores and apply the schema again (it is idempotent).',
    )
    this.failures = failures
  }
}

/**
 * A table of the schema's names exists on a store but lacks the schema's columns: another
 * tool's table of the same name (express-mysql-session's `sessions`, say). Nothing was added to
 * it; `applySchema` lists it among its failures.
 */
export class SchemaMismatchError extends SessionShardsError {
  /** The table's name. */
  readonly table: string
  /** The schema's columns it lacks. */
  readonly missingColumns: readonly string[]

  constructor(table: string, missingColumns: readonly string[]) {
    super(
      'SCHEMA_MISMATCH',
      `Table ${table} exists but is not a session-shards table: it lacks the columns ` +
        `${missingColumns.join(', ')}. Nothing in it was changed. Give the session tables ` +
        'another name (the table option) or move that table out of this database.',
    )
    this.table = table
    this.missingColumns = [...missingColumns]
  }
}

/**
 * The manager already has `maxOperationsInFlight` operations in flight: this one was refused
 * before any statement, so that a flood of calls (a retry storm, a runaway loop) cannot grow
 * the manager's queues without bound while its stores are slow.
 */
export class TooManyOperationsError extends SessionShardsError {
  /** The manager's `maxOperationsInFlight`. */
  readonly limit: number

  constructor(limit: number) {
    super(
      'TOO_MANY_OPERATIONS',
      `${limit} operations are already in flight on this session manager (maxOperationsInFlight); retry once some have settled.`,
    )
    this.limit = limit
  }
}

/**
 * A framework store's operation was rejected with something that is not an Error (undefined,
 * null, a string...), as a custom manager or codec may do: the operation failed, and callers
 * get this instead, so that a Node-style callback never mistakes a falsy rejection for success.
 * The value is the `cause`; the message only says what kind of value it was.
 */
export class OperationFailedError extends SessionShardsError {
  constructor(rejection: unknown) {
    super(
      'OPERATION_FAILED',
      `The session operation failed without an Error (it was rejected with ${kindOf(rejection)}): ` +
        'treat the session as not saved. Find what rejects without an Error (a custom manager or codec).',
      { cause: rejection },
    )
  }
}

/** The manager was closed; no further operation is accepted. */
export class ManagerClosedError extends SessionShardsError {
  constructor() {
    super('MANAGER_CLOSED', 'The session manager is closed; create a new one to keep working.')
  }
}

/** What kind of value `value` is, without showing it (it may hold anything). */
function kindOf(value: unknown): string {
  if (value === null || value === undefined) return String(value)
  return typeof value === 'object' ? 'an object' : `a ${typeof value}`
}

function describeFailures(failures: StoreFailure[]): string {
  if (failures.length === 0) return ''
  const parts = failures.map(({ storeId, error }) => `${storeId}: ${errorSummary(error)}`)
  return ` (${parts.join('; ')})`
}

/**
 * A short description of a driver error: its code and message, never its connection config.
 * Anything else thrown (a caller's callback may throw a string, or `null`) is described too:
 * a store whose work stopped on it must not read as done.
 */
export function errorSummary(error: unknown): string {
  if (!(error instanceof Error)) {
    return typeof error === 'string' ? error : `${kindOf(error)} was thrown`
  }
  const code = (error as { code?: unknown }).code
  const message = withoutAccount(error.message)
  return typeof code === 'string' && !message.includes(code) ? `${code} ${message}` : message
}

/**
 * `message` without the account a server's refusal names: a user name is part of the
 * credentials and no more printed than the password. The forms: "Access denied for user
 * 'name'@'host'" and "SELECT command denied to user 'name'@'host'" (greedy up to the last
 * `'@'`, so a name with quotes in it is hidden whole), "User 'name' has exceeded the
 * 'max_user_connections' resource" and "User name already has more than ...".
 */
function withoutAccount(message: string): string {
  return message
    .replace(/'.*'@'[^'\n]*'/g, "'…'@'…'")
    .replace(/\b(user) '.*'(?= has exceeded )/gi, "$1 '…'")
    .replace(/\b(user) \S.*?(?= already has more than )/gi, '$1 …')
}
