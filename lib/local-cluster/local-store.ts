/** One local mariadbd/mysqld process: start, kill, pause, resume, wipe. */
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdir, open, readdir, readFile, stat } from 'node:fs/promises'
import path from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { inspect } from 'node:util'
import { createConnection } from 'mysql2/promise'
import { copyDataTemplate } from './data-template.js'
import { debug } from '../debug.js'
import { LocalStoreStartError } from './errors.js'
import { guardPid, releasePid } from './exit-guard.js'
import { freePort } from './free-port.js'
import { STORE_DATABASE, STORE_USER, writeInitFile } from './init-file.js'
import { queryStore, type LocalQueryOptions, type LocalStoreConfig } from './query.js'
import { serverArgs, type ServerBinary, type ServerPaths } from './server-binary.js'

/**
 * One local MySQL-protocol server of a {@link LocalCluster}: a real `mariadbd`/`mysqld` process on
 * 127.0.0.1 with its own port and data directory, which tests can crash, hang and restart.
 *
 * @example
 * ```ts
 * const store = cluster.store('store-a')
 * await store.kill()   // crash: SIGKILL
 * await store.start()  // same port, same data
 * await store.pause()  // hang: SIGSTOP, connections time out
 * store.resume()
 * ```
 */
export interface LocalStore {
  /** The store id, e.g. `'store-a'`. */
  readonly id: string
  /** Always `'127.0.0.1'`. */
  readonly host: string
  /** The TCP port; it stays the same across restarts. */
  readonly port: number
  /** Connection settings for the session manager's `stores` option. */
  readonly config: LocalStoreConfig
  /** `mysql://shards:PASSWORD@127.0.0.1:PORT/session_shards`; contains the password. */
  readonly uri: string
  /** Pid of the server process, `undefined` while it is not running. */
  readonly pid: number | undefined
  /** A server process exists (it may be paused or still starting). */
  readonly running: boolean
  /** The process is stopped with SIGSTOP. */
  readonly paused: boolean
  /** Crashes the server with SIGKILL (SIGCONT first if paused); resolves once it has exited. */
  kill(): Promise<void>
  /**
   * Hangs the server with SIGSTOP: it keeps its sockets but answers nothing. Resolves once every
   * thread of it has stopped (the signal takes effect thread by thread, later on a loaded
   * machine), so that nothing sent afterwards is answered.
   */
  pause(): Promise<void>
  /** Continues a paused server with SIGCONT. */
  resume(): void
  /**
   * Starts the server on the same port and data directory; resolves once it accepts a login as
   * the store user. Resolves at once if it is already running.
   * @throws {@link LocalStoreStartError} when the server exits during startup or does not accept
   * a login within 30 s.
   */
  start(): Promise<void>
  /** Shuts the server down gracefully (SIGTERM); resolves once it has exited. */
  stop(): Promise<void>
  /** Replaces the data directory with an empty one; the store must be stopped or killed. */
  wipe(): Promise<void>
  /**
   * Runs one statement on a new direct connection to this store's database, then closes it.
   * Rows come back as objects; a statement without rows gives `[resultHeader]`.
   */
  query<T = any>(sql: string, params?: unknown[], options?: LocalQueryOptions): Promise<T[]>
}

/** What a store needs from its cluster. */
export interface StoreContext {
  readonly binary: ServerBinary
  readonly template: string
  readonly baseDir: string
  readonly password: string
  readonly killOnExit: boolean
  /** The cluster is stopping: start nothing new. */
  isClosed(): boolean
  /** A server process started or exited. */
  onProcessChange(): void
}

const STARTUP_TIMEOUT_MILLIS = 30_000
const STOP_TIMEOUT_MILLIS = 30_000
const PORT_ATTEMPTS = 5
const LOG_TAIL_BYTES = 8192
const LOG_TAIL_LINES = 12
const ADDRESS_IN_USE = /Address already in use|errno: 98|Bind on TCP\/IP port/i

interface Exit {
  code: number | null
  signal: NodeJS.Signals | null
  error?: Error
}

function describeExit(exit: Exit): string {
  if (exit.error !== undefined) return `could not be spawned (${exit.error.message})`
  if (exit.signal !== null) return `was killed by ${exit.signal}`
  return `exited with code ${exit.code}`
}

/** The {@link LocalStore} implementation; the password lives in a private field only. */
export class LocalStoreProcess implements LocalStore {
  readonly id: string
  readonly #context: StoreContext
  readonly #paths: ServerPaths
  #port = 0
  #portFixed = false
  #child: ChildProcess | undefined
  #exited: Promise<Exit> | undefined
  #paused = false
  #starting: Promise<void> | undefined
  /** kill() or stop() was called for the running server: its exit is no news. */
  #exitRequested = false

