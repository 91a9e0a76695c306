/** Lease locks on sessions: taken on the session's first store in service, writes fenced twice. */
import { randomBytes } from 'node:crypto'
import { performance } from 'node:perf_hooks'
import { pauseUnlessAborted, settledUnlessAborted } from './abortable.js'
import type { Clock } from './clock.js'
import type { SessionData } from './codec.js'
import type { StoreFailure } from './errors.js'
import {
  LockAbortedError,
  LockExpiredError,
  LockTimeoutError,
  ManagerClosedError,
  NoStoreAvailableError,
} from './errors.js'
import { isTransientError, isUnreachableError } from './store/retry.js'
import type { Store } from './store/store.js'
import { checkSignal, millisOption } from './validate.js'
import type { VersionedSession } from './read-path.js'
import type { WriteResult } from './write-path.js'

/** Options of {@link SessionManager.lockSession}. */
export interface LockOptions {
  /**
   * How long the lock holds without a renewal. A holder that dies loses it after this long.
   * @default 10000
   */
  leaseMillis?: number
  /**
   * How long to wait for another holder to release it before {@link LockTimeoutError}.
   * @default 5000
   */
  waitMillis?: number
  /**
   * Ends the wait early when it aborts: {@link LockAbortedError}, and no lock is held (a lock
   * taken by a statement already sent is given back). Once the lock is taken, the signal no
   * longer matters: release it as usual.
   */
  signal?: AbortSignal
}

/** {@link LockOptions}, checked, with their defaults. */
export interface CheckedLockOptions {
  leaseMillis: number
  waitMillis: number
  signal: AbortSignal | null
}

/** The longest lease a lock takes (a day): its renewal timer stays in range. */
const MAX_LEASE_MILLIS = 86_400_000
/** The longest a lockSession call waits for another holder (an hour). */
const MAX_LOCK_WAIT_MILLIS = 3_600_000

/** Checks lock options, with their defaults. A lease of 0 would be over before the caller got it. */
export function checkLockOptions(options: LockOptions): CheckedLockOptions {
  const signal = options.signal
  if (signal !== undefined) checkSignal(signal)
  return {
    leaseMillis: millisOption('leaseMillis', options.leaseMillis, 10_000, 1, MAX_LEASE_MILLIS),
    waitMillis: millisOption('waitMillis', options.waitMillis, 5_000, 0, MAX_LOCK_WAIT_MILLIS),
    signal: signal ?? null,
  }
}

/** What a lock needs of the sessions it guards: a read with the version, a write at a version. */
export interface LockedSessions {
  readWithVersion(sessionId: string): Promise<VersionedSession | null>
  writeAtVersion(
    sessionId: string,
    data: SessionData,
    expectedVersion: number,
  ): Promise<WriteResult>
  readonly clock: Clock
  /** Whether the manager is closing: a lock wait then ends. */
  closing(): boolean
}

/**
 * A lease lock on one session, from {@link SessionManager.lockSession}. Reads by anyone are
 * never blocked. Writes through {@link write} are fenced twice: refused once the lease has run
 * out (another holder may have the lock by then), and made with the version this holder last
 * read or wrote, so a write from a stale holder can never overwrite a newer one.
 */
export class SessionLock {
  /** The locked session. */
  readonly sessionId: string
  /**
   * Identifies this holder; the lock is released only with it. Private, so that no log of the
   * lock (util.inspect, JSON) shows what would let anyone else release or renew it.
   */
  readonly #token: string
  readonly #sessions: LockedSessions
  readonly #store: Store
  readonly #leaseMillis: number
  #expiresAt: number
  #version: number | undefined
  #released = false
  /** Renewal statements not answered yet: a release waits for them (see {@link release}). */
  readonly #renewals = new Set<Promise<boolean>>()
  #releasing: Promise<void> | undefined

  /** @internal Use {@link SessionManager.lockSession}. */
  constructor(
    sessions: LockedSessions,
    store: Store,
    sessionId: string,
    token: string,
    leaseMillis: number,
    expiresAt: number,
  ) {
    this.#sessions = sessions
    this.#store = store
    this.sessionId = sessionId
    this.#token = token
    this.#leaseMillis = leaseMillis
    this.#expiresAt = expiresAt
  }

