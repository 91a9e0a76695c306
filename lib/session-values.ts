/** Per-key changes of session data: set, remove, increment, merge. */
import type { SessionData } from './codec.js'
import { PROTO_KEY, protoKeyError } from './codec.js'
import { InvalidOptionError, InvalidSessionDataError } from './errors.js'

/** Checks a key of session data passed to a per-key operation. */
export function checkKey(key: unknown): string {
  if (typeof key !== 'string' || key === '' || key.length > 255) {
    throw new InvalidOptionError('key', 'must be a non-empty string of at most 255 characters')
  }
  if (key === PROTO_KEY) throw protoKeyError()
  return key
}

/** The data with `key` set to `value` (a new object; the input is not changed). */
export function withValue(data: SessionData, key: string, value: unknown): SessionData {
  return { ...data, [key]: value }
}

/** The data without `key`. */
export function withoutValue(data: SessionData, key: string): SessionData {
  const { [key]: _removed, ...rest } = data
  return rest
}

/** Checks the amount of an increment, before the session is read. */
export function checkIncrement(by: unknown): number {
  if (typeof by !== 'number' || !Number.isFinite(by)) {
    throw new InvalidOptionError('by', 'must be a finite number')
  }
  return by
}

/**
 * The data with the number at `key` raised by `by` (a missing key counts as 0). A sum the
 * stores cannot keep exactly is refused with {@link InvalidSessionDataError}, before anything
 * is written: one that is not finite (JSON would store `null`, and the next increment would
 * start again from 0), and, when the value and `by` are both integers, one outside the safe
 * integers (±(2^53 - 1)), where adding 1 no longer counts. Fractions add as floating point.
 */
export function withIncrement(data: SessionData, key: string, by: number): SessionData {
  // Own keys only: a missing "constructor" is 0, not the Object.prototype member of that name.
  const current = Object.hasOwn(data, key) ? (data[key] ?? 0) : 0
  if (typeof current !== 'number') {
    throw new InvalidSessionDataError(`the value at "${key}" is not a number`)
  }
  const sum = current + by
  if (!Number.isFinite(sum)) {
    throw new InvalidSessionDataError(
      `the value at "${key}" plus the increment is not a finite number`,
    )
  }
  if (Number.isInteger(current) && Number.isInteger(by) && !Number.isSafeInteger(sum)) {
    throw new InvalidSessionDataError(
      `the value at "${key}" plus the increment is outside ±Number.MAX_SAFE_INTEGER, where integers are no longer exact`,
    )
  }
  return { ...data, [key]: sum }
}

/**
 * The entries of putAll's `values`, their keys checked, before the session is read. They are
 * read once (a Proxy could answer differently the second time); values that cannot be read (a
 * revoked Proxy, a throwing trap or getter) are refused with {@link InvalidSessionDataError},
 * their error as the cause.
 */
export function valuesToPut(values: unknown): [string, unknown][] {
  let entries: [string, unknown][]
  try {
    if (values === null || typeof values !== 'object' || Array.isArray(values)) {
      throw new InvalidSessionDataError('putAll takes a plain object of values')
    }
    entries = Object.entries(values)
  } catch (error) {
    if (error instanceof InvalidSessionDataError) throw error
    throw new InvalidSessionDataError('the values for putAll cannot be read (a revoked Proxy?)', {
      cause: error,
    })
  }
  for (const [key] of entries) checkKey(key)
  return entries
}

/** The data with `entries` (from {@link valuesToPut}) merged in. */
export function withValues(data: SessionData, entries: readonly [string, unknown][]): SessionData {
  const merged = { ...data }
  for (const [key, value] of entries) merged[key] = value
  return merged
}
