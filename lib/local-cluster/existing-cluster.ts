/** Running servers presented as a local cluster that cannot be crashed (for tests against given stores). */
import { inspect } from 'node:util'
import type { LocalCluster } from './local-cluster.js'
import type { LocalStore } from './local-store.js'
import { queryStore, type LocalQueryOptions, type LocalStoreConfig } from './query.js'

/**
 * Parses `id=mysql://user:pass@host:port/db,id2=mysql://...` (user and password URL-encoded).
 *
 * @throws TypeError naming `variable` and the faulty entry, without its password.
 */
export function parseStoreList(spec: string, variable: string): LocalStoreConfig[] {
  const configs: LocalStoreConfig[] = []
  for (const entry of spec
    .split(',')
    .map((part) => part.trim())
    .filter((part) => part !== '')) {
    const equals = entry.indexOf('=')
    const id = entry.slice(0, equals).trim()
    let url: URL | undefined
    try {
      url = new URL(entry.slice(equals + 1).trim())
    } catch {
      url = undefined
    }
    const database = url?.pathname.replace(/^\//, '') ?? ''
    if (equals <= 0 || url === undefined || url.protocol !== 'mysql:' || database === '') {
      const shown = id === '' ? `entry ${configs.length + 1}` : `entry "${id}"`
      throw new TypeError(
        `${variable} ${shown} must look like id=mysql://user:password@host:port/database`,
      )
    }
    configs.push({
      id,
      host: url.hostname,
      port: url.port === '' ? 3306 : Number(url.port),
      user: decodeURIComponent(url.username),
      password: decodeURIComponent(url.password),
      database: decodeURIComponent(database),
    })
  }
  if (configs.length === 0) throw new TypeError(`${variable} lists no stores`)
  return configs
}

class ExistingStore implements LocalStore {
  readonly id: string
  readonly #config: LocalStoreConfig

  constructor(config: LocalStoreConfig) {
    this.id = config.id
    this.#config = { ...config }
  }

  get host(): string {
    return this.#config.host
  }
  get port(): number {
    return this.#config.port
  }
  get config(): LocalStoreConfig {
    return { ...this.#config }
  }
  get uri(): string {
    const { user, password, host, port, database } = this.#config
    return `mysql://${encodeURIComponent(user)}:${encodeURIComponent(password)}@${host}:${port}/${encodeURIComponent(database)}`
  }
  get pid(): undefined {
    return undefined
  }
  get running(): boolean {
    return true
  }
  get paused(): boolean {
    return false
  }

  #unsupported(operation: string): Error {
    return new Error(
      `Store ${this.id} is an existing server that session-shards did not start, so ${operation}() is not possible: check the cluster's canCrash before crashing stores.`,
    )
  }

  kill(): Promise<void> {
    return Promise.reject(this.#unsupported('kill'))
  }
  pause(): Promise<void> {
    throw this.#unsupported('pause')
  }
  resume(): void {
    throw this.#unsupported('resume')
  }
  start(): Promise<void> {
    return Promise.reject(this.#unsupported('start'))
  }
  stop(): Promise<void> {
    return Promise.reject(this.#unsupported('stop'))
  }
  wipe(): Promise<void> {
    return Promise.reject(this.#unsupported('wipe'))
  }
  query<T = any>(sql: string, params?: unknown[], options?: LocalQueryOptions): Promise<T[]> {
    return queryStore<T>(this.#config, sql, params, options)
  }

  [inspect.custom](): string {
    return `ExistingStore { id: '${this.id}', host: '${this.host}', port: ${this.port} }`
  }
}

/**
 * A {@link LocalCluster} over servers that are already running: queries work; crashing,
 * pausing, restarting and adding stores reject; `stop()` leaves the servers alone.
 */
export function existingCluster(configs: LocalStoreConfig[]): LocalCluster {
  const stores: LocalStore[] = configs.map((config) => new ExistingStore(config))
  return {
    baseDir: '',
    stores,
    store(id: string): LocalStore {
      const found = stores.find((store) => store.id === id)
      if (found === undefined) {
        throw new Error(`No store "${id}" (stores: ${stores.map((store) => store.id).join(', ')}).`)
      }
      return found
    },
    storeConfigs: () => stores.map((store) => store.config),
    addStore: (id: string) =>
      Promise.reject(new Error(`Cannot add store ${id}: the cluster is made of existing servers.`)),
    stop: () => Promise.resolve(),
  }
}
