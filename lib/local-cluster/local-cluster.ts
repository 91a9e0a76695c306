/** Several local mariadbd/mysqld stores, started, crashed, hung and restarted by tests and demos. */
import { mkdir, mkdtemp, rm } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { ensureDataTemplate } from './data-template.js'
import { debug } from '../debug.js'
import { ServerBinaryNotFoundError } from './errors.js'
import { BASE_DIR_PREFIX, reapLeftovers, writeOwnerFile } from './leftovers.js'
import { LocalStoreProcess, type LocalStore, type StoreContext } from './local-store.js'
import { randomPassword } from './init-file.js'
import type { LocalStoreConfig } from './query.js'
import { describeServerBinary, findServerBinary, type ServerBinary } from './server-binary.js'

/** Options of {@link startLocalCluster}. */
export interface LocalClusterOptions {
  /**
   * Ids of the stores to start (the session manager's rule: letters, digits, `.`, `_`, `:`,
   * `-`, starting with a letter or digit). Takes precedence over
   * {@link LocalClusterOptions.stores}.
   */
  storeIds?: string[]
  /**
   * How many stores to start, with ids `store-a`, `store-b`, ...
   * @default 3
   */
  stores?: number
  /**
   * Password of the `shards` user on every store.
   * @default a random password per cluster
   */
  password?: string
  /**
   * Directory for the stores' data, sockets and logs. {@link LocalCluster.stop} removes what the
   * cluster created in it, and the directory itself only when it was created by the cluster.
   * @default a new `session-shards-cluster-*` directory in `os.tmpdir()`
   */
  baseDir?: string
  /**
   * Path of the `mariadbd` or `mysqld` to run.
   * @default the first found by {@link findServerBinary}
   */
  serverBinary?: string
  /**
   * SIGKILL every server still running when this process exits or gets SIGINT, SIGTERM or
   * SIGHUP (the signal is then re-raised if nothing else handles it).
   * @default true
   */
  killOnExit?: boolean
}

/**
 * Several local stores started by {@link startLocalCluster}.
 *
 * @example
 * ```ts
 * const cluster = await startLocalCluster({ stores: 3 })
 * try {
 *   const manager = new SessionManager({ stores: cluster.storeConfigs() })
 *   // ...
 * } finally {
 *   await cluster.stop()
 * }
 * ```
 */
export interface LocalCluster {
  /** Directory holding one sub-directory per store. */
  readonly baseDir: string
  /** The stores, in the order they were added. */
  readonly stores: LocalStore[]
  /**
   * The store with this id.
   * @throws Error when there is none.
   */
  store(id: string): LocalStore
  /** Connection settings of every store, for the session manager's `stores` option. */
  storeConfigs(): LocalStoreConfig[]
  /** Starts one more store with an empty database; resolves once it accepts logins. */
  addStore(id: string): Promise<LocalStore>
  /**
   * Kills every server process the cluster started (SIGKILL; SIGCONT first if paused) and
   * removes the base directory. Calling it again returns the same promise.
   */
  stop(): Promise<void>
}

// The session manager's rule for store ids; also safe as a directory name.
const STORE_ID = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$/

/** `store-a` ... `store-z`, `store-aa`, `store-ab`, ... */
function defaultStoreId(index: number): string {
  let name = ''
  for (let n = index + 1; n > 0; n = Math.floor((n - 1) / 26)) {
    name = String.fromCharCode(97 + ((n - 1) % 26)) + name
  }
  return `store-${name}`
}

function storeIdsFrom(options: LocalClusterOptions): string[] {
  if (options.storeIds !== undefined) {
    const ids = options.storeIds
    if (!Array.isArray(ids) || ids.length === 0) {
      throw new TypeError('storeIds option must be a non-empty array of store ids')
    }
    if (options.stores !== undefined && options.stores !== ids.length) {
      throw new TypeError('stores option must equal storeIds.length when both are given')
    }
    return ids
  }
  const count = options.stores ?? 3
  if (!Number.isInteger(count) || count < 1) {
    throw new TypeError('stores option must be a positive integer')
  }
  return Array.from({ length: count }, (_, index) => defaultStoreId(index))
}

function checkStoreId(id: string, taken: Iterable<string>): void {
  if (typeof id !== 'string' || !STORE_ID.test(id)) {
    throw new TypeError(
      `store id ${JSON.stringify(id)} must be 1 to 64 characters of letters, digits, ".", "_", ":" or "-", starting with a letter or digit`,
    )
  }
  for (const other of taken) {
    if (other === id) throw new TypeError(`store id "${id}" is used twice`)
  }
}

function checkPassword(password: string): void {
  if (typeof password !== 'string' || password === '' || /[\r\n\0]/.test(password)) {
    throw new TypeError('password option must be a non-empty string without line breaks')
  }
}

