/** The tables every store holds: the statements that create them, and the check of tables already there. */
import { SchemaMismatchError } from './errors.js'

/**
 * The table every store holds. One row per session copy:
 * - `version` only grows for a session (see version-clock.ts);
 * - `expires_at` is milliseconds since the epoch, so sub-second TTLs work;
 * - `deleted = 1` marks a tombstone: the session was destroyed and must never come back;
 * - `ttl_seconds` is a per-session timeout that later writes keep (NULL: the manager's default);
 * - `owner` (indexed) serves per-user lookups (the `ownerKey` option).
 * The locks table holds lease locks; it lives on each session's first store in service.
 * The hints table lists, per store, the sessions it missed while other stores took its writes.
 * The stale table lists, per store, the managers whose writes it missed and that have not yet
 * seen it caught up: while a row stands, no manager reads that store alone.
 * The peers table lists each live manager's placement configuration (store ids, placement,
 * copies), so that managers configured differently find out.
 * Ids are VARBINARY so comparisons are byte-exact and case-sensitive everywhere.
 */

/** MySQL's limit on an identifier: table and index names alike. */
const MAX_IDENTIFIER_LENGTH = 64
/** The longest suffix a name made from the table's carries: the expiry index's. */
const LONGEST_SUFFIX = '_expires_at'

/**
 * The longest table name: 53 characters, so that `<table>_expires_at`, the longest name made
 * from it (the other tables and indexes add 6: `_hints`, `_owner`...), fits MySQL's 64.
 * test/schema.ts applies the schema with a name this long and checks every name it makes.
 */
export const MAX_TABLE_NAME_LENGTH = MAX_IDENTIFIER_LENGTH - LONGEST_SUFFIX.length

const TABLE_NAME = new RegExp(`^(?![0-9]+$)[A-Za-z0-9_$]{1,${MAX_TABLE_NAME_LENGTH}}$`)

/** The table of lease locks, kept on a session's first store in service. */
export function locksTableName(table: string): string {
  return `${table}_locks`
}

/** The table of hinted handoffs: sessions a store missed while it was down, kept on the stores that took them. */
export function hintsTableName(table: string): string {
  return `${table}_hints`
}

/** The table of stale announcements: stores that missed a manager's writes (see read-lease.ts). */
export function staleTableName(table: string): string {
  return `${table}_stale`
}

/** The table of peers: each manager's placement configuration, to catch mismatches (config-guard.ts). */
export function peersTableName(table: string): string {
  return `${table}_peers`
}

/** Whether `name` can be used as the session table name (it is spliced into SQL, so this is strict). */
export function isValidTableName(name: unknown): name is string {
  return typeof name === 'string' && TABLE_NAME.test(name)
}

/** A table of the schema: its column definitions (each starts with the column's name) and keys. */
interface TableDefinition {
  name: string
  columns: readonly string[]
  keys: readonly string[]
}

/** The tables every store holds, for the session table `table`. */
function tableDefinitions(table: string): TableDefinition[] {
  if (!isValidTableName(table)) throw new TypeError('invalid table name')
  return [
    {
      name: table,
      columns: [
        'id VARBINARY(128) NOT NULL',
        'version BIGINT UNSIGNED NOT NULL',
        'expires_at BIGINT NOT NULL',
        'deleted TINYINT NOT NULL DEFAULT 0',
        'data MEDIUMBLOB NULL',
        'ttl_seconds INT UNSIGNED NULL',
        'owner VARBINARY(255) NULL',
      ],
      keys: [
        'PRIMARY KEY (id)',
        `KEY \`${table}_expires_at\` (expires_at)`,
        `KEY \`${table}_owner\` (owner)`,
      ],
    },
    {
      name: hintsTableName(table),
      columns: [
        'target_store VARBINARY(64) NOT NULL',
        'id VARBINARY(128) NOT NULL',
        'created_at BIGINT NOT NULL',
        'version BIGINT UNSIGNED NOT NULL DEFAULT 0',
      ],
      keys: ['PRIMARY KEY (target_store, id)'],
    },
    {
      name: locksTableName(table),
      columns: [
        'id VARBINARY(128) NOT NULL',
        'token VARBINARY(64) NOT NULL',
        'expires_at BIGINT NOT NULL',
      ],
      keys: ['PRIMARY KEY (id)'],
    },
    {
      name: staleTableName(table),
      columns: [
        'target_store VARBINARY(64) NOT NULL',
        'manager VARBINARY(64) NOT NULL',
        'generation BIGINT UNSIGNED NOT NULL',
        'expires_at BIGINT NOT NULL',
      ],
      keys: ['PRIMARY KEY (target_store, manager)'],
    },
    {
      name: peersTableName(table),
      columns: [
        'manager VARBINARY(64) NOT NULL',
        'fingerprint VARBINARY(64) NOT NULL',
        'config BLOB NOT NULL',
        'expires_at BIGINT NOT NULL',
      ],
      keys: ['PRIMARY KEY (manager)'],
    },
  ]
}

