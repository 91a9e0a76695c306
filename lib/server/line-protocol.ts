/** The line protocol: requests parsed from a byte stream, answers formatted; no I/O. */
/**
 * The line protocol of the session server: parsing requests from a byte stream and formatting
 * answers. No I/O here. The grammar is in docs/server.md; in short:
 *
 * ```text
 * request  = word *(SP arg) LF [payload]     ; CR before LF is accepted; blank lines are ignored
 * payload  = <n> octets LF                   ; when the line ends in a byte count n
 * answer   = "ok" LF
 *          / "ok" SP word LF
 *          / "ok" SP kind SP n LF <n octets> LF      ; kind: s (UTF-8 text) b (bytes) j (JSON)
 *          / "err" SP CODE SP message LF
 * ```
 */
import type { SessionData } from '../codec.js'
import { checkKey } from '../session-values.js'
import { RequestError } from './request-error.js'

/** A request as the connection runs it. */
export type LineRequest =
  | { command: 'auth'; token: string }
  | { command: 'new' | 'close' | 'commit' | 'destroy' | 'keys' | 'get_all' | 'regenerate_id' }
  | { command: 'open'; id: string; mode: 'r' | 'w' }
  | { command: 'exists'; id: string | undefined }
  | { command: 'get' | 'remove'; key: string }
  | { command: 'put'; key: string; value: Buffer }
  | { command: 'put_all'; json: string }

/**
 * What the parser yields: a request to run, or an error to answer in its place (with `hangUp`,
 * the last frame: the connection is closed once it is answered).
 */
export type Frame = { request: LineRequest } | { error: RequestError; hangUp?: true }

/** What one command line needs: nothing more, or a payload of `bytes` to complete it. */
type ParsedLine = LineRequest | { bytes: number; complete: (payload: Buffer) => LineRequest }

const LF = 0x0a
const CR = 0x0d
const LENGTH = /^\d{1,10}$/
/** What is kept of a line skipped for its length: enough of its start and end to read a byte count it ends in. */
const SKIPPED_HEAD_BYTES = 8 // "put_all "
const SKIPPED_TAIL_BYTES = 12 // " " + 10 digits + CR
const utf8 = new TextDecoder('utf-8', { fatal: true })
/** For values, byte for byte: a decoder drops a leading byte order mark unless told to keep it. */
const utf8Exact = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true })

/**
 * Splits a byte stream into {@link Frame}s, one per request, in order. Never buffers more than
 * `maxLineBytes` of a line or `maxPayloadBytes` of a payload: a longer line is skipped up to its
 * LF and answered `LINE_TOO_LONG`; a larger announced payload is skipped unread and answered
 * `VALUE_TOO_LARGE`. Either way the connection stays in step and usable. So too when a `put` or
 * `put_all` line that ends in a byte count is refused (a bad key, a line too long): its payload
 * is skipped, never read as commands.
 */
export class LineParser {
  readonly #maxLineBytes: number
  readonly #maxPayloadBytes: number
  /** Payloads are refused (unread) until an `auth` line has been parsed. */
  #needsAuth: boolean
  /** A frame asked to hang up: nothing after it is parsed. */
  #halted = false
  #mode: 'line' | 'skip-line' | 'payload' | 'skip-payload' | 'terminator' = 'line'
  #parts: Buffer[] = []
  #bytes = 0
  /** Payload bytes still to read (or skip). */
  #remaining = 0
  #complete: ((payload: Buffer) => LineRequest) | undefined
  /** The frame whose payload was read, waiting for its LF; undefined when the payload was skipped. */
  #waiting: Frame | undefined
  #sawCr = false
  /** The start and end of the line being skipped for its length. */
  #skippedHead = Buffer.alloc(0)
  #skippedTail = Buffer.alloc(0)

