/**
 * What `session-shards import` reads from: one kind of session store that apps move away from
 * (express-mysql-session's table, connect-redis's keys), behind one small interface, so that
 * the command does the writing, the counting and the output once for every kind.
 */
import type { OptionSpecs } from '../command.js'
import { UsageError } from '../command.js'
import type { SourceRow } from '../imported-session.js'

/** The environment variable holding the source's URI (arguments show in `ps`; this does not). */
export const IMPORT_SOURCE_VARIABLE = 'SESSION_SHARDS_IMPORT_FROM'

/** One source, its arguments checked, not yet connected. */
export interface ImportSource {
  /** Where the sessions are, for the JSON result (`{ table }`, `{ prefix }`). */
  readonly where: Record<string, string>
  /** The same for a person: `sessions`, `the keys sess:*`. */
  readonly name: string
  /** Connects; a failure says what failed by a code, never by the URI. */
  open(): Promise<void>
  /** How many sessions the pages will hold at most, for the progress bar. */
  count(now: number): Promise<number>
  /** The sessions not expired at `now` (Unix milliseconds), a page at a time. */
  pages(now: number): AsyncIterable<readonly SourceRow[]>
  /** Why reading stopped: the driver's error code (ER_NO_SUCH_TABLE, WRONGPASS), never a value. */
  errorCode(error: unknown): string
  /** Ends the connection; safe to call when `open` failed or never ran. */
  close(): Promise<void>
}

/** One kind of source: `session-shards import <kind>`. */
export interface SourceKind {
  /** The options the kind adds to the command line, besides `--batch-size`. */
  readonly options: OptionSpecs
  /** The URI schemes the kind connects to, with the colon (`mysql:`). */
  readonly schemes: readonly string[]
  /** The URI as the messages show it (`mysql://user:pass@host:3306/db`). */
  readonly uriForm: string
  /** Whether the URI must name a database in its path (MySQL does; Redis defaults to 0). */
  readonly pathRequired: boolean
  /** Checks the kind's arguments (throws {@link UsageError}) and makes its source. */
  create(
    values: Record<string, string | boolean | undefined>,
    uri: URL,
    batchSize: number,
  ): ImportSource
}

/** The source's URI from the environment, checked, and its password; messages repeat neither. */
export function sourceUri(kind: SourceKind): { uri: URL; password: string } {
  const text = process.env[IMPORT_SOURCE_VARIABLE]
  if (text === undefined || text === '') {
    throw new UsageError(`set ${IMPORT_SOURCE_VARIABLE} to the source's ${kind.uriForm}`)
  }
  let uri: URL
  try {
    uri = new URL(text)
  } catch {
    throw new UsageError(`${IMPORT_SOURCE_VARIABLE} is not a URI; it must be ${kind.uriForm}`)
  }
  if (!kind.schemes.includes(uri.protocol) || (kind.pathRequired && uri.pathname.length <= 1)) {
    throw new UsageError(`${IMPORT_SOURCE_VARIABLE} must be ${kind.uriForm}`)
  }
  try {
    return { uri, password: decodeURIComponent(uri.password) }
  } catch {
    throw new UsageError(`${IMPORT_SOURCE_VARIABLE} has a password that is not valid URI encoding`)
  }
}

/** A driver error's code (ER_NO_SUCH_TABLE, ECONNREFUSED...): what failed, without values. */
export function driverErrorCode(error: unknown): string {
  const code = (error as { code?: unknown } | null)?.code
  return typeof code === 'string' && /^[A-Z0-9_]{1,64}$/.test(code) ? code : 'unknown error'
}