function resolveBinary(serverBinary: string | undefined): ServerBinary {
  if (serverBinary === undefined) {
    const found = findServerBinary()
    if (found === null) throw new ServerBinaryNotFoundError()
    return found
  }
  const described = describeServerBinary(serverBinary)
  if (described === null) {
    throw new ServerBinaryNotFoundError(
      `The serverBinary option names ${serverBinary}, but \`${serverBinary} --version\` does not run: give the path of a mariadbd or mysqld binary.`,
    )
  }
  return described
}

class Cluster implements LocalCluster {
  readonly baseDir: string
  readonly stores: LocalStoreProcess[] = []
  readonly #ownsBaseDir: boolean
  readonly #context: StoreContext
  #stopping: Promise<void> | undefined

  constructor(
    baseDir: string,
    ownsBaseDir: boolean,
    context: Omit<StoreContext, 'isClosed' | 'onProcessChange'>,
  ) {
    this.baseDir = baseDir
    this.#ownsBaseDir = ownsBaseDir
    this.#context = {
      ...context,
      isClosed: () => this.#stopping !== undefined,
      onProcessChange: () => this.#recordOwner(),
    }
  }

  #recordOwner(): void {
    if (this.#stopping !== undefined) return
    const servers = this.stores.flatMap((store) =>
      store.pid === undefined ? [] : [{ id: store.id, pid: store.pid }],
    )
    try {
      writeOwnerFile(this.baseDir, servers)
    } catch (error) {
      debug('local-cluster: could not write owner file in %s: %s', this.baseDir, error)
    }
  }

  store(id: string): LocalStore {
    const found = this.stores.find((store) => store.id === id)
    if (found === undefined) {
      const ids = this.stores.map((store) => store.id).join(', ')
      throw new Error(`No store "${id}" in this cluster (stores: ${ids}).`)
    }
    return found
  }

  storeConfigs(): LocalStoreConfig[] {
    return this.stores.map((store) => store.config)
  }

  async addStore(id: string): Promise<LocalStore> {
    if (this.#stopping !== undefined) throw new Error('The cluster is stopped; start a new one.')
    checkStoreId(
      id,
      this.stores.map((store) => store.id),
    )
    const store = new LocalStoreProcess(id, this.#context)
    this.stores.push(store)
    try {
      await store.create()
      return store
    } catch (error) {
      await store.kill()
      this.stores.splice(this.stores.indexOf(store), 1)
      await rm(store.dir, { recursive: true, force: true })
      throw error
    }
  }

  stop(): Promise<void> {
    this.#stopping ??= this.#stop()
    return this.#stopping
  }

  async #stop(): Promise<void> {
    await Promise.all(this.stores.map((store) => store.kill()))
    if (this.#ownsBaseDir) {
      await rm(this.baseDir, { recursive: true, force: true })
    } else {
      await Promise.all([
        ...this.stores.map((store) => rm(store.dir, { recursive: true, force: true })),
        rm(path.join(this.baseDir, 'owner.json'), { force: true }),
      ])
    }
    debug('local-cluster: stopped %s', this.baseDir)
  }
}

/**
 * Starts several local stores in parallel — real `mariadbd` (or `mysqld`) processes on
 * 127.0.0.1, each with its own free port and data directory — for tests and demos. Each store has
 * a database `session_shards` and a user `shards`@`127.0.0.1` with all privileges.
 *
 * Leftovers of earlier runs whose process died without stopping its cluster are killed and
 * removed first.
 *
 * @example
 * ```ts
 * import { startLocalCluster } from 'session-shards/local-cluster'
 *
 * const cluster = await startLocalCluster({ stores: 3 })
 * console.log(cluster.stores.map((store) => store.port))
 * await cluster.store('store-b').kill()
 * await cluster.stop()
 * ```
 *
 * @throws {@link ServerBinaryNotFoundError} when no server binary is installed.
 * @throws {@link LocalStoreStartError} when a store does not come up; the others are then
 * stopped.
 */
export async function startLocalCluster(options: LocalClusterOptions = {}): Promise<LocalCluster> {
  const ids = storeIdsFrom(options)
  ids.forEach((id, index) => checkStoreId(id, ids.slice(0, index)))
  const password = options.password ?? randomPassword()
  checkPassword(password)
  const binary = resolveBinary(options.serverBinary)

  const started = Date.now()
  await reapLeftovers()
  const template = await ensureDataTemplate(binary)
  let baseDir: string
  if (options.baseDir === undefined) {
    baseDir = await mkdtemp(path.join(os.tmpdir(), BASE_DIR_PREFIX))
  } else {
    baseDir = path.resolve(options.baseDir)
    await mkdir(baseDir, { recursive: true })
  }
  writeOwnerFile(baseDir, [])
  const cluster = new Cluster(baseDir, options.baseDir === undefined, {
    binary,
    template,
    baseDir,
    password,
    killOnExit: options.killOnExit ?? true,
  })

  const results = await Promise.allSettled(ids.map((id) => cluster.addStore(id)))
  const failure = results.find((result) => result.status === 'rejected')
  if (failure !== undefined) {
    await cluster.stop()
    throw failure.reason
  }
  debug('local-cluster: %d store(s) up in %dms in %s', ids.length, Date.now() - started, baseDir)
  return cluster
}