/** The statements that create the session table; idempotent, for MySQL 5.7/8.x and MariaDB 10.5+. */
export function schemaStatements(table: string): string[] {
  return tableDefinitions(table).map(
    ({ name, columns, keys }) =>
      `CREATE TABLE IF NOT EXISTS \`${name}\` (\n  ${[...columns, ...keys].join(',\n  ')}\n) ENGINE=InnoDB`,
  )
}

/** A column added since the first release: tables created before it get it on the next schema apply. */
export interface SchemaUpgrade {
  table: string
  column: string
  /** The statement that adds it (MySQL has no ADD COLUMN IF NOT EXISTS). */
  add: string
}

/** The columns later versions added, for tables created before them. */
export function schemaUpgrades(table: string): SchemaUpgrade[] {
  if (!isValidTableName(table)) throw new TypeError('invalid table name')
  const hints = hintsTableName(table)
  return [
    {
      table: hints,
      column: 'version',
      add: `ALTER TABLE \`${hints}\` ADD COLUMN version BIGINT UNSIGNED NOT NULL DEFAULT 0`,
    },
  ]
}

/** The columns of each table of the schema that `present` (table and column names) lacks. */
export function missingColumns(
  table: string,
  present: readonly { table: string; column: string }[],
): { table: string; columns: string[] }[] {
  // Table and column names compare without case: MySQL's do on some systems, and a column's always.
  const found = new Set(present.map((row) => `${row.table}.${row.column}`.toLowerCase()))
  return tableDefinitions(table).flatMap(({ name, columns }) => {
    const missing = columns
      .map((definition) => definition.split(' ', 1)[0] as string)
      .filter((column) => !found.has(`${name}.${column}`.toLowerCase()))
    return missing.length > 0 ? [{ table: name, columns: missing }] : []
  })
}

/**
 * Creates the tables of `table` that are missing, checks that the tables already there are the
 * schema's, and adds to tables an earlier version created the columns added since, sending each
 * statement with `run`. A table of one of those names that lacks the schema's columns (another
 * tool's `sessions`, say) rejects with {@link SchemaMismatchError} before anything is added to
 * it: it is left as it was.
 */
export async function applySchema(
  table: string,
  run: (sql: string, params: unknown[]) => Promise<unknown>,
): Promise<void> {
  for (const sql of schemaStatements(table)) await run(sql, [])
  const names = tableDefinitions(table).map(({ name }) => name)
  const present = (await run(
    'SELECT TABLE_NAME AS `table`, COLUMN_NAME AS `column` FROM information_schema.COLUMNS ' +
      `WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME IN (${names.map(() => '?').join(', ')})`,
    names,
  )) as { table: string; column: string }[]
  const upgrades = schemaUpgrades(table)
  const added = (name: string, column: string): boolean =>
    upgrades.some((upgrade) => upgrade.table === name && upgrade.column === column)
  const missing = missingColumns(table, present)
  const foreign = missing
    .map(({ table: name, columns }) => ({
      table: name,
      columns: columns.filter((column) => !added(name, column)),
    }))
    .find(({ columns }) => columns.length > 0)
  if (foreign !== undefined) throw new SchemaMismatchError(foreign.table, foreign.columns)
  for (const { table: name, column, add } of upgrades) {
    const lacking = missing.some((m) => m.table === name && m.columns.includes(column))
    if (lacking) await run(add, []).catch(addedMeanwhile)
  }
}

/**
 * Swallows the error of an ADD COLUMN that another apply (an app server starting at the same
 * time) ran first: the column is there, which is all the upgrade wants.
 */
function addedMeanwhile(error: unknown): void {
  if ((error as { code?: unknown }).code !== 'ER_DUP_FIELDNAME') throw error
}

/** The content of schema.sql: the statements for the default table, each ended by ";". */
export function schemaFile(table = 'sessions'): string {
  return (
    '-- session-shards schema: apply to every store (idempotent).\n' +
    '-- Generated from lib/schema.ts; test/schema.ts keeps the two equal.\n' +
    schemaStatements(table)
      .map((statement) => `${statement};\n`)
      .join('\n')
  )
}
