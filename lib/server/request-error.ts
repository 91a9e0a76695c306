/** What a client of the session server is told when a request fails: a stable code, a sentence, an HTTP status. */
import { errorSummary, LockTimeoutError, SessionShardsError } from '../errors.js'
import { debug } from '../debug.js'

/**
 * A request to the session server that cannot be served as sent: a malformed line, an unknown
 * command, a missing token, a body that is too large... `code` is stable (see docs/server.md);
 * both protocols report it (`err <code> <message>`, `{ error: { code, message } }`).
 */
export class RequestError extends SessionShardsError {
  constructor(code: string, message: string) {
    super(code, message)
  }
}

/** A write that met a destroyed session: dropped, which must not look like a success. */
export function sessionDestroyed(): RequestError {
  return new RequestError(
    'SESSION_NOT_FOUND',
    'The session was destroyed: the write was dropped. Create a new session.',
  )
}

/** A session the stores held that is gone (destroyed or expired) when it was to be moved: nothing was written. */
export function sessionGone(): RequestError {
  return new RequestError(
    'SESSION_NOT_FOUND',
    'The session was destroyed or has expired: nothing was written. Create a new session.',
  )
}

/** HTTP status of each error code the server reports; anything else is a 500. */
const STATUS_BY_CODE: Record<string, number> = {
  BAD_REQUEST: 400,
  INVALID_JSON: 400,
  INVALID_SESSION_ID: 400,
  INVALID_SESSION_DATA: 400,
  INVALID_OPTION: 400,
  UNAUTHORIZED: 401,
  FORBIDDEN: 403,
  NOT_FOUND: 404,
  SESSION_NOT_FOUND: 404,
  KEY_NOT_FOUND: 404,
  METHOD_NOT_ALLOWED: 405,
  VERSION_CONFLICT: 409,
  VERSION_OVERFLOW: 409,
  WRITE_OUTCOME_UNKNOWN: 409,
  LOCK_TIMEOUT: 409,
  LOCK_EXPIRED: 409,
  SESSION_TOO_LARGE: 413,
  BODY_TOO_LARGE: 413,
  UNSUPPORTED_MEDIA_TYPE: 415,
  NO_STORE_AVAILABLE: 503,
  NOT_ENOUGH_STORES: 503,
  STORE_TIMEOUT: 503,
  STORE_DOWN: 503,
  STORE_BUSY: 503,
  MANAGER_CLOSED: 503,
  TOO_MANY_OPERATIONS: 503,
  SHUTTING_DOWN: 503,
  TOO_MANY_CONNECTIONS: 503,
}

/** What clients are told of failures of the stores behind the server, by code. */
const STORE_TROUBLE: Record<string, string> = {
  NO_STORE_AVAILABLE: 'No store could serve the request. Retry later.',
  NOT_ENOUGH_STORES: 'Too few stores could take the write: it was not acknowledged. Retry later.',
  STORE_TIMEOUT: 'A store did not answer in time. Retry later.',
  STORE_DOWN: 'A store is down. Retry later.',
  STORE_BUSY: 'A store has too many requests waiting. Retry later.',
}

/** What clients are told of a lock wait that a failing store ended (rather than another holder). */
const LOCK_STORE_TROUBLE =
  "The session's lock could not be taken in time: the store that keeps it failed. Retry later."

/**
 * The fixed sentence a client gets instead of the library's message, for errors whose message
 * names stores or carries a driver's message (user@host): fine for the app's own logs, not
 * for a client of the server. Undefined: the library's message is safe to show.
 */
function publicMessage(error: SessionShardsError): string | undefined {
  const trouble = STORE_TROUBLE[error.code]
  if (trouble !== undefined) return trouble
  if (error instanceof LockTimeoutError) {
    return error.failure === undefined ? undefined : LOCK_STORE_TROUBLE
  }
  // Any other error that carries a store's failure, so that a new one cannot leak by default.
  const fields = error as { failure?: unknown; failures?: unknown; storeId?: unknown }
  if (
    fields.failure !== undefined ||
    fields.failures !== undefined ||
    fields.storeId !== undefined
  ) {
    return `The request failed on a store (${error.code}). Retry later.`
  }
  return undefined
}

/** What a client is told about a failure: a stable code and a one-line message. */
export interface ErrorReply {
  code: string
  message: string
  status: number
}

/**
 * Turns a thrown value into what the client sees. Library and request errors keep their code,
 * and their message unless it could name a store ({@link publicMessage}: then a fixed
 * sentence, the message going to the debug log); anything else is an internal error whose
 * details go to the debug log only.
 */
export function errorReply(error: unknown): ErrorReply {
  if (error instanceof SessionShardsError) {
    const shown = publicMessage(error)
    if (shown !== undefined) debug('session server: %s', errorSummary(error))
    return {
      code: error.code,
      message: shown ?? error.message.replace(/\s*[\r\n]+\s*/g, ' '),
      status: STATUS_BY_CODE[error.code] ?? 500,
    }
  }
  debug('session server: internal error: %s', (error as Error)?.stack ?? String(error))
  return {
    code: 'INTERNAL_ERROR',
    message:
      'The session server failed on this request; run it with NODE_DEBUG=session-shards to see why.',
    status: 500,
  }
}
