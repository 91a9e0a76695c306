import { randomBytes } from 'node:crypto'
import { InvalidSessionIdError } from './errors.js'

/** Bytes of randomness in a generated id: 192 bits, 32 URL-safe characters. */
const ID_BYTES = 24

/** Accepted ids: URL-safe base64 characters (and "." and "-" for ids made elsewhere), 16 to 128 long. */
const ID_PATTERN = /^[A-Za-z0-9_.-]{16,128}$/

/** A new random session id: 192 bits from `crypto.randomBytes`, base64url, 32 characters. */
export function generateSessionId(): string {
  return randomBytes(ID_BYTES).toString('base64url')
}

/** Whether `id` has the form of a session id this library accepts. */
export function isValidSessionId(id: unknown): id is string {
  return typeof id === 'string' && ID_PATTERN.test(id)
}

/** Throws {@link InvalidSessionIdError} unless `id` is a well-formed session id. */
export function assertSessionId(id: unknown): asserts id is string {
  if (typeof id !== 'string') throw new InvalidSessionIdError(`expected a string, got ${typeof id}`)
  if (id.length < 16 || id.length > 128) {
    throw new InvalidSessionIdError(`length ${id.length} is outside 16 to 128`)
  }
  if (!ID_PATTERN.test(id)) {
    throw new InvalidSessionIdError('only letters, digits, "_", "-" and "." are allowed')
  }
}
