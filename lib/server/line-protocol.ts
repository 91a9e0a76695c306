/**
 * The line protocol of the session server: parsing requests from a byte stream (answers are
 * formatted in line-answers.ts). No I/O here. The grammar is in docs/server.md; in short:
 *
 * ```text
 * request  = word *(SP arg) LF [payload]     ; CR before LF is accepted; blank lines are ignored
 * payload  = <n> octets LF                   ; when the line ends in a byte count n (see
 *                                            ; payload-announcement.ts)
 * answer   = "ok" LF
 *          / "ok" SP word LF
 *          / "ok" SP kind SP n LF <n octets> LF      ; kind: s (UTF-8 text) b (bytes) j (JSON)
 *          / "err" SP CODE SP message LF
 * ```
 */
import { checkKey } from '../session-values.js'
import { ByteBuffer } from './byte-buffer.js'
import { PayloadAnnouncement } from './payload-announcement.js'
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

/** A request that needs its payload to be complete. */
type Completer = (payload: Buffer) => LineRequest

/** What one command line is: a request, or (when it announces a payload) how to complete one. */
type ParsedLine = LineRequest | Completer

const LF = 0x0a
const CR = 0x0d
const utf8 = new TextDecoder('utf-8', { fatal: true })
/** A payload's first buffer, doubled as bytes come: announcing a large one costs next to nothing. */
const FIRST_PAYLOAD_BYTES = 64 * 1024

/**
 * Splits a byte stream into {@link Frame}s, one per request, in order. Never buffers more than
 * `maxLineBytes` of a line or `maxPayloadBytes` of a payload: a longer line is skipped up to its
 * LF and answered `LINE_TOO_LONG`; a larger announced payload is skipped unread and answered
 * `VALUE_TOO_LARGE`. Either way the connection stays in step and usable. So too when any line
 * that announces a payload is refused (a bad key, a line too long): its payload is skipped,
 * never read as commands. Whether a line announces one is decided once, by
 * {@link PayloadAnnouncement}, for accepted and refused lines alike.
 *
 * Bytes are parsed on demand ({@link next}), one frame at a time, so that the connection can
 * stop parsing once enough requests wait: the rest of a chunk stays here, unparsed.
 */
export class LineParser {
  readonly #maxLineBytes: number
  readonly #maxPayloadBytes: number
  /** Checks an `auth` line's token; undefined: no token is needed. */
  readonly #tokenMatches: ((token: string) => boolean) | undefined
  /** Payloads are refused (unread) until an `auth` line with the right token has been parsed. */
  #needsAuth: boolean
  /** A frame asked to hang up: nothing after it is parsed. */
  #halted = false
  #mode: 'line' | 'skip-line' | 'payload' | 'skip-payload' | 'terminator' = 'line'
  /** Bytes received and not parsed yet; parsed from `#offset`. */
  #backlog: Buffer = Buffer.alloc(0)
  #offset = 0
  /** The line read so far, when it spans chunks (a line in one chunk is not copied). */
  readonly #line: ByteBuffer
  #payload = new ByteBuffer(0) // the payload read so far (grown up to its announced size)
  /** Whether the line being read (or skipped) announces a payload. */
  #announcement = new PayloadAnnouncement()
  /** Payload bytes still to read (or skip). */
  #remaining = 0
  #complete: Completer | undefined
  /** The frame whose payload was read, waiting for its LF; undefined when the payload was skipped. */
  #waiting: Frame | undefined
  #sawCr = false

  /**
   * With `tokenMatches`, a line that announces a payload before an `auth` line with the right
   * token is answered `UNAUTHORIZED` and ends the connection, its payload unread: an
   * unauthenticated client cannot make the server buffer bodies. The token is checked as its
   * line is parsed (the answer may come much later, to a client that does not read): a wrong
   * one ends the connection there, and nothing behind it is read.
   */
  constructor(
    maxLineBytes: number,
    maxPayloadBytes: number,
    tokenMatches?: (token: string) => boolean,
  ) {
    this.#maxLineBytes = maxLineBytes
    this.#maxPayloadBytes = maxPayloadBytes
    // One more byte than a line may hold: its CR.
    this.#line = new ByteBuffer(maxLineBytes + 1)
    this.#tokenMatches = tokenMatches
    this.#needsAuth = tokenMatches !== undefined
  }

  /** Bytes received and not parsed yet (at most what was pushed since {@link next} last ran dry). */
  get unparsedBytes(): number {
    return this.#halted ? 0 : this.#backlog.length - this.#offset
  }

  /** Bytes of the payload being read, received so far. */
  get payloadBytes(): number {
    return this.#halted ? 0 : this.#payload.length
  }