  constructor(id: string, context: StoreContext) {
    this.id = id
    this.#context = context
    const dir = path.join(context.baseDir, id)
    this.#paths = {
      dataDir: path.join(dir, 'data'),
      socket: path.join(dir, 's.sock'),
      pidFile: path.join(dir, 'server.pid'),
      errorLog: path.join(dir, 'error.log'),
      initFile: path.join(dir, 'init.sql'),
      tmpDir: path.join(dir, 'tmp'),
    }
  }

  /** The store's own directory inside the cluster's base directory. */
  get dir(): string {
    return path.dirname(this.#paths.dataDir)
  }

  get host(): string {
    return '127.0.0.1'
  }

  get port(): number {
    return this.#port
  }

  get config(): LocalStoreConfig {
    return {
      id: this.id,
      host: this.host,
      port: this.#port,
      user: STORE_USER,
      password: this.#context.password,
      database: STORE_DATABASE,
    }
  }

  get uri(): string {
    const password = encodeURIComponent(this.#context.password)
    return `mysql://${STORE_USER}:${password}@${this.host}:${this.#port}/${STORE_DATABASE}`
  }

  get pid(): number | undefined {
    return this.#child?.pid
  }

  get running(): boolean {
    return this.#child !== undefined
  }

  get paused(): boolean {
    return this.#paused
  }

  /** First start: fresh data directory, init file, a free port (retried if taken meanwhile). */
  async create(): Promise<void> {
    await mkdir(this.#paths.tmpDir, { recursive: true })
    await copyDataTemplate(this.#context.template, this.#paths.dataDir)
    await writeInitFile(this.#paths.initFile, this.#context.password)
    await this.start()
  }

  start(): Promise<void> {
    if (this.#starting !== undefined) return this.#starting
    if (this.#child !== undefined) return Promise.resolve()
    this.#starting = this.#startWithPortRetry().finally(() => {
      this.#starting = undefined
    })
    return this.#starting
  }

  async #startWithPortRetry(): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      if (!this.#portFixed) this.#port = await freePort()
      const logOffset = await stat(this.#paths.errorLog).then(
        (info) => info.size,
        () => 0,
      )
      try {
        await this.#launch()
        this.#portFixed = true
        return
      } catch (error) {
        const retry =
          !this.#portFixed &&
          attempt < PORT_ATTEMPTS &&
          error instanceof LocalStoreStartError &&
          ADDRESS_IN_USE.test(await this.#readLog(logOffset))
        if (!retry) throw error
        debug('local-cluster: %s lost port %d to another process, retrying', this.id, this.#port)
      }
    }
  }

  async #launch(): Promise<void> {
    if (this.#context.isClosed()) throw new Error(`Cluster was stopped before ${this.id} started.`)
    const started = Date.now()
    const args = serverArgs(this.#context.binary, this.#port, this.#paths)
    const child = spawn(this.#context.binary.path, args, { stdio: 'ignore' })
    this.#exitRequested = false
    let ready = false
    const exited = new Promise<Exit>((resolve) => {
      child.once('exit', (code, signal) => resolve({ code, signal }))
      child.once('error', (error) => resolve({ code: null, signal: null, error }))
    })
    this.#child = child
    this.#exited = exited
    const pid = child.pid
    if (pid !== undefined && this.#context.killOnExit) guardPid(pid)
    void exited.then((exit) => {
      if (pid !== undefined) releasePid(pid)
      if (this.#child === child) {
        this.#child = undefined
        this.#exited = undefined
        this.#paused = false
      }
      debug('local-cluster: %s (pid %s) %s', this.id, pid, describeExit(exit))
      if (ready && !this.#exitRequested) void this.#warnUnexpectedExit(pid, exit)
      this.#context.onProcessChange()
    })
    this.#context.onProcessChange()
    await this.#waitUntilReady(exited)
    ready = true
    debug(
      'local-cluster: %s up on port %d (pid %d) in %dms',
      this.id,
      this.#port,
      pid,
      Date.now() - started,
    )
  }

  async #waitUntilReady(exited: Promise<Exit>): Promise<void> {
    const deadline = Date.now() + STARTUP_TIMEOUT_MILLIS
    const server = `${path.basename(this.#context.binary.path)} on ${this.host}:${this.#port}`
    let lastError: unknown
    for (;;) {
      const attempt = createConnection({
        host: this.host,
        port: this.#port,
        user: STORE_USER,
        password: this.#context.password,
        database: STORE_DATABASE,
        connectTimeout: 1000,
      }).then(
        async (connection) => {
          await connection.end()
          return true
        },
        (error: unknown) => {
          lastError = error
          return false
        },
      )
      const outcome = await Promise.race([attempt, exited])
      if (outcome === true) return
      if (outcome !== false) {
        throw await this.#startError(
          `Store ${this.id} (${server}) ${describeExit(outcome)} during startup`,
        )
      }
      if (Date.now() >= deadline) {
        await this.kill()
        throw await this.#startError(
          `Store ${this.id} (${server}) did not accept a login as ${STORE_USER} within ${STARTUP_TIMEOUT_MILLIS} ms`,
          lastError,
        )
      }
      const exit = await Promise.race([sleep(50).then(() => undefined), exited])
      if (exit !== undefined) {
        throw await this.#startError(
          `Store ${this.id} (${server}) ${describeExit(exit)} during startup`,
        )
      }
    }
  }

  async #startError(message: string, cause?: unknown): Promise<LocalStoreStartError> {
    return new LocalStoreStartError(message, {
      storeId: this.id,
      errorLogPath: this.#paths.errorLog,
      errorLogTail: await this.#logTail(),
      cause,
    })
  }

  /**
   * A server that was up exited although nobody asked it to (a crash, or a signal from another
   * process): say so on stderr, with its error log, since whatever uses the store next fails
   * without saying why.
   */
  async #warnUnexpectedExit(pid: number | undefined, exit: Exit): Promise<void> {
    const tail = await this.#logTail()
    process.emitWarning(
      `Store ${this.id} (pid ${pid}) ${describeExit(exit)} without kill() or stop(); ` +
        (tail === ''
          ? `its error log ${this.#paths.errorLog} is empty.`
          : `last lines of ${this.#paths.errorLog}:\n${tail}`),
      { code: 'SESSION_SHARDS_STORE_EXITED' },
    )
  }

  /** The last {@link LOG_TAIL_LINES} lines of the error log, the password redacted. */
  async #logTail(): Promise<string> {
    const text = await this.#readLog(0)
    const tail = text
      .split('\n')
      .filter((line) => line.trim() !== '')
      .slice(-LOG_TAIL_LINES)
    return this.#redact(tail.join('\n'))
  }

  /** The error log from `offset` on, at most its last {@link LOG_TAIL_BYTES} bytes. */
  async #readLog(offset: number): Promise<string> {
    let handle
    try {
      handle = await open(this.#paths.errorLog, 'r')
      const { size } = await handle.stat()
      const from = Math.max(offset, size - LOG_TAIL_BYTES)
      const buffer = Buffer.alloc(Math.max(0, size - from))
      await handle.read(buffer, 0, buffer.length, from)
      return buffer.toString('utf8')
    } catch {
      return ''
    } finally {
      await handle?.close()
    }
  }

  #redact(text: string): string {
    const password = this.#context.password
    return text.replaceAll(password, '***').replaceAll(encodeURIComponent(password), '***')
  }

  async kill(): Promise<void> {
    const child = this.#child
    const exited = this.#exited
    if (child === undefined || exited === undefined) return
    this.#exitRequested = true
    if (this.#paused) child.kill('SIGCONT')
    child.kill('SIGKILL')
    await exited
  }

  async pause(): Promise<void> {
    const child = this.#child
    if (child === undefined) {
      throw new Error(`Store ${this.id} is not running, so it cannot be paused.`)
    }
    child.kill('SIGSTOP')
    this.#paused = true
    if (child.pid !== undefined) await untilStopped(child.pid)
  }

  resume(): void {
    if (this.#child === undefined || !this.#paused) return
    this.#child.kill('SIGCONT')
    this.#paused = false
  }

  async stop(): Promise<void> {
    const child = this.#child
    const exited = this.#exited
    if (child === undefined || exited === undefined) return
    this.#exitRequested = true
    if (this.#paused) child.kill('SIGCONT')
    child.kill('SIGTERM')
    const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MILLIS)
    try {
      await exited
    } finally {
      clearTimeout(timer)
    }
  }

  async wipe(): Promise<void> {
    if (this.#child !== undefined || this.#starting !== undefined) {
      throw new Error(`Store ${this.id} is running: stop() or kill() it before wipe().`)
    }
    await copyDataTemplate(this.#context.template, this.#paths.dataDir)
  }

  query<T = any>(sql: string, params?: unknown[], options?: LocalQueryOptions): Promise<T[]> {
    return queryStore<T>(this.config, sql, params, options)
  }

  [inspect.custom](): string {
    const state = this.#paused ? 'paused' : this.running ? `pid ${this.pid}` : 'not running'
    return `LocalStore { id: '${this.id}', port: ${this.#port}, ${state} }`
  }
}

/** How long {@link untilStopped} waits for a stopped process's threads, at most. */
const STOP_WAIT_MILLIS = 5000

/**
 * Resolves once every thread of `pid` is stopped (state T in `/proc`), or it has exited, or
 * after {@link STOP_WAIT_MILLIS}; at once where there is no `/proc` to tell.
 */
async function untilStopped(pid: number): Promise<void> {
  const deadline = Date.now() + STOP_WAIT_MILLIS
  while (Date.now() < deadline) {
    let threads: string[]
    try {
      threads = await readdir(`/proc/${pid}/task`)
    } catch {
      return
    }
    const states = await Promise.all(
      threads.map((tid) =>
        readFile(`/proc/${pid}/task/${tid}/stat`, 'utf8').then(
          // The state follows the command name, which is in parentheses and may hold spaces.
          (stat) => stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3),
          () => 'T',
        ),
      ),
    )
    if (states.every((state) => state === 'T' || state === 't')) return
    await sleep(2)
  }
}