  /**
   * With `needsAuth`, a line that announces a payload before any `auth` line is answered
   * `UNAUTHORIZED` and ends the connection, its payload unread: an unauthenticated client
   * cannot make the server buffer bodies. (A wrong token ends the connection too, so payloads
   * parsed behind an `auth` line are never run for a client that failed it.)
   */
  constructor(maxLineBytes: number, maxPayloadBytes: number, needsAuth = false) {
    this.#maxLineBytes = maxLineBytes
    this.#maxPayloadBytes = maxPayloadBytes
    this.#needsAuth = needsAuth
  }

  /** Feeds bytes; returns the frames they complete. */
  push(chunk: Buffer): Frame[] {
    const frames: Frame[] = []
    let at = 0
    while (at < chunk.length && !this.#halted) {
      switch (this.#mode) {
        case 'line':
        case 'skip-line': {
          const lf = chunk.indexOf(LF, at)
          const end = lf === -1 ? chunk.length : lf
          if (this.#mode === 'line') {
            this.#parts.push(chunk.subarray(at, end))
            this.#bytes += end - at
            if (this.#bytes > this.#maxLineBytes + 1) this.#startSkippingLine()
          } else {
            this.#keepSkippedTail(chunk.subarray(at, end))
          }
          if (lf === -1) return frames
          at = lf + 1
          if (this.#mode === 'skip-line') {
            this.#mode = 'line'
            const kept = Buffer.concat([this.#skippedHead, this.#skippedTail])
            this.#refuse(frames, lineTooLong(this.#maxLineBytes), announcedBytes(kept))
          } else {
            this.#endOfLine(frames)
          }
          break
        }
        case 'payload':
        case 'skip-payload': {
          const take = Math.min(this.#remaining, chunk.length - at)
          if (this.#mode === 'payload') this.#parts.push(chunk.subarray(at, at + take))
          this.#remaining -= take
          at += take
          if (this.#remaining === 0) {
            if (this.#mode === 'payload') {
              const payload = Buffer.concat(this.#parts)
              this.#parts = []
              this.#waiting = completed(this.#complete as (payload: Buffer) => LineRequest, payload)
            }
            this.#complete = undefined
            this.#mode = 'terminator'
            this.#sawCr = false
          }
          break
        }
        case 'terminator': {
          const byte = chunk[at] as number
          if (byte === CR && !this.#sawCr) {
            this.#sawCr = true
            at++
            break
          }
          const waiting = this.#waiting
          this.#waiting = undefined
          this.#mode = 'line'
          if (byte === LF) {
            at++
            if (waiting !== undefined) frames.push(waiting)
          } else if (waiting !== undefined) {
            // The byte count was wrong; what follows is read as the next line.
            frames.push({
              error: new RequestError(
                'BAD_REQUEST',
                'The payload must be followed by a line feed: the byte count does not match what was sent.',
              ),
            })
          }
          break
        }
      }
    }
    return frames
  }

  #startSkippingLine(): void {
    const line = Buffer.concat(this.#parts)
    this.#skippedHead = Buffer.from(line.subarray(0, SKIPPED_HEAD_BYTES))
    this.#skippedTail = Buffer.alloc(0)
    this.#keepSkippedTail(line)
    this.#parts = []
    this.#bytes = 0
    this.#mode = 'skip-line'
  }

  /** Keeps the last bytes of a line being skipped (copied: the chunk they come from is not held). */
  #keepSkippedTail(bytes: Buffer): void {
    const joined =
      bytes.length >= SKIPPED_TAIL_BYTES ? bytes : Buffer.concat([this.#skippedTail, bytes])
    this.#skippedTail = Buffer.from(joined.subarray(-SKIPPED_TAIL_BYTES))
  }

  /**
   * Answers a refused line with `error`. When the line ended in a byte count (see
   * {@link announcedBytes}) its payload is on its way: it is skipped unread, so that a value
   * never runs as commands (before auth, the connection is closed instead, as for any payload).
   */
  #refuse(frames: Frame[], error: RequestError, announced: number | undefined): void {
    if (announced === undefined) {
      frames.push({ error })
    } else if (this.#needsAuth) {
      this.#unauthorized(frames)
    } else {
      frames.push({ error })
      this.#remaining = announced
      this.#mode = announced === 0 ? 'terminator' : 'skip-payload'
      this.#sawCr = false
    }
  }

  #unauthorized(frames: Frame[]): void {
    this.#halted = true
    this.#parts = []
    frames.push({
      error: new RequestError(
        'UNAUTHORIZED',
        'This session server needs a token: send "auth <token>" before anything else. The connection is closed.',
      ),
      hangUp: true,
    })
  }

  #endOfLine(frames: Frame[]): void {
    let line = this.#parts.length === 1 ? (this.#parts[0] as Buffer) : Buffer.concat(this.#parts)
    this.#parts = []
    this.#bytes = 0
    if (line.length > 0 && line[line.length - 1] === CR) line = line.subarray(0, -1)
    if (line.length > this.#maxLineBytes) {
      this.#refuse(frames, lineTooLong(this.#maxLineBytes), announcedBytes(line))
      return
    }
    if (line.length === 0) return
    let parsed: ParsedLine
    try {
      parsed = parseLine(decodeLine(line))
    } catch (error) {
      this.#refuse(frames, asRequestError(error), announcedBytes(line))
      return
    }
    if ('command' in parsed) {
      if (parsed.command === 'auth') this.#needsAuth = false
      frames.push({ request: parsed })
    } else if (this.#needsAuth) {
      this.#unauthorized(frames)
    } else if (parsed.bytes > this.#maxPayloadBytes) {
      const error = new RequestError(
        'VALUE_TOO_LARGE',
        `The payload is ${parsed.bytes} bytes, more than the server's maxBodyBytes (${this.#maxPayloadBytes}); it was skipped.`,
      )
      this.#refuse(frames, error, parsed.bytes)
    } else {
      this.#remaining = parsed.bytes
      this.#complete = parsed.complete
      this.#mode = 'payload'
      if (parsed.bytes === 0) {
        this.#waiting = completed(parsed.complete, Buffer.alloc(0))
        this.#mode = 'terminator'
        this.#sawCr = false
      }
    }
  }
}

/**
 * The byte count a `put` / `put_all` line ends in, read from its raw bytes (it may not be UTF-8,
 * or may be cut short): by the grammar its payload follows whether or not the line is accepted.
 */
function announcedBytes(line: Buffer): number | undefined {
  const match = /^put(?:_all)?(?: [\s\S]*)? (\d{1,10})\r?$/i.exec(line.toString('latin1'))
  return match === null ? undefined : Number(match[1])
}

function completed(complete: (payload: Buffer) => LineRequest, payload: Buffer): Frame {
  try {
    return { request: complete(payload) }
  } catch (error) {
    return { error: asRequestError(error) }
  }
}

/** Parses one command line (without its LF). Throws {@link RequestError} or a library validation error. */
export function parseLine(line: string): ParsedLine {
  const space = line.indexOf(' ')
  const word = (space === -1 ? line : line.slice(0, space)).toLowerCase()
  const rest = space === -1 ? '' : line.slice(space + 1)
  // put_all's inline JSON may hold spaces: it takes the rest of the line as it is.
  if (word === 'put_all') return parsePutAll(rest)
  const args = rest.split(' ').filter((arg) => arg !== '')
  switch (word) {
    case 'auth':
      arity(args, 1, 1, 'auth <token>')
      return { command: 'auth', token: args[0] as string }
    case 'new':
    case 'close':
    case 'commit':
    case 'destroy':
    case 'keys':
    case 'get_all':
    case 'regenerate_id':
      arity(args, 0, 0, word)
      return { command: word }
    case 'open': {
      arity(args, 1, 2, 'open <id> [r|w]')
      const mode = args[1] ?? 'r'
      if (mode !== 'r' && mode !== 'w') {
        throw new RequestError('BAD_REQUEST', `The mode of open is r or w, not "${mode}".`)
      }
      return { command: 'open', id: args[0] as string, mode }
    }
    case 'exists':
      arity(args, 0, 1, 'exists [<id>]')
      return { command: 'exists', id: args[0] }
    case 'get':
    case 'remove':
      arity(args, 1, 1, `${word} <key>`)
      return { command: word, key: decodeKey(args[0] as string) }
    case 'put': {
      arity(args, 2, 2, 'put <key> <byte count>, then the value and LF')
      const key = decodeKey(args[0] as string)
      const bytes = byteCount(args[1] as string, 'put <key> <byte count>')
      return { bytes, complete: (value) => ({ command: 'put', key, value }) }
    }
    default:
      throw new RequestError(
        'UNKNOWN_COMMAND',
        `Unknown command "${printable(word)}"; the commands are ${COMMANDS.join(', ')}.`,
      )
  }
}

const COMMANDS = [
  'auth',
  'new',
  'open',
  'close',
  'commit',
  'destroy',
  'exists',
  'keys',
  'get',
  'put',
  'remove',
  'get_all',
  'put_all',
  'regenerate_id',
]

function parsePutAll(argument: string): ParsedLine {
  const trimmed = argument.trim()
  // Inline JSON goes to JSON.parse as sent: trimmed, a trailing NBSP or U+2028 (which JSON
  // refuses) would pass here and be refused as a payload or an HTTP body.
  if (trimmed.startsWith('{')) return { command: 'put_all', json: argument }
  const bytes = byteCount(
    trimmed,
    'put_all <byte count> (then the JSON object and LF), or put_all <JSON object>',
  )
  return { bytes, complete: (payload) => ({ command: 'put_all', json: decodeText(payload) }) }
}

function arity(args: string[], min: number, max: number, usage: string): void {
  if (args.length < min || args.length > max) {
    throw new RequestError('BAD_REQUEST', `Wrong number of arguments; usage: ${usage}`)
  }
}

function byteCount(token: string, usage: string): number {
  if (!LENGTH.test(token)) {
    throw new RequestError('BAD_REQUEST', `Expected a byte count (digits); usage: ${usage}`)
  }
  return Number(token)
}

/** A key is sent percent-encoded (RFC 3986), so that any key, spaces and "%" included, fits in a token. */
function decodeKey(token: string): string {
  let key: string
  try {
    key = decodeURIComponent(token)
  } catch {
    throw new RequestError(
      'BAD_REQUEST',
      'The key is not valid percent-encoding ("%" must be sent as %25).',
    )
  }
  return checkKey(key)
}

function decodeLine(line: Buffer): string {
  try {
    return utf8.decode(line)
  } catch {
    throw new RequestError('BAD_REQUEST', 'The command line is not valid UTF-8.')
  }
}

function decodeText(payload: Buffer): string {
  try {
    return utf8.decode(payload)
  } catch {
    throw new RequestError('INVALID_JSON', 'The JSON payload is not valid UTF-8.')
  }
}

function lineTooLong(maxLineBytes: number): RequestError {
  return new RequestError(
    'LINE_TOO_LONG',
    `The command line is longer than the server's maxLineBytes (${maxLineBytes}); it was skipped. Send large values with a byte count.`,
  )
}

function asRequestError(error: unknown): RequestError {
  if (error instanceof RequestError) return error
  const { code, message } = error as { code?: unknown; message?: unknown }
  return new RequestError(typeof code === 'string' ? code : 'BAD_REQUEST', String(message))
}

/** At most 40 characters of client text, control characters masked, for an error message. */
function printable(text: string): string {
  const shown = text.length > 40 ? `${text.slice(0, 40)}...` : text
  return shown.replace(/[\u0000-\u001f\u007f]/g, '?')
}

// ---- Answers ----

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

// ---- Values ----

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
