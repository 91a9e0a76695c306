import type { Pool, ResultSetHeader, RowDataPacket } from 'mysql2/promise'
import type { BuiltLibrary } from './built-library.js'

/**
 * The library's own read and upsert, sent through plain mysql2 pools: the "raw" side every
 * benchmark compares with. Statements and parameters come from the compiled library, so the
 * raw side always sends exactly what a Store sends.
 */
export class RawStatements {
  readonly #read: string
  readonly #statements: ReturnType<BuiltLibrary['statements']['sessionStatements']>
  readonly #library: BuiltLibrary
  readonly #ttlSeconds: number
  #lastVersion = 0

  constructor(library: BuiltLibrary, table: string, ttlSeconds: number) {
    const statements = library.statements.sessionStatements(table)
    this.#read = statements.read.text()
    this.#statements = statements
    this.#library = library
    this.#ttlSeconds = ttlSeconds
  }

  /** The read on the first pool, decoded as the library decodes (rejects if there is no row). */
  async read(pools: readonly Pool[], sessionId: string): Promise<unknown> {
    const [rows] = await (pools[0] as Pool).execute<RowDataPacket[]>(this.#read, [sessionId])
    const row = rows[0]
    if (row === undefined || row.data === null) throw new Error('raw read found no row.')
    return this.#library.index.jsonCodec.decode(row.data as Buffer)
  }

  /** The upsert, with the parameters a Store's write sends, on the first `copies` pools in parallel. */
  async write(
    pools: readonly Pool[],
    sessionId: string,
    data: unknown,
    copies: 1 | 2,
  ): Promise<void> {
    // Encoding is work any caller has to do, so the raw side does it too.
    const bytes = Buffer.from(JSON.stringify(data), 'utf8')
    this.#lastVersion = Math.max(Date.now() * 1000, this.#lastVersion + 1)
    const now = Date.now()
    const write = this.#statements.write
    const input = {
      sessionId,
      data: bytes,
      fields: {
        version: this.#lastVersion,
        now,
        expiresAtMillis: now + this.#ttlSeconds * 1000,
        explicitExpiry: false,
        ttlSeconds: null,
        owner: null,
        expectedVersion: undefined,
        createsAbsent: false,
      },
    }
    const params = write.params(input) as (string | number | Buffer | null)[]
    await Promise.all(
      pools
        .slice(0, copies)
        .map((pool) => pool.execute<ResultSetHeader>(write.text(input), params)),
    )
  }
}
