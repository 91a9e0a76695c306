/**
 * `session-shards import express-mysql-session`: the live sessions of an express-mysql-session
 * table copied into the stores, so that an app switching over logs nobody out.
 */
import mysql from 'mysql2/promise'
import {
  InvalidSessionDataError,
  InvalidSessionIdError,
  SessionTooLargeError,
  VersionConflictError,
} from '../../errors.js'
import type { SessionManager } from '../../session-manager.js'
import type { Command } from '../command.js'
import { integerArgument, UsageError } from '../command.js'
import { loadCommandConfig } from '../config.js'
import { importedSession, type SourceRow } from '../imported-session.js'
import { openManager } from '../manager.js'
import { EXIT_OK, EXIT_PROBLEM, formatCount, oneLine } from '../output.js'
import { createProgressBar, progressWanted } from '../progress.js'

/** The environment variable holding the source's URI (arguments show in `ps`; this does not). */
export const IMPORT_SOURCE_VARIABLE = 'SESSION_SHARDS_IMPORT_FROM'
/** A table or column name as MySQL writes it unquoted: nothing a caller could smuggle SQL in. */
const IDENTIFIER = /^[A-Za-z0-9_$]{1,64}$/
/** express-mysql-session's column names, unless its `schema.columnNames` changed them. */
const DEFAULT_COLUMNS = ['session_id', 'expires', 'data'] as const
/** Writes in flight at once: enough to keep the stores busy, few enough not to crowd an app. */
const WRITES_IN_FLIGHT = 32
const DEFAULT_BATCH_SIZE = 500
/** Rows held at once: one page of the source. */
const MAX_BATCH_SIZE = 10_000
const CONNECT_TIMEOUT_MILLIS = 10_000
/** How long one statement on the source may take (a page, or the count for the progress bar). */
const SOURCE_STATEMENT_MILLIS = 120_000

/** What became of one source row. */
type Outcome = 'imported' | 'present' | 'expired' | 'unreadable' | 'failed'

/** Where the sessions are in the source. */
interface SourceTable {
  table: string
  /** The id, expiry (Unix seconds) and data columns. */
  columns: readonly [string, string, string]
}

export const importCommand: Command = {
  help: `Usage: session-shards import express-mysql-session [--table NAME] [--columns I,E,D]
                             [--batch-size N] [--config <file>] [--json]

Copies the live sessions of an express-mysql-session table into the configured stores, so
that an app moving to session-shards logs nobody out. The source database is the URI in
${IMPORT_SOURCE_VARIABLE} (mysql://user:pass@host:3306/db: from the environment, since
arguments show in ps), read N rows per statement in the order of the session id.

Each session keeps its id (or the key an unusual id maps to, where the Express store looks
for it), its data, cookie included, and its expiry (the cookie's, else the row's); expired
sessions are skipped. A session the stores already hold, live or logged out, is left as it
is: the import never overwrites a newer session or brings back a destroyed one, so it can
run before the switch, after it, and again. The source is only read. With secrets, set
acceptUnsignedIds while sessions from before the switch live. Shows a progress bar on a
terminal.

  --table NAME       the source table (default sessions)
  --columns I,E,D    its id, expires and data columns, if its schema.columnNames renamed
                     them (default ${DEFAULT_COLUMNS.join(',')})
  --batch-size N     rows read per statement, at most ${formatCount(MAX_BATCH_SIZE)} (default ${DEFAULT_BATCH_SIZE})

Exit code: 0 every live session imported or already there, 1 a session could not be
written or read (a store down, data that is not a JSON object) or the source failed,
2 usage or configuration error.`,
  options: {
    table: { type: 'string' },
    columns: { type: 'string' },
    'batch-size': { type: 'string' },
  },
  async run(context) {
    const [format, ...rest] = context.positionals
    if (format !== 'express-mysql-session' || rest.length > 0) {
      throw new UsageError(
        'import takes the source kind: session-shards import express-mysql-session',
      )
    }
    const from = sourceTable(context.values['table'], context.values['columns'])
    const batchSize =
      integerArgument('batch-size', context.values['batch-size'], 1) ?? DEFAULT_BATCH_SIZE
    if (batchSize > MAX_BATCH_SIZE) {
      throw new UsageError(`--batch-size must be at most ${formatCount(MAX_BATCH_SIZE)}`)
    }
    const source = sourceFromEnvironment()
    const config = await loadCommandConfig(context)
    if (config.resolved.idSigner !== null && config.options.acceptUnsignedIds !== true) {
      throw new UsageError(
        'with secrets, imported ids are unsigned and would read as no session: set acceptUnsignedIds',
      )
    }
    const { out } = context
    out.addSecrets([source.password].filter((password) => password !== ''))
    const manager = await openManager(config)
    let connection: mysql.Connection | undefined
    try {
      connection = await connectSource(source.uri)
      const counts = await copySessions(
        connection,
        manager,
        from,
        batchSize,
        progressWanted(out.json),
      )
      const ok = counts.unreadable === 0 && counts.failed === 0 && counts.sourceError === undefined
      out.result({ ok, table: from.table, ...counts })
      out.table(
        [
          { header: 'imported', align: 'right' },
          { header: 'already there', align: 'right' },
          { header: 'expired', align: 'right' },
          { header: 'unreadable', align: 'right' },
          { header: 'failed', align: 'right' },
        ],
        [
          [counts.imported, counts.present, counts.expired, counts.unreadable, counts.failed].map(
            formatCount,
          ),
        ],
      )
      out.line()
      if (counts.sourceError !== undefined) out.line(`The source failed: ${counts.sourceError}.`)
      if (counts.firstFailure !== undefined) out.line(`First failed write: ${counts.firstFailure}`)
      out.line(
        `${formatCount(counts.imported)} session(s) imported from ${from.table}, ` +
          `${formatCount(counts.present)} already there.`,
      )
      return ok ? EXIT_OK : EXIT_PROBLEM
    } finally {
      await Promise.all([manager.close(), connection?.end().catch(() => undefined)])
    }
  },
}