  /** Feeds bytes, parsed by {@link next}. */
  push(chunk: Buffer): void {
    if (this.#halted) return
    this.#backlog =
      this.#offset >= this.#backlog.length
        ? chunk
        : Buffer.concat([this.#backlog.subarray(this.#offset), chunk])
    this.#offset = 0
  }

  /** The next frame, or undefined when the bytes received so far complete none. */
  next(): Frame | undefined {
    const frames: Frame[] = []
    const chunk = this.#backlog
    while (this.#offset < chunk.length && !this.#halted && frames.length === 0) {
      this.#offset = this.#step(chunk, this.#offset, frames)
    }
    if (this.#offset >= chunk.length || this.#halted) {
      // Parsed whole: the chunk is not held (a payload keeps only its own bytes).
      this.#backlog = Buffer.alloc(0)
      this.#offset = 0
    }
    return frames[0]
  }

  /** Parses from `at`, up to the end of the chunk or the first frame; returns where it stopped. */
  #step(chunk: Buffer, at: number, frames: Frame[]): number {
    switch (this.#mode) {
      case 'line':
      case 'skip-line': {
        const lf = chunk.indexOf(LF, at)
        const end = lf === -1 ? chunk.length : lf
        const bytes = chunk.subarray(at, end)
        this.#announcement.feed(bytes)
        if (this.#mode === 'line') {
          if (this.#line.length + bytes.length > this.#maxLineBytes + 1) {
            // Too long to be read whole, but its start can still be an HTTP request's (a long
            // path, or a long host name when maxLineBytes is small).
            const held = this.#line.take()
            const start = held.length > 0 ? Buffer.concat([held.subarray(0, 64), bytes]) : bytes
            if (startsLikeHttp(start.subarray(0, 64))) {
              this.#hangUp(frames, crossProtocolError())
              return chunk.length
            }
            this.#startSkippingLine()
          } else if (lf === -1 || this.#line.length > 0) {
            this.#line.append(bytes)
          }
        }
        if (lf === -1) return chunk.length
        const announced = this.#announcement.bytes()
        this.#announcement = new PayloadAnnouncement()
        if (this.#mode === 'skip-line') {
          this.#mode = 'line'
          this.#refuse(frames, lineTooLong(this.#maxLineBytes), announced)
        } else {
          this.#endOfLine(frames, announced, this.#line.length > 0 ? this.#line.take() : bytes)
        }
        return lf + 1
      }
      case 'payload':
      case 'skip-payload': {
        const take = Math.min(this.#remaining, chunk.length - at)
        if (this.#mode === 'payload') this.#payload.append(chunk.subarray(at, at + take))
        this.#remaining -= take
        if (this.#remaining === 0) {
          if (this.#mode === 'payload') {
            this.#waiting = completed(this.#complete as Completer, this.#payload.take())
          }
          this.#complete = undefined
          this.#mode = 'terminator'
          this.#sawCr = false
        }
        return at + take
      }
      case 'terminator': {
        const byte = chunk[at] as number
        if (byte === CR && !this.#sawCr) {
          this.#sawCr = true
          return at + 1
        }
        const waiting = this.#waiting
        this.#waiting = undefined
        this.#mode = 'line'
        if (byte === LF) {
          if (waiting !== undefined) frames.push(waiting)
          return at + 1
        }
        if (waiting !== undefined) {
          // The byte count was wrong; what follows is read as the next line.
          frames.push({
            error: new RequestError(
              'BAD_REQUEST',
              'The payload must be followed by a line feed: the byte count does not match what was sent.',
            ),
          })
        }
        return at
      }
    }
  }

  #startSkippingLine(): void {
    this.#line.clear()
    this.#mode = 'skip-line'
  }

  /**
   * Answers a refused line with `error`. When the line announced a payload it is on its way:
   * it is skipped unread, so that a value never runs as commands (before auth, the connection
   * is closed instead, as for any payload).
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
    this.#hangUp(
      frames,
      new RequestError(
        'UNAUTHORIZED',
        'This session server needs a token: send "auth <token>" before anything else. The connection is closed.',
      ),
    )
  }

  /** Answers `error`, reads nothing more and closes the connection once it is sent. */
  #hangUp(frames: Frame[], error: RequestError): void {
    this.#halted = true
    this.#line.clear()
    this.#backlog = Buffer.alloc(0)
    this.#offset = 0
    frames.push({ error, hangUp: true })
  }

  #endOfLine(frames: Frame[], announced: number | undefined, line: Buffer): void {
    if (line.length > 0 && line[line.length - 1] === CR) line = line.subarray(0, -1)
    if (line.length > this.#maxLineBytes) {
      this.#refuse(frames, lineTooLong(this.#maxLineBytes), announced)
      return
    }
    if (line.length === 0) return
    if (looksLikeHttp(line)) {
      this.#hangUp(frames, crossProtocolError())
      return
    }
    if (announced !== undefined && this.#needsAuth) {
      this.#unauthorized(frames)
      return
    }
    let parsed: ParsedLine
    try {
      parsed = parseLine(decodeLine(line), announced)
    } catch (error) {
      this.#refuse(frames, asRequestError(error), announced)
      return
    }
    if (announced === undefined) {
      // parseLine completes a request from a payload only when one was announced.
      const request = parsed as LineRequest
      if (request.command === 'auth' && this.#needsAuth) {
        if (this.#tokenMatches?.(request.token) !== true) {
          this.#hangUp(frames, new RequestError('UNAUTHORIZED', WRONG_TOKEN))
          return
        }
        this.#needsAuth = false
      }
      frames.push({ request })
    } else if (announced > this.#maxPayloadBytes) {
      const error = new RequestError(
        'VALUE_TOO_LARGE',
        `The payload is ${announced} bytes, more than the server's maxBodyBytes (${this.#maxPayloadBytes}); it was skipped.`,
      )
      this.#refuse(frames, error, announced)
    } else {
      // The announcement alone decides that a payload follows: it is read, whatever the line.
      const complete: Completer = typeof parsed === 'function' ? parsed : () => parsed
      this.#remaining = announced
      this.#complete = complete
      this.#mode = 'payload'
      this.#payload = new ByteBuffer(announced, Math.min(announced, FIRST_PAYLOAD_BYTES))
      if (announced === 0) {
        this.#waiting = completed(complete, Buffer.alloc(0))
        this.#mode = 'terminator'
        this.#sawCr = false
      }
    }
  }
}

/** The answer to a wrong token (one guess per connection). */
export const WRONG_TOKEN = 'Wrong token; the connection is closed.'

function completed(complete: Completer, payload: Buffer): Frame {
  try {
    return { request: complete(payload) }
  } catch (error) {
    return { error: asRequestError(error) }
  }
}

/**
 * Parses one command line (without its LF). `announced` is the byte count the line announces
 * ({@link PayloadAnnouncement}): a request that takes a payload is completed from one only
 * then. Throws {@link RequestError} or a library validation error.
 */
export function parseLine(line: string, announced: number | undefined): ParsedLine {
  const space = line.indexOf(' ')
  // ASCII lower case, as PayloadAnnouncement reads the command word.
  const word = (space === -1 ? line : line.slice(0, space)).replace(/[A-Z]+/g, (upper) =>
    upper.toLowerCase(),
  )
  const rest = space === -1 ? '' : line.slice(space + 1)
  // put_all's inline JSON may hold spaces: it takes the rest of the line as it is.
  if (word === 'put_all') return parsePutAll(rest, announced)
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
        throw new RequestError(
          'BAD_REQUEST',
          `The mode of open is r or w, not "${printable(mode)}".`,
        )
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
      if (announced === undefined) {
        throw new RequestError(
          'BAD_REQUEST',
          'Expected a byte count (digits) last; usage: put <key> <byte count>, then the value and LF',
        )
      }
      arity(args, 2, 2, 'put <key> <byte count>, then the value and LF')
      const key = decodeKey(args[0] as string)
      return (value) => ({ command: 'put', key, value })
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

function parsePutAll(argument: string, announced: number | undefined): ParsedLine {
  const usage = 'put_all <byte count> (then the JSON object and LF), or put_all <JSON object>'
  if (announced !== undefined) {
    if (argument.split(' ').filter((arg) => arg !== '').length !== 1) {
      throw new RequestError('BAD_REQUEST', `Wrong number of arguments; usage: ${usage}`)
    }
    return (payload) => ({ command: 'put_all', json: decodeText(payload) })
  }
  // Inline JSON goes to JSON.parse as sent: trimmed, a trailing NBSP or U+2028 (which JSON
  // refuses) would pass here and be refused as a payload or an HTTP body.
  if (argument.trim().startsWith('{')) return { command: 'put_all', json: argument }
  throw new RequestError('BAD_REQUEST', `Expected a byte count (digits); usage: ${usage}`)
}

/**
 * An HTTP request line or Host header. A web page can make a browser send one to this port (a
 * form's POST to 127.0.0.1), its body written as line commands: the connection is closed at
 * its first line instead, so that nothing after it runs.
 */
function looksLikeHttp(line: Buffer): boolean {
  const text = line.toString('latin1')
  return /^[A-Z]+ \S+ HTTP\/\d/.test(text) || /^host:/i.test(text)
}

/**
 * The start of a line too long to read, that of an HTTP request line (a method, then a path or
 * a URL) or of a Host header. A command line that starts so is refused for its length anyway.
 */
function startsLikeHttp(start: Buffer): boolean {
  const text = start.toString('latin1')
  return /^[A-Z]+ (\/|[a-z][a-z0-9+.-]*:\/\/)/.test(text) || /^host:/i.test(text)
}

function crossProtocolError(): RequestError {
  return new RequestError(
    'BAD_REQUEST',
    'This is the line protocol, not HTTP (the HTTP API listens on httpPort). The connection is closed.',
  )
}

function arity(args: string[], min: number, max: number, usage: string): void {
  if (args.length < min || args.length > max) {
    throw new RequestError('BAD_REQUEST', `Wrong number of arguments; usage: ${usage}`)
  }
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
