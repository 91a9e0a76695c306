/** One operation on one session, its answer checked by the consistency model. */
import type { SessionData } from '../../codec.js'
import { NoStoreAvailableError } from '../../errors.js'
import type { SessionManager } from '../../session-manager.js'
import { FOREVER } from './consistency-model.js'
import type { ConsistencyModel, Lifetime, ReadCheck } from './consistency-model.js'

/** What a {@link SessionWorkload} does besides reads, writes, creates and destroys. */
export interface WorkloadOptions {
  /**
   * A fifth of the writes are updateSession calls (read, change, compare-and-set), each
   * checked twice: the data its change was given must be what a read could return, and the
   * data it wrote must be read back.
   * @default false
   */
  updates?: boolean
  /**
   * The share of created sessions that are short-lived: each of their writes gives them a
   * lifetime of 1 to 3 s (now and then 30 s), and some of their operations are
   * setSessionTimeout calls. Once such a session has expired, no older value may come back.
   * @default 0
   */
  shortLivedShare?: number
}

/**
 * The operations of a {@link SessionWorkload} (session-workload.ts): each tells the model what
 * was acknowledged or failed, and checks what was read. The caller runs one operation at a time
 * per session, which keeps the model exact.
 */
export class CheckedOperations {
  readonly #model: ConsistencyModel
  readonly #options: WorkloadOptions
  /** Sessions whose writes give them a short lifetime (see {@link WorkloadOptions}). */
  readonly #shortLived = new Set<string>()
  #sequence = 0
  /** updateSession calls that wrote. */
  updates = 0
  /** setSessionTimeout calls that resolved true. */
  timeoutsSet = 0

  constructor(model: ConsistencyModel, options: WorkloadOptions) {
    this.#model = model
    this.#options = options
  }

  /** Whether some writes are updateSession calls (see {@link WorkloadOptions.updates}). */
  get makesUpdates(): boolean {
    return this.#options.updates === true
  }

  isShortLived(id: string): boolean {
    return this.#shortLived.has(id)
  }

  /** Creates a session (short-lived for {@link WorkloadOptions.shortLivedShare} of them). */
  async create(manager: SessionManager): Promise<string> {
    const data = { n: ++this.#sequence }
    const shortLived = Math.random() < (this.#options.shortLivedShare ?? 0)
    const lifetime = shortLived ? lifetimeSeconds() : undefined
    const started = Date.now()
    const id = await manager.createSession(
      data,
      lifetime === undefined ? {} : { ttlSeconds: lifetime },
    )
    this.#model.written(id, data, expiring(lifetime, started))
    if (shortLived) this.#shortLived.add(id)
    return id
  }

  async read(manager: SessionManager, id: string, appServer: string): Promise<ReadCheck> {
    const started = Date.now()
    try {
      return this.#model.read(id, await manager.readSession(id), appServer, started)
    } catch (error) {
      // No store could tell: to the app, as good as "no session".
      if (error instanceof NoStoreAvailableError) {
        throw new CheckedFailure(this.#model.readFailed(id, error.code, appServer), error)
      }
      throw error
    }
  }

  async write(manager: SessionManager, id: string, appServer: string): Promise<void> {
    const data = { n: ++this.#sequence }
    const seconds = this.#lifetimeOf(id)
    const started = Date.now()
    try {
      const options = seconds === undefined ? {} : { ttlSeconds: seconds }
      const written = await manager.writeSession(id, data, options)
      if (written.dropped) this.#model.writeDropped(id, appServer)
      else this.#model.written(id, data, expiring(seconds, started))
    } catch (error) {
      this.#model.writeFailed(id, data, expiring(seconds, started))
      throw error
    }
  }

  /**
   * An updateSession whose change replaces the data: what the change was given (on every try)
   * is checked like a read, what it wrote like a write.
   */
  async update(manager: SessionManager, id: string, appServer: string): Promise<ReadCheck> {
    const seconds = this.#lifetimeOf(id)
    const started = Date.now()
    const given: unknown[] = []
    const changed: SessionData[] = []
    const change = (data: SessionData | null): SessionData | undefined => {
      given.push(data)
      if (data === null) return undefined
      const next = { n: ++this.#sequence }
      changed.push(next)
      return next
    }
    const checkGiven = (): ReadCheck =>
      given.reduce<ReadCheck>((worst, data) => {
        const check = this.#model.read(id, data, `${appServer} (update)`, started)
        return worst === 'ok' ? check : worst
      }, 'ok')
    try {
      const options = seconds === undefined ? {} : { ttlSeconds: seconds }
      const written = await manager.updateSession(id, change, options)
      const check = checkGiven()
      const next = changed[changed.length - 1]
      if (next !== undefined && written === next) {
        this.#model.written(id, next, expiring(seconds, started))
        this.updates++
      }
      return check
    } catch (error) {
      const check = checkGiven()
      for (const data of changed) this.#model.writeFailed(id, data, expiring(seconds, started))
      throw new CheckedFailure(check, error)
    }
  }

  /** setSessionTimeout on a short-lived session: a new lifetime for the data it holds. */
  async setTimeout(manager: SessionManager, id: string, appServer: string): Promise<ReadCheck> {
    const seconds = lifetimeSeconds()
    const started = Date.now()
    try {
      if (!(await manager.setSessionTimeout(id, seconds))) {
        return this.#model.read(id, null, `${appServer} (setSessionTimeout)`, started)
      }
      this.#model.timeoutSet(id, expiring(seconds, started), started, appServer)
      this.timeoutsSet++
      return 'ok'
    } catch (error) {
      this.#model.timeoutSetFailed(id, expiring(seconds, started), started)
      throw error
    }
  }

  async destroy(manager: SessionManager, id: string): Promise<void> {
    try {
      await manager.destroySession(id)
      this.#model.destroyed(id)
    } catch (error) {
      this.#model.destroyFailed(id)
      throw error
    }
  }

  /** The lifetime the next write of `id` gives it: undefined for the manager's default. */
  #lifetimeOf(id: string): number | undefined {
    return this.#shortLived.has(id) ? lifetimeSeconds() : undefined
  }
}

/** An operation that failed after its answer was checked: how the check came out. */
export class CheckedFailure extends Error {
  constructor(
    readonly check: ReadCheck,
    cause: unknown,
  ) {
    super('the operation failed', { cause })
  }
}

/** A short-lived session's next lifetime: 1 to 3 s, one time in eight 30 s. */
function lifetimeSeconds(): number {
  return Math.random() < 0.125 ? 30 : 1 + Math.floor(Math.random() * 3)
}

/** When a write started at `started` with a lifetime of `seconds` expires (none: never). */
function expiring(seconds: number | undefined, started: number): Lifetime {
  if (seconds === undefined) return FOREVER
  return { from: started + seconds * 1000, until: Date.now() + seconds * 1000 }
}