/** `--table` and `--columns`, checked: names only, never SQL; the message never repeats them. */
function sourceTable(
  table: string | boolean | undefined = 'sessions',
  columns: string | boolean | undefined = DEFAULT_COLUMNS.join(','),
): SourceTable {
  if (typeof table !== 'string' || !IDENTIFIER.test(table)) {
    throw new UsageError('--table must be 1 to 64 letters, digits, _ or $')
  }
  const names = typeof columns === 'string' ? columns.split(',') : []
  if (names.length !== 3 || !names.every((name) => IDENTIFIER.test(name))) {
    throw new UsageError(
      '--columns must be three names (id, expires, data), each 1 to 64 letters, digits, _ or $',
    )
  }
  return { table, columns: names as [string, string, string] }
}

/** The source's URI, checked, and its password; the message never repeats either. */
function sourceFromEnvironment(): { uri: URL; password: string } {
  const text = process.env[IMPORT_SOURCE_VARIABLE]
  if (text === undefined || text === '') {
    throw new UsageError(
      `set ${IMPORT_SOURCE_VARIABLE} to the source's mysql://user:pass@host:3306/db`,
    )
  }
  let uri: URL
  try {
    uri = new URL(text)
  } catch {
    throw new UsageError(
      `${IMPORT_SOURCE_VARIABLE} is not a URI; it must be mysql://user:pass@host:3306/db`,
    )
  }
  if (uri.protocol !== 'mysql:' || uri.pathname.length <= 1) {
    throw new UsageError(`${IMPORT_SOURCE_VARIABLE} must be mysql://user:pass@host:3306/db`)
  }
  try {
    return { uri, password: decodeURIComponent(uri.password) }
  } catch {
    throw new UsageError(`${IMPORT_SOURCE_VARIABLE} has a password that is not valid URI encoding`)
  }
}

/** One connection to the source; a failure says what failed by its code, not by the URI. */
async function connectSource(uri: URL): Promise<mysql.Connection> {
  try {
    return await mysql.createConnection({
      uri: uri.href,
      connectTimeout: CONNECT_TIMEOUT_MILLIS,
      supportBigNumbers: true,
    })
  } catch (error) {
    throw new Error(`could not connect to the source (${errorCode(error)})`)
  }
}

