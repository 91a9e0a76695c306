/** Session data to bytes and back, checked once before any statement. */
import { InvalidSessionDataError, SessionShardsError, SessionTooLargeError } from './errors.js'

/**
 * The one key session data never has, on any path: an own `__proto__` key would pollute a
 * reader's `Object.assign({}, data)` or spread.
 */
export const PROTO_KEY = '__proto__'

/** The error for a `__proto__` key, whichever path it came by. */
export function protoKeyError(): InvalidSessionDataError {
  return new InvalidSessionDataError('"__proto__" cannot be a key of session data')
}

/** Whether data has an own `__proto__` key (JSON.parse makes one; a literal does not). */
export function hasProtoKey(data: object): boolean {
  try {
    return Object.hasOwn(data, PROTO_KEY)
  } catch (error) {
    throw new InvalidSessionDataError('it cannot be inspected (a revoked Proxy?)', { cause: error })
  }
}

/** Session data: a plain object that the codec can encode. */
export type SessionData = Record<string, unknown>

/**
 * Turns session data into bytes and back. `encode` runs once per write; `decode` once per
 * copy read. Throwing from either is reported as a typed error (encode) or as an
 * unreadable copy (decode).
 */
export interface SessionCodec {
  encode(data: SessionData): Buffer | string
  decode(bytes: Buffer): SessionData
}

/**
 * A codec as the manager calls it, with the id of the session whose row it encodes or decodes:
 * the at-rest layer binds an encrypted row to that id (at-rest.ts). Every {@link SessionCodec}
 * is one, ignoring the id.
 */
export interface RowCodec {
  encode(data: SessionData, sessionId: string): Buffer | string
  decode(bytes: Buffer, sessionId: string): SessionData
}

/** The default codec: JSON text in UTF-8. */
export const jsonCodec: SessionCodec = {
  encode: (data) => JSON.stringify(data),
  decode: (bytes) => JSON.parse(bytes.toString('utf8')) as SessionData,
}

/**
 * Checks and encodes the data of session `sessionId` once, before any statement runs: a plain
 * object, an encoding the codec accepts, at most `maxBytes` long.
 */
export function encodeSessionData(
  codec: RowCodec,
  sessionId: string,
  data: unknown,
  maxBytes: number,
): Buffer {
  if (!isPlainObject(data)) {
    throw new InvalidSessionDataError(`expected an object, got ${describeType(data)}`)
  }
  if (hasProtoKey(data)) throw protoKeyError()
  let encoded: Buffer | string
  try {
    encoded = codec.encode(data, sessionId)
  } catch (error) {
    if (error instanceof SessionShardsError) throw error // the at-rest layer's own checks
    throw new InvalidSessionDataError(`the codec cannot encode it (${reason(error)})`, {
      cause: error,
    })
  }
  // The manager's codec is the at-rest layer, which checks its inner codec's output itself;
  // this covers a codec used alone.
  return checkedEncoding(codec, encoded, maxBytes)
}

/**
 * A codec's output, checked: a string or a Buffer, at most `maxBytes` long; for the JSON
 * codec, a JSON object without a `__proto__` key. What JSON.stringify encoded may differ from
 * the object checked before it: a top-level toJSON turns it into something else, a Proxy may
 * answer the check and the encoding differently.
 */
export function checkedEncoding(codec: unknown, encoded: unknown, maxBytes: number): Buffer {
  if (typeof encoded !== 'string' && !Buffer.isBuffer(encoded)) {
    throw new InvalidSessionDataError('the codec returned neither a string nor a Buffer')
  }
  if (codec === jsonCodec) {
    const text = encoded as string
    if (!text.startsWith('{')) {
      throw new InvalidSessionDataError('it does not encode as a JSON object (a top-level toJSON?)')
    }
    // Parsed only when the key's quoted name is there at all: rarely.
    if (text.includes(`"${PROTO_KEY}"`) && hasProtoKey(JSON.parse(text) as object)) {
      throw protoKeyError()
    }
  }
  const bytes = typeof encoded === 'string' ? Buffer.from(encoded, 'utf8') : encoded
  if (bytes.length > maxBytes) throw new SessionTooLargeError(bytes.length, maxBytes)
  return bytes
}

/**
 * An object that is not an array. Class instances are fine (express-session's and
 * @fastify/session's session objects are); what matters is that they encode as an object,
 * which the JSON codec's output is checked for.
 */
export function isPlainObject(value: unknown): value is SessionData {
  try {
    return value !== null && typeof value === 'object' && !Array.isArray(value)
  } catch {
    return false // a revoked Proxy
  }
}

function describeType(value: unknown): string {
  try {
    if (value === null) return 'null'
    if (Array.isArray(value)) return 'an array'
    if (typeof value === 'object')
      return `an instance of ${Object.getPrototypeOf(value)?.constructor?.name ?? 'a class'}`
    return typeof value
  } catch {
    return 'an unusable object'
  }
}

function reason(error: unknown): string {
  return error instanceof Error ? error.message : String(error)
}
