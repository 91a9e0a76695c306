/** Checks of the arguments of single calls: options objects, expiries, batch sizes, versions, owners. */
import type { RowCodec, SessionData } from './codec.js'
import { InvalidOptionError, InvalidSessionDataError } from './errors.js'
import { checkReadable, MAX_TTL_SECONDS, secondsOption, wholeNumber } from './validate.js'

/** The farthest a JavaScript Date reaches either side of the epoch, in milliseconds. */
export const MAX_DATE_MILLIS = 8.64e15

/** A per-call expiry: `ttlSeconds` from now, or an absolute `expiresAt` (ms precision). */
export interface ExpiryOptions {
  ttlSeconds?: number
  expiresAt?: Date | number
}

/**
 * The expiry a call asks for, in ms since the epoch, or null when it gives none (the session's
 * own timeout or the manager's default then applies). One before `earliest` is `earliest`:
 * expired either way, but a sweep's grace (`sweepGraceSeconds`) counts from it, so it must not
 * be much older than the write (its copies could be swept before the hint for a store it
 * missed); nor should it be `now`, which an app server whose clock runs behind counts live.
 */
export function requestedExpiry(
  options: ExpiryOptions,
  now: number,
  earliest = now,
): number | null {
  if (options === null || typeof options !== 'object') {
    throw new InvalidOptionError('options', 'must be an object')
  }
  const { ttlSeconds, expiresAt } = options
  if (ttlSeconds !== undefined && expiresAt !== undefined) {
    throw new InvalidOptionError('expiresAt', 'cannot be combined with ttlSeconds')
  }
  if (ttlSeconds !== undefined) return now + checkSeconds('ttlSeconds', ttlSeconds) * 1000
  if (expiresAt === undefined) return null
  checkReadable('expiresAt', expiresAt)
  const millis = expiresAt instanceof Date ? dateMillis(expiresAt) : expiresAt
  // Beyond a Date's range the expiry could be stored but never shown again: a framework store
  // turns the stored expiry into the cookie's `expires`, and every read would throw.
  if (typeof millis !== 'number' || !(Math.abs(millis) <= MAX_DATE_MILLIS)) {
    throw new InvalidOptionError(
      'expiresAt',
      'must be a valid Date or a number of milliseconds since the epoch, within the range of a Date (±8.64e15)',
    )
  }
  return Math.max(earliest, Math.trunc(millis))
}

/**
 * A Date's time, or NaN for an object that passes `instanceof Date` without being one
 * (`Object.create(Date.prototype)`, a Proxy), whose getTime throws a bare TypeError.
 */
function dateMillis(date: Date): number {
  try {
    return date.getTime()
  } catch {
    return Number.NaN
  }
}

/**
 * A call's options argument: undefined or null means none; anything but an object is refused,
 * and so is one that cannot be read (a revoked Proxy: its fields are then read as
 * destructuring reads them, each once by the call, inherited ones included).
 */
export function callOptions<T extends object>(options: T | undefined | null): T {
  if (options === undefined || options === null) return {} as T
  if (typeof options !== 'object') {
    throw new InvalidOptionError('options', 'must be an object')
  }
  checkReadable('options', options)
  return options
}

/** The most rows a scan (list, sweep, repair) reads or deletes per statement. */
export const MAX_BATCH_SIZE = 10_000

/** Rows per statement for scans (list, sweep, repair): a whole number from 1 to {@link MAX_BATCH_SIZE}. */
export function batchSizeOption(value: unknown, fallback = 500): number {
  return wholeNumber('batchSize', value, fallback, { min: 1, max: MAX_BATCH_SIZE })
}

/** The share of time a sweep may keep a store busy: a number above 0 and at most 1. */
export function dutyCycleOption(value: unknown, fallback: number): number {
  if (value === undefined) return fallback
  if (typeof value !== 'number' || !(value > 0 && value <= 1)) {
    throw new InvalidOptionError('dutyCycle', 'must be a number above 0 and at most 1')
  }
  return value
}

/** Validates a positive whole number of seconds passed to a single call (e.g. `ttlSeconds`). */
export function checkSeconds(name: string, value: unknown): number {
  if (value === undefined) throw new InvalidOptionError(name, 'is required')
  return secondsOption(name, value, 0, 1, MAX_TTL_SECONDS)
}

/**
 * An owner passed to findByOwner / destroyByOwner: a non-empty string, number or bigint (what
 * {@link ownerOf} stores), as a string.
 */
export function checkOwner(owner: unknown): string {
  if (
    (typeof owner !== 'string' && typeof owner !== 'number' && typeof owner !== 'bigint') ||
    String(owner) === '' ||
    Buffer.byteLength(String(owner)) > 255
  ) {
    // Bytes, as ownerOf counts them for writes: a longer owner is never stored.
    throw new InvalidOptionError(
      'owner',
      'must be a non-empty string, number or bigint of at most 255 bytes',
    )
  }
  return String(owner)
}

/** A compare-and-set's expected version: a whole number (any: a wrong one conflicts). */
export function checkExpectedVersion(value: unknown): number | undefined {
  if (value === undefined) return undefined
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    throw new InvalidOptionError(
      'expectedVersion',
      'must be a version read from the session (a whole number)',
    )
  }
  return value
}

/** Per-call options of {@link SessionManager.writeSession} and {@link SessionManager.touch}. */
export interface WriteOptions {
  /**
   * Lifetime from now. Without it (or `expiresAt`), the session's own timeout
   * ({@link SessionManager.setSessionTimeout}) applies, else the manager's `ttlSeconds`.
   */
  ttlSeconds?: number
  /**
   * Absolute expiry, to the millisecond (e.g. a cookie's `expires`); one further in the past
   * than half of `sweepGraceSeconds` is stored as that long ago (the session ends at once
   * either way). Not with `ttlSeconds`.
   */
  expiresAt?: Date | number
  /**
   * Write only if the session is at exactly this version (from `readSession(id, {
   * withVersion: true })`); otherwise reject with `VersionConflictError` and write
   * nothing. 0 means "only if the session does not exist yet": none, or one that has expired
   * (reads answer null for it) and is not swept yet.
   */
  expectedVersion?: number
}

/**
 * The owner column's value for a write of `bytes`, read from the data as encoded: what reads
 * and `destroyByOwner` go by. The object the caller passed may answer otherwise when asked
 * again (a getter with state, a Proxy, a top-level toJSON), and a logout everywhere would then
 * miss a session its data names. One decode per write, and only with `ownerKey` set.
 */
export function ownerOfEncoded(
  codec: RowCodec,
  sessionId: string,
  bytes: Buffer,
  ownerKey: string | null,
): string | null {
  if (ownerKey === null) return null
  let stored: SessionData
  try {
    stored = codec.decode(bytes, sessionId)
  } catch (error) {
    throw new InvalidSessionDataError('the codec cannot decode what it encoded', { cause: error })
  }
  return ownerOf(stored, ownerKey)
}

/** The owner column's value: the data's `ownerKey` value as a string, if any. */
export function ownerOf(data: SessionData, ownerKey: string | null): string | null {
  if (ownerKey === null) return null
  const value = data[ownerKey]
  if (typeof value !== 'string' && typeof value !== 'number' && typeof value !== 'bigint') {
    return null
  }
  const owner = String(value)
  if (Buffer.byteLength(owner) > 255) {
    throw new InvalidSessionDataError(`the ${ownerKey} value (ownerKey) is longer than 255 bytes`)
  }
  return owner
}
