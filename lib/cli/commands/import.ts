/**
 * `session-shards import <kind>`: the live sessions of the store an app is leaving
 * (express-mysql-session, connect-redis) copied into the stores, so that switching over logs
 * nobody out. The sources read (import-sources/); this writes, counts and reports.
 */
import {
  InvalidSessionDataError,
  InvalidSessionIdError,
  SessionTooLargeError,
  VersionConflictError,
} from '../../errors.js'
import type { SessionManager } from '../../session-manager.js'
import type { Command } from '../command.js'
import { batchSizeArgument, MAX_BATCH_SIZE, UsageError } from '../command.js'
import { loadCommandConfig } from '../config.js'
import { importedSession, type SourceRow } from '../imported-session.js'
import { connectRedis } from '../import-sources/connect-redis.js'
import { DEFAULT_COLUMNS, expressMysqlSession } from '../import-sources/express-mysql-session.js'
import {
  IMPORT_SOURCE_VARIABLE,
  sourceUri,
  type ImportSource,
  type SourceKind,
} from '../import-sources/source.js'
import { openManager } from '../manager.js'
import { forEachPaged } from '../paged-work.js'
import { EXIT_OK, EXIT_PROBLEM, formatCount, oneLine } from '../output.js'
import { createProgressBar, progressWanted } from '../progress.js'

/** Every kind of source, by the name the command line gives it. */
const KINDS: Record<string, SourceKind> = {
  'express-mysql-session': expressMysqlSession,
  'connect-redis': connectRedis,
}
/** Writes in flight at once: enough to keep the stores busy, few enough not to crowd an app. */
const WRITES_IN_FLIGHT = 32
const DEFAULT_BATCH_SIZE = 500

/** What became of one source session. */
type Outcome = 'imported' | 'present' | 'expired' | 'unreadable' | 'failed'

export const importCommand: Command = {
  help: `Usage: session-shards import express-mysql-session [--table NAME] [--columns I,E,D]
       session-shards import connect-redis [--prefix P]
                             [--batch-size N] [--config <file>] [--json]

Copies the live sessions of the store an app is leaving into the configured stores, so that
the app logs nobody out when it moves to session-shards. The source is the URI in
${IMPORT_SOURCE_VARIABLE} (from the environment, since arguments show in ps):

  express-mysql-session   mysql://user:pass@host:3306/db: its table, read N rows per
                          statement in the order of the session id
  connect-redis           redis://user:pass@host:6379/0 (or rediss://): the keys that start
                          with the prefix, read with SCAN, about N per step; needs the redis
                          package (npm install redis)

Each session keeps its id (or the key an unusual id maps to, where the Express store looks
for it), its data, cookie included, and its expiry (the cookie's, else the source's, else
the stores' ttlSeconds); expired sessions are skipped. A session the stores already hold,
live or logged out, is left as it is: the import never overwrites a newer session, nor brings
back a destroyed one while its tombstone lives (tombstoneTtlSeconds at least: keep it at
the old app's session lifetime). It copies each session once: a change or logout on the
old app after that is not carried over, so import once the old app no longer changes them.
The source is only read. With secrets, set acceptUnsignedIds while sessions from before the
switch live.
Shows a progress bar on a terminal.

  --table NAME       express-mysql-session: the table (default sessions)
  --columns I,E,D    express-mysql-session: its id, expires and data columns, if its
                     schema.columnNames renamed them (default ${DEFAULT_COLUMNS.join(',')})
  --prefix P         connect-redis: the key prefix (default sess:)
  --batch-size N     sessions read per step, at most ${formatCount(MAX_BATCH_SIZE)} (default ${DEFAULT_BATCH_SIZE})

Exit code: 0 every live session imported or already there, 1 a session could not be
written or read (a store down, data that is not a JSON object) or the source failed,
2 usage or configuration error.`,
  options: Object.assign(
    { 'batch-size': { type: 'string' } } as const,
    ...Object.values(KINDS).map((kind) => kind.options),
  ),
  async run(context) {
    const [kindName, ...rest] = context.positionals
    // An own key only: "constructor" or "__proto__" must not find Object's.
    const kind =
      kindName === undefined || !Object.hasOwn(KINDS, kindName) ? undefined : KINDS[kindName]
    if (kind === undefined || rest.length > 0) {
      throw new UsageError(
        `import takes the source kind: session-shards import ${Object.keys(KINDS).join('|')}`,
      )
    }
    for (const [name, value] of Object.entries(context.values)) {
      const elsewhere = Object.entries(KINDS).find(
        ([other, otherKind]) => other !== kindName && name in otherKind.options,
      )
      if (value !== undefined && elsewhere !== undefined && !(name in kind.options)) {
        throw new UsageError(`--${name} is an option of import ${elsewhere[0]}`)
      }
    }
    // At most two pages of the source held at once (the one worked on, the one read ahead),
    // each of at most MAX_BATCH_SIZE sessions.
    const batchSize = batchSizeArgument(context.values['batch-size']) ?? DEFAULT_BATCH_SIZE
    const { uri, password } = sourceUri(kind)
    const source = kind.create(context.values, uri, batchSize)
    const config = await loadCommandConfig(context)
    if (config.resolved.idSigner !== null && config.options.acceptUnsignedIds !== true) {
      throw new UsageError(
        'with secrets, imported ids are unsigned and would read as no session: set acceptUnsignedIds',
      )
    }
    const { out } = context
    out.addSecrets([password].filter((secret) => secret !== ''))
    // The source first: one that cannot be read (unreachable, a driver not installed) stops the
    // command before any store is asked anything.
    await source.open()
    let manager: SessionManager | undefined
    try {
      manager = await openManager(config)
      const { ttlSeconds, tombstoneTtlSeconds } = config.resolved
      const counts = await copySessions(
        source,
        manager,
        { ttlSeconds, tombstoneTtlSeconds },
        progressWanted(out.json),
      )
      const ok = counts.unreadable === 0 && counts.failed === 0 && counts.sourceError === undefined
      out.result({ ok, ...source.where, ...counts })
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
      if (counts.outlivingTombstones > 0) {
        out.line(
          `${formatCount(counts.outlivingTombstones)} imported session(s) live longer than ` +
            `tombstoneTtlSeconds (${formatCount(tombstoneTtlSeconds)}): a logout of one is ` +
            'forgotten once its tombstone is swept, and an import run after that brings it back ' +
            'if the old table still holds it live. Raise tombstoneTtlSeconds to the old ' +
            "app's session lifetime.",
        )
      }
      out.line(
        `${formatCount(counts.imported)} session(s) imported from ${source.name}, ` +
          `${formatCount(counts.present)} already there.`,
      )
      return ok ? EXIT_OK : EXIT_PROBLEM
    } finally {
      await Promise.all([manager?.close(), source.close()])
    }
  },
}

