/** The line protocol's answers, and how values travel in them (docs/server.md, "Values"). */
import type { SessionData } from '../codec.js'

/** For values, byte for byte: a decoder drops a leading byte order mark unless told to keep it. */
const utf8Exact = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true })

/** How a value travels in a payload answer. */
export type ValueKind = 's' | 'b' | 'j'

const OK = Buffer.from('ok\n')

/** `ok` */
export function okAnswer(): Buffer {
  return OK
}

/** `ok <word>`: a session id, or `1` / `0`. */
export function wordAnswer(word: string): Buffer {
  return Buffer.from(`ok ${word}\n`)
}

/** `ok <kind> <n>` LF, the n bytes, LF. */
export function payloadAnswer(kind: ValueKind, bytes: Buffer): Buffer {
  const head = Buffer.from(`ok ${kind} ${bytes.length}\n`)
  return Buffer.concat([head, bytes, Buffer.from('\n')])
}

/** `err <CODE> <message>`, the message on one line. */
export function errorAnswer(code: string, message: string): Buffer {
  return Buffer.from(`err ${code} ${message.replace(/[\r\n]+/g, ' ')}\n`)
}

/**
 * The stored form of bytes sent with `put`: a string when they are valid UTF-8 (so that apps
 * using the library see text as text), else `{ $binary: '<base64>' }`, which JSON can hold.
 */
export function storedValue(bytes: Buffer): unknown {
  try {
    return utf8Exact.decode(bytes)
  } catch {
    return { $binary: bytes.toString('base64') }
  }
}

/** How `get` sends a stored value: text as `s`, a `$binary` wrapper as `b`, anything else as JSON (`j`). */
export function wireValue(value: unknown): { kind: ValueKind; bytes: Buffer } {
  if (typeof value === 'string') return { kind: 's', bytes: Buffer.from(value, 'utf8') }
  if (isBinary(value)) return { kind: 'b', bytes: Buffer.from(value.$binary, 'base64') }
  return { kind: 'j', bytes: Buffer.from(JSON.stringify(value) ?? 'null', 'utf8') }
}

/** Session data (or any JSON value) as a `j` payload. */
export function jsonPayload(value: SessionData | readonly string[]): Buffer {
  return payloadAnswer('j', Buffer.from(JSON.stringify(value), 'utf8'))
}

function isBinary(value: unknown): value is { $binary: string } {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return false
  const keys = Object.keys(value)
  return (
    keys.length === 1 &&
    keys[0] === '$binary' &&
    typeof (value as { $binary: unknown }).$binary === 'string'
  )
}
