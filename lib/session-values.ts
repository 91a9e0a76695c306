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

/** The data with the number at `key` raised by `by` (a missing key counts as 0). */
export function withIncrement(data: SessionData, key: string, by: number): SessionData {
  if (typeof by !== 'number' || !Number.isFinite(by)) {
    throw new InvalidOptionError('by', 'must be a finite number')
  }
  const current = data[key] ?? 0
  if (typeof current !== 'number') {
    throw new InvalidSessionDataError(`the value at "${key}" is not a number`)
  }
  return { ...data, [key]: current + by }
}

/** The data with every entry of `values` merged in. */
export function withValues(data: SessionData, values: unknown): SessionData {
  if (values === null || typeof values !== 'object' || Array.isArray(values)) {
    throw new InvalidSessionDataError('putAll takes a plain object of values')
  }
  for (const key of Object.keys(values)) checkKey(key)
  return { ...data, ...(values as SessionData) }
}
