/** The errors of the local test cluster. */
import { SessionShardsError } from '../errors.js'

/**
 * No `mariadbd` or `mysqld` was found, so no local store can be started.
 *
 * @example
 * ```ts
 * try {
 *   await startLocalCluster()
 * } catch (error) {
 *   if (error instanceof ServerBinaryNotFoundError) console.error(error.message)
 *   else throw error
 * }
 * ```
 */
export class ServerBinaryNotFoundError extends SessionShardsError {
  /** Always `'SERVER_BINARY_NOT_FOUND'`. */
  declare readonly code: 'SERVER_BINARY_NOT_FOUND'

  constructor(message?: string) {
    super(
      'SERVER_BINARY_NOT_FOUND',
      message ??
        'No MySQL-protocol server found (looked for mariadbd, mysqld): install one with `apt-get install -y mariadb-server`, or point the tests at running servers with SESSION_SHARDS_TEST_STORES.',
    )
  }
}

/**
 * A local store did not come up: its server exited during startup, or did not accept a login in
 * time. The message ends with the last lines of the server's error log (the password is masked).
 */
export class LocalStoreStartError extends SessionShardsError {
  /** Always `'LOCAL_STORE_START_FAILED'`. */
  declare readonly code: 'LOCAL_STORE_START_FAILED'
  /** Id of the store that failed. */
  readonly storeId: string
  /** The server's error log, for the full story. */
  readonly errorLogPath: string
  /** The last lines of that log, password masked. */
  readonly errorLogTail: string

  constructor(
    message: string,
    details: { storeId: string; errorLogPath: string; errorLogTail: string; cause?: unknown },
  ) {
    super(
      'LOCAL_STORE_START_FAILED',
      details.errorLogTail === ''
        ? `${message} (error log ${details.errorLogPath} is empty)`
        : `${message}; last lines of ${details.errorLogPath}:\n${details.errorLogTail}`,
      details.cause === undefined ? undefined : { cause: details.cause },
    )
    this.storeId = details.storeId
    this.errorLogPath = details.errorLogPath
    this.errorLogTail = details.errorLogTail
  }
}
