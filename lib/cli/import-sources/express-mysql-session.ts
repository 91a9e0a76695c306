/** `session-shards import express-mysql-session`: the rows of its table, read in pages by id. */
import mysql from 'mysql2/promise'
import { UsageError } from '../command.js'
import type { SourceRow } from '../imported-session.js'
import { driverErrorCode, type ImportSource, type SourceKind } from './source.js'

/** A table or column name as MySQL writes it unquoted: nothing a caller could smuggle SQL in. */
const IDENTIFIER = /^[A-Za-z0-9_$]{1,64}$/
/** express-mysql-session's column names, unless its `schema.columnNames` changed them. */
export const DEFAULT_COLUMNS = ['session_id', 'expires', 'data'] as const
const CONNECT_TIMEOUT_MILLIS = 10_000
/** How long one statement on the source may take (a page, or the count for the progress bar). */
const STATEMENT_MILLIS = 120_000

/** One row as the page statement names its columns. */
interface TableRow {
  id: string
  /** Unix seconds, rounded by express-mysql-session from the cookie's expiry. */
  expires: number | string
  data: string | Buffer | null
}

export const expressMysqlSession: SourceKind = {
  options: { table: { type: 'string' }, columns: { type: 'string' } },
  schemes: ['mysql:'],
  uriForm: 'mysql://user:pass@host:3306/db',
  pathRequired: true,
  create(values, uri, batchSize) {
    const [table, columns] = tableAndColumns(values['table'], values['columns'])
    return new TableSource(uri, table, columns, batchSize)
  },
}

/** `--table` and `--columns`, checked: names only, never SQL; the message never repeats them. */
function tableAndColumns(
  table: string | boolean | undefined = 'sessions',
  columns: string | boolean | undefined = DEFAULT_COLUMNS.join(','),
): [string, [string, string, string]] {
  if (typeof table !== 'string' || !IDENTIFIER.test(table)) {
    throw new UsageError('--table must be 1 to 64 letters, digits, _ or $')
  }
  const names = typeof columns === 'string' ? columns.split(',') : []
  if (names.length !== 3 || !names.every((name) => IDENTIFIER.test(name))) {
    throw new UsageError(
      '--columns must be three names (id, expires, data), each 1 to 64 letters, digits, _ or $',
    )
  }
  return [table, names as [string, string, string]]
}

class TableSource implements ImportSource {
  readonly where: Record<string, string>
  readonly name: string
  readonly #uri: URL
  readonly #table: string
  readonly #columns: [id: string, expires: string, data: string]
  readonly #batchSize: number
  #connection: mysql.Connection | undefined

  constructor(uri: URL, table: string, columns: [string, string, string], batchSize: number) {
    this.#uri = uri
    this.#table = table
    this.#columns = columns
    this.#batchSize = batchSize
    this.where = { table }
    this.name = table
  }

  async open(): Promise<void> {
    try {
      this.#connection = await mysql.createConnection({
        uri: this.#uri.href,
        connectTimeout: CONNECT_TIMEOUT_MILLIS,
        supportBigNumbers: true,
      })
    } catch (error) {
      throw new Error(`could not connect to the source (${driverErrorCode(error)})`)
    }
  }

  async count(now: number): Promise<number> {
    const [rows] = await this.#open().query<mysql.RowDataPacket[]>({
      sql: 'SELECT COUNT(*) AS n FROM ?? WHERE ?? > ?',
      values: [this.#table, this.#columns[1], Math.floor(now / 1000)],
      timeout: STATEMENT_MILLIS,
    })
    return Number(rows[0]?.['n'] ?? 0)
  }

  async *pages(now: number): AsyncIterable<readonly SourceRow[]> {
    const [idColumn, expiresColumn] = this.#columns
    const table = this.#table
    let after = ''
    for (;;) {
      const [rows] = await this.#open().query<mysql.RowDataPacket[]>({
        sql:
          'SELECT ?? AS id, ?? AS expires, ?? AS data FROM ?? WHERE ?? > ? AND ?? > ? ' +
          'ORDER BY ?? LIMIT ?',
        values: [
          ...this.#columns,
          table,
          idColumn,
          after,
          expiresColumn,
          Math.floor(now / 1000),
          idColumn,
          this.#batchSize,
        ],
        timeout: STATEMENT_MILLIS,
      })
      if (rows.length === 0) return
      after = String(rows[rows.length - 1]?.['id'])
      yield (rows as TableRow[]).map((row) => ({
        id: String(row.id),
        data: row.data,
        expiresAt: Number(row.expires) * 1000,
      }))
      if (rows.length < this.#batchSize) return
    }
  }

  errorCode(error: unknown): string {
    return driverErrorCode(error)
  }

  async close(): Promise<void> {
    await this.#connection?.end().catch(() => undefined)
  }

  #open(): mysql.Connection {
    if (this.#connection === undefined) throw new Error('the source is not open')
    return this.#connection
  }
}