  /** When the lease runs out (ms since the epoch), unless renewed. */
  get expiresAt(): number {
    return this.#expiresAt
  }

  /**
   * The version this holder last read or wrote, which its next {@link write} expects (0: no
   * session); undefined before its first read.
   */
  get version(): number | undefined {
    return this.#version
  }

  /** The id of the store that holds the lock: the session's first store in service. */
  get storeId(): string {
    return this.#store.id
  }

  /** Whether the lease has run out (or the lock was released). */
  get expired(): boolean {
    return this.#released || this.#sessions.clock.now() >= this.#expiresAt
  }

  /** Reads the session, remembering its version for {@link write}; null when there is none. */
  async read(): Promise<SessionData | null> {
    return (await this.readWithVersion())?.data ?? null
  }

  /** {@link read}, with the version, expiry and timeout of the copy read. */
  async readWithVersion(): Promise<VersionedSession | null> {
    const current = await this.#sessions.readWithVersion(this.sessionId)
    this.#version = current?.version ?? 0
    return current
  }

  /**
   * Writes the session as this holder: refused with {@link LockExpiredError} once the lease has
   * run out, with {@link VersionConflictError} if the session changed since this holder's last
   * {@link read} or write.
   */
  async write(data: SessionData): Promise<WriteResult> {
    if (this.expired) throw new LockExpiredError()
    if (this.#version === undefined) await this.read()
    const result = await this.#sessions.writeAtVersion(
      this.sessionId,
      data,
      this.#version as number,
    )
    this.#version = result.version
    return result
  }

