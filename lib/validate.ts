/** Shared checks of option values: whole numbers, durations, booleans. Errors never echo the value. */
import { InvalidOptionError, SessionShardsError } from './errors.js'

/**
 * The longest timer Node runs as asked: a longer delay fires at once (TimeoutOverflowWarning),
 * which for a repeating timer means back to back.
 */
export const MAX_TIMER_MILLIS = 2_147_483_647

/** The longest TTL: ten years, well inside the stores' 32-bit `ttl_seconds` column. */
export const MAX_TTL_SECONDS = 315_360_000

/** Bounds of a whole-number option. */
export interface WholeBounds {
  min: number
  max?: number
  /** The unit named in the error, e.g. `milliseconds`. */
  unit?: string
}

/**
 * A whole number within `bounds`, `fallback` when undefined. The error names the option and the
 * rule, never the value given: a misplaced secret must not end up in a log.
 */
export function wholeNumber(
  name: string,
  value: unknown,
  fallback: number,
  bounds: WholeBounds,
): number {
  if (value === undefined) return fallback
  const { min, max, unit } = bounds
  if (
    typeof value !== 'number' ||
    !Number.isSafeInteger(value) ||
    value < min ||
    (max !== undefined && value > max)
  ) {
    const what = unit === undefined ? 'a whole number' : `a whole number of ${unit}`
    const range = max === undefined ? `of at least ${min}` : `from ${min} to ${max}`
    throw new InvalidOptionError(name, `must be ${what} ${range}`)
  }
  return value
}

/**
 * A duration in milliseconds that a timer waits for: at most `max`, which must leave room for
 * the timer's range (jittered timers wait up to 1.2 times the option).
 */
export function millisOption(
  name: string,
  value: unknown,
  fallback: number,
  min: number,
  max: number,
): number {
  return wholeNumber(name, value, fallback, { min, max, unit: 'milliseconds' })
}

/** A duration in seconds (see {@link millisOption}). */
export function secondsOption(
  name: string,
  value: unknown,
  fallback: number,
  min: number,
  max: number,
): number {
  return wholeNumber(name, value, fallback, { min, max, unit: 'seconds' })
}

/** true or false, `fallback` when undefined. */
export function booleanOption(name: string, value: unknown, fallback: boolean): boolean {
  if (value === undefined) return fallback
  if (typeof value !== 'boolean') throw new InvalidOptionError(name, 'must be true or false')
  return value
}

/** A function, or an {@link InvalidOptionError} naming the argument. */
export function checkFunction(name: string, value: unknown): void {
  if (typeof value !== 'function') throw new InvalidOptionError(name, 'must be a function')
}

/** An AbortSignal, or an {@link InvalidOptionError} for `signal`. */
export function checkSignal(value: unknown): void {
  checkReadable('signal', value)
  if (!(value instanceof AbortSignal))
    throw new InvalidOptionError('signal', 'must be an AbortSignal')
}

/**
 * Refuses a value that cannot be read: a revoked Proxy, or one whose traps throw, makes its
 * first use (`Array.isArray`, `instanceof`) throw a bare TypeError.
 */
export function checkReadable(name: string, value: unknown): void {
  if (value === null || (typeof value !== 'object' && typeof value !== 'function')) return
  try {
    Reflect.ownKeys(value)
    Reflect.getPrototypeOf(value)
  } catch {
    throw new InvalidOptionError(name, 'cannot be read (a revoked Proxy?)')
  }
}

/**
 * `resolve(options)`, once `options` and the values of `objectFields` (which `Array.isArray` or
 * `instanceof` would meet) are readable; anything but a library error thrown meanwhile (a
 * getter that throws, deeper down) is an {@link InvalidOptionError} too.
 */
export function resolveReadable<T extends object, R>(
  options: T,
  objectFields: readonly (keyof T & string)[],
  resolve: (options: T) => R,
): R {
  checkReadable('options', options)
  try {
    for (const name of objectFields) checkReadable(name, options[name])
    return resolve(options)
  } catch (error) {
    if (error instanceof SessionShardsError) throw error
    throw new InvalidOptionError('options', 'cannot be read (a getter that throws?)')
  }
}
