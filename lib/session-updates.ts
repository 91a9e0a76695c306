/** Read-change-write cycles safe against lost updates: updateSession, the per-key operations, work under a lock. */
import { types } from 'node:util'
import type { SessionData } from './codec.js'
import { InvalidSessionDataError, SessionNotFoundError, VersionConflictError } from './errors.js'
import type { LockOptions, SessionLock } from './session-lock.js'
import type { WriteResult } from './write-path.js'

/** Options of {@link SessionManager.updateSession}. */
export interface UpdateOptions {
  /**
   * How many times to run the read-change-write cycle again after a version conflict.
   * @default 20
   */
  retries?: number
  /** Lifetime of the written session from now (see `WriteOptions`). */
  ttlSeconds?: number
  /** Absolute expiry of the written session (see `WriteOptions`). */
  expiresAt?: Date | number
}

/**
 * A change callback: the current data (null if none) in, the new data (undefined: none) out,
 * or a promise of it (any thenable).
 */
export type SessionChange<A extends unknown[] = []> = (
  data: SessionData | null,
  ...rest: A
) => SessionData | undefined | PromiseLike<SessionData | undefined>

/** What the cycles need of the manager (its public operations, arguments already checked). */
export interface SessionAccess {
  readWithVersion(sessionId: string): Promise<{ data: SessionData; version: number } | null>
  writeSession(
    sessionId: string,
    data: SessionData,
    options: { ttlSeconds?: number; expiresAt?: Date | number; expectedVersion: number },
  ): Promise<WriteResult>
  lockSession(sessionId: string, options: LockOptions): Promise<SessionLock>
}

/**
 * Read → change → compare-and-set, started over (after a short random pause) on a
 * {@link VersionConflictError}, up to `retries` times. Resolves the data written, or the data
 * read when `change` returned undefined.
 */
export async function updateSession(
  access: SessionAccess,
  sessionId: string,
  change: SessionChange,
  options: {
    retries: number
    ttlSeconds?: number | undefined
    expiresAt?: Date | number | undefined
  },
): Promise<SessionData | null> {
  const { retries, ttlSeconds, expiresAt } = options
  return retryOnConflict(retries, async () => {
    const current = await access.readWithVersion(sessionId)
    const { next } = await changeResult(change(current === null ? null : current.data))
    if (next === undefined) return current?.data ?? null
    const written = await access.writeSession(sessionId, next, {
      ...(ttlSeconds === undefined ? {} : { ttlSeconds }),
      ...(expiresAt === undefined ? {} : { expiresAt }),
      expectedVersion: current?.version ?? 0,
    })
    // Destroyed between the read and the write: nothing was written, which is no success.
    if (written.dropped) throw new SessionNotFoundError('update (it was destroyed)')
    return next
  })
}

/**
 * Runs `cycle` (a read, then a compare-and-set on the version read) and starts it over, after a
 * short random pause, when it rejects with a {@link VersionConflictError}, up to `retries` times.
 */
export async function retryOnConflict<T>(retries: number, cycle: () => Promise<T>): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await cycle()
    } catch (error) {
      if (!(error instanceof VersionConflictError) || attempt >= retries) throw error
      await delay(Math.random() * Math.min(50, 2 ** attempt))
    }
  }
}

/** {@link updateSession} for the per-key operations: the session must exist. */
export async function updateExisting(
  access: SessionAccess,
  sessionId: string,
  operation: string,
  change: (data: SessionData) => SessionData,
): Promise<SessionData> {
  const written = await updateSession(
    access,
    sessionId,
    (data) => {
      if (data === null) throw new SessionNotFoundError(operation)
      return change(data)
    },
    { retries: 20 },
  )
  return written as SessionData
}

/**
 * Runs `change` holding the session's lock: the write is fenced (refused if the lease ran out
 * or the session moved on); the lock is released in every case.
 */
export async function withSessionLock(
  access: SessionAccess,
  sessionId: string,
  change: SessionChange<[SessionLock]>,
  options: LockOptions,
): Promise<SessionData | null> {
  const lock = await access.lockSession(sessionId, options)
  try {
    const data = await lock.read()
    const { next } = await changeResult(change(data, lock))
    if (next === undefined) return data
    if ((await lock.write(next)).dropped) {
      throw new SessionNotFoundError('update (it was destroyed)')
    }
    return next
  } finally {
    await lock.release().catch(() => {})
  }
}

/**
 * What a change callback returned, awaited when it is a promise or another thenable (a promise
 * of another library). Its `then` is read once, in a guard: awaiting the value would read it
 * again, and a hostile value (a revoked Proxy) would turn that into an untyped TypeError.
 * Wrapped, because resolving a promise with the value itself would read its `then` too.
 */
function changeResult<T>(result: T | PromiseLike<T>, depth = 0): Promise<{ next: T }> {
  if (types.isPromise(result)) return result.then((next) => ({ next: next as T }))
  const then = thenOf(result)
  if (then === undefined) return Promise.resolve({ next: result as T })
  // A thenable that resolves to itself (or to thenables without end) would otherwise recurse
  // until the stack overflows, an untyped RangeError.
  if (depth >= MAX_THENABLE_DEPTH) {
    return Promise.reject(
      new InvalidSessionDataError(
        `the change returned thenables nested more than ${MAX_THENABLE_DEPTH} deep (one that resolves to itself?)`,
      ),
    )
  }
  return new Promise((resolve, reject) => {
    then.call(result, (next: unknown) => resolve(changeResult(next as T, depth + 1)), reject)
  })
}

/** How many thenables a change's result may be nested in: more is a thenable without end. */
const MAX_THENABLE_DEPTH = 100

/** The `then` method of a thenable; undefined for any other value. */
function thenOf(value: unknown): ((...handlers: unknown[]) => unknown) | undefined {
  if ((typeof value !== 'object' && typeof value !== 'function') || value === null) return undefined
  let then: unknown
  try {
    then = (value as { then?: unknown }).then
  } catch (error) {
    throw new InvalidSessionDataError('the change returned a value that cannot be read', {
      cause: error,
    })
  }
  return typeof then === 'function' ? (then as (...handlers: unknown[]) => unknown) : undefined
}

function delay(millis: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, millis).unref())
}
