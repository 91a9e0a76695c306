/** Connection settings of a local store, and one-off queries to it. */
import { createConnection, type Connection } from 'mysql2/promise'

/**
 * Where a store listens and how to log in; the shape the session manager's `stores` option
 * takes.
 */
export interface LocalStoreConfig {
  /** Stable store id, e.g. `'store-a'`. */
  id: string
  /** Always `'127.0.0.1'` for a local store. */
  host: string
  port: number
  user: string
  password: string
  database: string
}

/** Options of {@link LocalStore.query}. */
export interface LocalQueryOptions {
  /**
   * Give up (and reject) when connecting plus running the statement takes longer than this.
   * Connecting alone is limited to the smaller of this and 2000 ms.
   * @default 10000
   */
  timeoutMillis?: number
}

const CONNECT_TIMEOUT_MILLIS = 2000

/**
 * Runs one statement on a fresh connection to `config`'s database and closes it. Rows of a
 * SELECT come back as objects; a statement without rows gives a one-element array holding its
 * result header (`affectedRows`, `insertId`).
 */
export async function queryStore<T>(
  config: LocalStoreConfig,
  sql: string,
  params: unknown[] | undefined,
  options: LocalQueryOptions = {},
): Promise<T[]> {
  const timeoutMillis = options.timeoutMillis ?? 10_000
  const connection: Connection = await createConnection({
    host: config.host,
    port: config.port,
    user: config.user,
    password: config.password,
    database: config.database,
    connectTimeout: Math.min(CONNECT_TIMEOUT_MILLIS, timeoutMillis),
  })
  try {
    const [result] = await connection.query({ sql, values: params, timeout: timeoutMillis })
    await connection.end()
    return (Array.isArray(result) ? result : [result]) as T[]
  } catch (error) {
    connection.destroy()
    throw error
  }
}