  /**
   * Extends the lease by `leaseMillis` from now; {@link LockExpiredError} if it was lost, or
   * released before the store answered.
   */
  async renew(): Promise<void> {
    if (this.expired) throw new LockExpiredError()
    const expiresAt = this.#sessions.clock.now() + this.#leaseMillis
    // Registered before the first await, so a release() called from here on waits for it.
    const renewal = this.#store.lock(this.sessionId, this.#token, expiresAt)
    this.#renewals.add(renewal)
    try {
      if (!(await renewal) || this.#released) throw new LockExpiredError()
    } finally {
      this.#renewals.delete(renewal)
    }
    // Renewals answered out of order: the store keeps the later lease (the statement).
    this.#expiresAt = Math.max(this.#expiresAt, expiresAt)
  }

  /**
   * Releases the lock (idempotent: a later call resolves once the first has settled, whose
   * caller learns of a failure; a lease that already ran out is left to whoever holds it now).
   * Renewals still in flight are waited for first: one sent on another pooled connection
   * could otherwise reach the store after the release and take the lock back for a whole lease.
   * The wait is bounded by the store's `queryTimeoutMillis`, as every statement is.
   */
  release(): Promise<void> {
    if (this.#releasing !== undefined) return this.#releasing.catch(() => {})
    this.#released = true
    this.#releasing = this.#unlockAfterRenewals()
    return this.#releasing
  }

  async #unlockAfterRenewals(): Promise<void> {
    await Promise.allSettled(this.#renewals)
    await this.#store.unlock(this.sessionId, this.#token)
  }
}

/** How one round of {@link acquireLock} ended: taken, held by another, or a store in service failed. */
type LockRound =
  { taken: SessionLock } | { held: true } | { failed: StoreFailure; store: Store; retry: boolean }

/**
 * Takes the lock on the session's first store in service, retrying until `waitMillis`. Only a
 * store out of service (down in this manager's standing: a refused connection, or
 * `failThreshold` failures in a row) passes the lock on to the next store: one that is in
 * service but slow or failing may hold another holder's lock, so it is asked again (with the
 * same token, which takes back a lock whose answer was lost) until it answers or goes down.
 */
export async function acquireLock(
  sessions: LockedSessions,
  order: () => readonly Store[],
  sessionId: string,
  options: CheckedLockOptions,
): Promise<SessionLock> {
  const token = randomBytes(16).toString('base64url')
  const { signal } = options
  // A function, not a narrowed property: the signal may abort during any await below.
  const aborted = (): boolean => signal?.aborted === true
  // The wait is timed on the monotonic clock: the `clock` option dates leases, and a fake one
  // that stands still, or a wall clock stepped back, would leave the wait without an end.
  const giveUpAt = performance.now() + options.waitMillis
  // Stores whose lock statement failed (a timeout, a lost connection): it may still land and
  // take the lock, so every way out of the wait without it gives the lock back there. (A store
  // counted down by then refuses the give-back unsent; guarantees §5 says what that leaves.)
  const mayLand = new Set<Store>()
  const giveBackWhereFailed = (exceptStoreId?: string): void => {
    for (const store of mayLand) {
      if (store.id !== exceptStoreId) store.unlock(sessionId, token).catch(() => {})
    }
  }
  for (let attempt = 0; ; attempt++) {
    if (aborted()) {
      giveBackWhereFailed()
      throw new LockAbortedError(signal?.reason)
    }
    const pending = lockRound(sessions, order(), sessionId, token, options.leaseMillis)
    // An abort ends the wait at once, also while the round's statement is on its way (a slow
    // store may keep it until queryTimeoutMillis): whatever it then answers is given back.
    await settledUnlessAborted(pending, signal)
    if (aborted()) {
      giveBackWhereFailed()
      void pending.then(
        (round) => giveBack(round, sessionId, token),
        () => {},
      )
      throw new LockAbortedError(signal?.reason)
    }
    const round = await pending
    if ('failed' in round) mayLand.add(round.store)
    if (sessions.closing()) {
      // Its connections about to close, no holder could release a lock: give it back now.
      giveBackWhereFailed()
      await giveBack(round, sessionId, token)
      throw new ManagerClosedError()
    }
    if ('taken' in round) {
      // Taken on another store than one that failed before: a statement still on its way there
      // must not hold that store's lock, if that store still takes statements.
      giveBackWhereFailed(round.taken.storeId)
      return round.taken
    }
    if ('failed' in round && !round.retry) {
      giveBackWhereFailed()
      throw new NoStoreAvailableError('take the lock', [round.failed])
    }
    if (performance.now() >= giveUpAt) {
      giveBackWhereFailed()
      throw new LockTimeoutError(options.waitMillis, 'failed' in round ? round.failed : undefined)
    }
    const pause = Math.min(50, 2 + attempt * 2) * (0.5 + Math.random())
    // Cut short by an abort: the next round sees it.
    await pauseUnlessAborted(Math.min(pause, Math.max(1, giveUpAt - performance.now())), signal)
  }
}

/** Gives back what a round its caller no longer wants may have taken (never fails). */
async function giveBack(round: LockRound, sessionId: string, token: string): Promise<void> {
  if ('taken' in round) await round.taken.release().catch(() => {})
  // The statement may have taken the lock although its answer was lost.
  if ('failed' in round) await round.store.unlock(sessionId, token).catch(() => {})
}

/** Asks the first store in service of `stores` for the lock, moving on only past stores out of service. */
async function lockRound(
  sessions: LockedSessions,
  stores: readonly Store[],
  sessionId: string,
  token: string,
  leaseMillis: number,
): Promise<LockRound> {
  const failures: StoreFailure[] = []
  for (const store of stores) {
    const expiresAt = sessions.clock.now() + leaseMillis
    try {
      if (!(await store.lock(sessionId, token, expiresAt))) return { held: true }
      const lock = new SessionLock(sessions, store, sessionId, token, leaseMillis, expiresAt)
      return { taken: lock }
    } catch (error) {
      const failed = { storeId: store.id, error: error as Error }
      // A store out of service passes the lock on; its lock rows are ignored once their
      // leases pass. A store in service may hold another holder's lock: never skipped.
      if (!store.standing.up) {
        failures.push(failed)
        continue
      }
      // Worth asking again: a timeout, a lost connection, a deadlock. Any other SQL error
      // (a missing table, a refused privilege) would only come back.
      return { failed, store, retry: isUnreachableError(error) || isTransientError(error) }
    }
  }
  throw new NoStoreAvailableError('take the lock', failures)
}