interface ImportCounts {
  imported: number
  /** Sessions the stores already held (live, expired or destroyed): left as they were. */
  present: number
  /** Sessions whose cookie expired though the source's copy had not yet (it may round). */
  expired: number
  /**
   * Sessions whose data is not a JSON object the stores accept, whose expiry no Date can hold,
   * or whose id is unusable.
   */
  unreadable: number
  /** Writes that failed (no store reachable, a timeout): run the import again. */
  failed: number
  /**
   * Imported sessions that live longer than a tombstone is kept: once one is logged out and
   * its tombstone swept, a later run that finds it live in the source writes it again.
   */
  outlivingTombstones: number
  firstFailure?: string
  /** Why reading the source stopped early, if it did. */
  sourceError?: string
}

/** Reads the source page by page and writes each page's live sessions, a few at a time. */
async function copySessions(
  source: ImportSource,
  manager: SessionManager,
  settings: { ttlSeconds: number; tombstoneTtlSeconds: number },
  showProgress: boolean,
): Promise<ImportCounts> {
  const counts: ImportCounts = {
    imported: 0,
    present: 0,
    expired: 0,
    unreadable: 0,
    failed: 0,
    outlivingTombstones: 0,
  }
  const bar = createProgressBar({
    enabled: showProgress,
    total: 1,
    format: 'import {bar} {value}/{total} sessions',
  })
  try {
    const startedAt = Date.now()
    if (showProgress) bar.setTotal(await source.count(startedAt))
    let done = 0
    const lifetimes = {
      ttlSeconds: settings.ttlSeconds,
      tombstonesKeptUntil: startedAt + settings.tombstoneTtlSeconds * 1000,
    }
    await forEachPaged(source.pages(startedAt), WRITES_IN_FLIGHT, async (row) => {
      const outcome = await importRow(manager, row, counts, lifetimes)
      counts[outcome] += 1
      bar.update(++done)
    })
  } catch (error) {
    counts.sourceError = source.errorCode(error)
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
  lifetimes: { ttlSeconds: number; tombstonesKeptUntil: number },
): Promise<Outcome> {
  const session = importedSession(row, Date.now())
  if (typeof session === 'string') return session
  try {
    const key = manager.sessionKey(row.id)
    const written = await manager.writeSession(key, session.data, {
      expiresAt: session.expiresAt,
      expectedVersion: 0,
    })
    if (written.dropped) return 'present'
    const expiresAt = session.expiresAt ?? Date.now() + lifetimes.ttlSeconds * 1000
    if (expiresAt > lifetimes.tombstonesKeptUntil) counts.outlivingTombstones += 1
    return 'imported'
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
