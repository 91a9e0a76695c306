/** Shared checks of option values: whole numbers, durations, booleans. Errors never echo the value. */
import { InvalidOptionError } from './errors.js'

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
  if (!(value instanceof AbortSignal))
    throw new InvalidOptionError('signal', 'must be an AbortSignal')
}

/** The deepest prototype chain an options object may have: far beyond any class hierarchy. */
const MAX_OPTION_PROTOTYPES = 32

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
 * An options object's fields, each read once (a getter answers once, so what is checked is
 * what runs), each value readable (see {@link checkReadable}). Fields it inherits count, as
 * when the object is destructured: an instance of a class with getters, `Object.create(base)`.
 */
export function readFields<T extends object>(name: string, options: T): T {
  const copy: Record<PropertyKey, unknown> = {}
  try {
    let level: object | null = options
    for (let depth = 0; level !== null && level !== Object.prototype; depth++) {
      if (depth === MAX_OPTION_PROTOTYPES) throw new Error('prototype chain too long')
      for (const key of Reflect.ownKeys(level)) {
        if (key === 'constructor' || Object.hasOwn(copy, key)) continue
        copy[key] = (options as Record<PropertyKey, unknown>)[key]
      }
      level = Reflect.getPrototypeOf(level)
    }
  } catch {
    throw new InvalidOptionError(name, 'cannot be read (a revoked Proxy, or a getter that throws)')
  }
  for (const [key, value] of Object.entries(copy)) checkReadable(key, value)
  return copy as T
}