interface ImportCounts {
  imported: number
  /** Sessions the stores already held (live, expired or destroyed): left as they were. */
  present: number
  /** Rows whose cookie expired though the row had not yet (the row's expiry is rounded). */
  expired: number
  /** Rows whose data is not a JSON object the stores accept, or whose id is unusable. */
  unreadable: number
  /** Writes that failed (no store reachable, a timeout): run the import again. */
  failed: number
  firstFailure?: string
  /** Why reading the source stopped early, if it did. */
  sourceError?: string
}

/** Reads the source page by page and writes each page's live sessions, a few at a time. */
async function copySessions(
  source: mysql.Connection,
  manager: SessionManager,
  from: SourceTable,
  batchSize: number,
  showProgress: boolean,
): Promise<ImportCounts> {
  const counts: ImportCounts = { imported: 0, present: 0, expired: 0, unreadable: 0, failed: 0 }
  const { table, columns } = from
  const [idColumn, expiresColumn] = columns
  const bar = createProgressBar({
    enabled: showProgress,
    total: 1,
    format: 'import {bar} {value}/{total} sessions',
  })
  try {
    const startedAt = Math.floor(Date.now() / 1000)
    if (showProgress) {
      const [rows] = await source.query<mysql.RowDataPacket[]>({
        sql: 'SELECT COUNT(*) AS n FROM ?? WHERE ?? > ?',
        values: [table, expiresColumn, startedAt],
        timeout: SOURCE_STATEMENT_MILLIS,
      })
      bar.setTotal(Number(rows[0]?.['n'] ?? 0))
    }
    let after = ''
    let done = 0
    for (;;) {
      const [rows] = await source.query<mysql.RowDataPacket[]>({
        sql:
          'SELECT ?? AS id, ?? AS expires, ?? AS data FROM ?? WHERE ?? > ? AND ?? > ? ' +
          'ORDER BY ?? LIMIT ?',
        values: [...columns, table, idColumn, after, expiresColumn, startedAt, idColumn, batchSize],
        timeout: SOURCE_STATEMENT_MILLIS,
      })
      if (rows.length === 0) break
      after = String(rows[rows.length - 1]?.['id'])
      await inParallel(rows as SourceRow[], WRITES_IN_FLIGHT, async (row) => {
        const outcome = await importRow(manager, row, counts)
        counts[outcome] += 1
        bar.update(++done)
      })
      if (rows.length < batchSize) break
    }
  } catch (error) {
    counts.sourceError = errorCode(error)
  } finally {
    bar.stop()
  }
  return counts
}

/**
 * Writes one session where the Express store reads it, only if the stores hold no row for it
 * (compare-and-set at version 0): a newer write, or a logout's tombstone, stays.
 */
async function importRow(
  manager: SessionManager,
  row: SourceRow,
  counts: ImportCounts,
): Promise<Outcome> {
  const session = importedSession(row, Date.now())
  if (typeof session === 'string') return session
  try {
    const key = manager.sessionKey(String(row.id))
    const written = await manager.writeSession(key, session.data, {
      expiresAt: session.expiresAt,
      expectedVersion: 0,
    })
    return written.dropped ? 'present' : 'imported'
  } catch (error) {
    if (error instanceof VersionConflictError) return 'present'
    if (
      error instanceof InvalidSessionDataError ||
      error instanceof SessionTooLargeError ||
      error instanceof InvalidSessionIdError
    ) {
      return 'unreadable'
    }
    counts.firstFailure ??= oneLine(error instanceof Error ? error.message : String(error))
    return 'failed'
  }
}

/** Runs `work` on every item, at most `limit` at once. */
async function inParallel<T>(
  items: readonly T[],
  limit: number,
  work: (item: T) => Promise<void>,
): Promise<void> {
  let next = 0
  const lane = async (): Promise<void> => {
    while (next < items.length) await work(items[next++] as T)
  }
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, lane))
}

/** A driver error's code (ER_NO_SUCH_TABLE, ECONNREFUSED...): what failed, without values. */
function errorCode(error: unknown): string {
  const code = (error as { code?: unknown } | null)?.code
  return typeof code === 'string' && /^[A-Z0-9_]{1,64}$/.test(code) ? code : 'unknown error'
}
