import mysql from 'mysql2/promise'
import type { Pool, PoolOptions } from 'mysql2/promise'
import type { LocalStoreConfig } from '../../lib/local-cluster/index.js'

/**
 * A plain mysql2 pool on one local store, with the options the library's StorePool uses, for
 * the raw side of a comparison or for loading data behind the library's back. `overrides`
 * (e.g. `{ trace: false }`, which the library also sets) go last.
 */
export function rawPool(
  config: LocalStoreConfig,
  connections: number,
  overrides: PoolOptions = {},
): Pool {
  const { id: _id, ...connection } = config
  const options: PoolOptions = {
    ...connection,
    connectionLimit: connections,
    maxIdle: connections,
    connectTimeout: 2000,
    enableKeepAlive: true,
    supportBigNumbers: true,
    ...overrides,
  }
  return mysql.createPool(options)
}
