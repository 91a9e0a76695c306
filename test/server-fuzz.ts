import { createHash } from 'node:crypto'
import type { Hash } from 'node:crypto'
import { connect } from 'node:net'
import type { AddressInfo, Socket } from 'node:net'
import { isDeepStrictEqual } from 'node:util'
import seedrandom from 'seedrandom'
import t from 'tap'
import type { SessionData } from '../lib/index.js'
import { startTestCluster } from './helpers/cluster.js'
import { startManager } from './helpers/manager.js'
import { startServer } from './helpers/session-server.js'
import { sleep, waitFor } from './helpers/wait.js'

// The session server under hostile clients, tried for real: seeded random and mutated frames at
// the line protocol (wrong byte counts, truncation, huge declared sizes, garbage, invalid UTF-8,
// CR/LF oddities, long lines, pipelining, slow senders and readers) and random requests at the
// HTTP API (methods, paths, bodies, framings, pipelining, slow and truncated senders), several
// clients at once. Checked: every answer is well-formed and never INTERNAL_ERROR, the buffered
// bytes stay bounded, nothing is left open or locked, the sessions written before the fuzz come
// through unchanged, and the same input gets the same code from both protocols where both have
// the operation. Each client draws from its own generator seeded from SEED, so a run replays
// whatever the scheduling: SESSION_SHARDS_FUZZ_SEED=<the seed printed in the output>.
const SEED = process.env.SESSION_SHARDS_FUZZ_SEED || 'session-shards-server-fuzz-1'
/** Episodes per client (and parity rounds). */
const ROUNDS = positive('SESSION_SHARDS_FUZZ_ROUNDS', 40)
const LINE_CLIENTS = 6
const HTTP_CLIENTS = 4
/** HTTP episodes are cheap (most are one request): several per round. */
const HTTP_EPISODES_PER_ROUND = 4
const PARITY_CASES_PER_ROUND = 5

const TOKEN = 'server-fuzz-token-0123456789abcdef'
const MAX_BODY_BYTES = 64 * 1024
const MAX_LINE_BYTES = 1024
const TIMEOUT_MILLIS = 2000
/** Shorter than the idle deadline, so that a silent client without the token gets AUTH_TIMEOUT. */
const AUTH_TIMEOUT_MILLIS = 1500
const LOCK_WAIT_MILLIS = 500
/** Longest a client waits for the server to answer or close before it counts as a hang. */
const HANG_MILLIS = 10_000
/** How long a stalled reader leaves its answers unread: past the send deadline. */
const STALL_MILLIS = TIMEOUT_MILLIS + 1500
/**
 * The most bytes the server may hold for clients at once: every connection the fuzz can have
 * open at a time (one per client, the parity clients' two, one spare), each bounded by about
 * twice maxBodyBytes of requests read ahead plus one answer in its send buffer.
 */
const MAX_CONNECTIONS_AT_ONCE = LINE_CLIENTS + HTTP_CLIENTS + 3
const BUFFERED_BYTES_BOUND = MAX_CONNECTIONS_AT_ONCE * 3 * MAX_BODY_BYTES

t.comment(`server fuzz seed: ${SEED} (replay with SESSION_SHARDS_FUZZ_SEED=${SEED})`)

function positive(name: string, fallback: number): number {
  const text = process.env[name]
  if (text === undefined || text === '') return fallback
  const value = Number(text)
  if (!Number.isSafeInteger(value) || value < 1)
    throw new Error(`${name} must be a whole number ≥ 1`)
  return value
}

const unhandled: string[] = []
const onUnhandled = (reason: unknown): void => {
  unhandled.push(String((reason as Error)?.stack ?? reason).slice(0, 500))
}
process.on('unhandledRejection', onUnhandled)
t.teardown(() => {
  process.off('unhandledRejection', onUnhandled)
})

// ---------------------------------------------------------------------------------------------
// Randomness, reporting

const ID_CHARS = [...'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-']

class Fuzzer {
  readonly #random: seedrandom.PRNG

  constructor(seed: string) {
    this.#random = seedrandom(seed)
  }

  below(n: number): number {
    return Math.floor(this.#random() * n)
  }

  /** A whole number from min to max, both included. */
  between(min: number, max: number): number {
    return min + this.below(max - min + 1)
  }

  chance(p: number): boolean {
    return this.#random() < p
  }

  pick<T>(items: readonly T[]): T {
    return items[this.below(items.length)] as T
  }

  bytes(length: number): Buffer {
    const bytes = Buffer.alloc(length)
    for (let i = 0; i < length; i++) bytes[i] = this.below(256)
    return bytes
  }

  idChars(length: number): string {
    let text = ''
    for (let i = 0; i < length; i++) text += this.pick(ID_CHARS)
    return text
  }
}

/** Bytes as printable ASCII (\n, \r, \xNN escapes), cut at `max` characters. */
function escape(input: Buffer | string, max = 300): string {
  const bytes = typeof input === 'string' ? Buffer.from(input, 'utf8') : input
  let text = ''
  for (const byte of bytes) {
    if (text.length >= max) return `${text}... (${bytes.length} bytes)`
    if (byte === 0x0a) text += '\\n'
    else if (byte === 0x0d) text += '\\r'
    else if (byte === 0x5c) text += '\\\\'
    else if (byte >= 0x20 && byte < 0x7f) text += String.fromCharCode(byte)
    else text += `\\x${byte.toString(16).padStart(2, '0')}`
  }
  return text
}

/** What each check asserts; a finding names one. */
const CHECKS = {
  lineAnswer: 'every line answer is "ok ..." or "err CODE message", and arrives whole',
  internal: 'no INTERNAL_ERROR on either protocol',
  codes: 'every error code is one the server documents',
  unauthenticated: 'a line client without the token is never answered ok',
  expectations: 'auth answered ok, timeouts notified last, stalled readers cut, setup steps ok',
  hang: 'the server answers or closes every connection in time',
  httpStatus: 'HTTP statuses are below 500, or 503 for store trouble and limits',
  httpBody: "HTTP errors are { error: { code, message } } (or Node's own empty 4xx)",
  parity: 'the same input gets the same code from the line protocol and HTTP',
  memory: `bufferedBytes stays under ${BUFFERED_BYTES_BOUND} bytes`,
  locks: 'no lock outlives the connection that took it',
  sentinels: 'the sessions written before the fuzz read back unchanged',
} as const
type Check = keyof typeof CHECKS

const EXAMPLES_PER_CHECK = 5

class Findings {
  readonly #byCheck = new Map<Check, { count: number; examples: string[] }>()

  /** `input`: the bytes sent (escaped here), or a description of them already escaped. */
  add(check: Check, where: string, detail: string, input?: Buffer | string): void {
    let entry = this.#byCheck.get(check)
    if (entry === undefined) this.#byCheck.set(check, (entry = { count: 0, examples: [] }))
    entry.count++
    if (entry.examples.length < EXAMPLES_PER_CHECK) {
      const shown =
        typeof input === 'string' ? input.slice(0, 700) : escape(input ?? Buffer.alloc(0))
      const sent = input === undefined ? '' : `; input: ${shown}`
      entry.examples.push(`seed ${SEED}, ${where}: ${detail}${sent}`)
    }
  }

  /** Examples of a check's findings, with the count when there were more. */
  of(check: Check): string[] {
    const entry = this.#byCheck.get(check)
    if (entry === undefined) return []
    const more = entry.count - entry.examples.length
    return more > 0 ? [...entry.examples, `... and ${more} more`] : entry.examples
  }
}

const findings = new Findings()

/** Codes the server documents (docs/server.md and the library's, docs/errors.md). */
const KNOWN_CODES = new Set([
  'BAD_REQUEST',
  'UNKNOWN_COMMAND',
  'LINE_TOO_LONG',
  'VALUE_TOO_LARGE',
  'INVALID_JSON',
  'NO_OPEN_SESSION',
  'SESSION_ALREADY_OPEN',
  'READ_ONLY',
  'KEY_NOT_FOUND',
  'UNAUTHORIZED',
  'FORBIDDEN',
  'TOO_MANY_CONNECTIONS',
  'IDLE_TIMEOUT',
  'AUTH_TIMEOUT',
  'SHUTTING_DOWN',
  'NOT_FOUND',
  'METHOD_NOT_ALLOWED',
  'BODY_TOO_LARGE',
  'UNSUPPORTED_MEDIA_TYPE',
  'INVALID_OPTION',
  'INVALID_SESSION_ID',
  'INVALID_SESSION_DATA',
  'SESSION_TOO_LARGE',
  'SESSION_NOT_FOUND',
  'VERSION_CONFLICT',
  'LOCK_TIMEOUT',
  'LOCK_EXPIRED',
  'NO_STORE_AVAILABLE',
  'NOT_ENOUGH_STORES',
  'STORE_TIMEOUT',
  'MANAGER_CLOSED',
])
/** The codes a 503 may carry: the stores cannot serve, or the server is at a limit. */
const UNAVAILABLE_CODES = new Set([
  'NO_STORE_AVAILABLE',
  'NOT_ENOUGH_STORES',
  'STORE_TIMEOUT',
  'MANAGER_CLOSED',
  'SHUTTING_DOWN',
  'TOO_MANY_CONNECTIONS',
])
/** Statuses Node's HTTP parser answers by itself (no JSON body): malformed requests, timeouts. */
const NODE_STATUSES = new Set([400, 408, 413, 417, 431])

/** Checks one error code from either protocol. */
function checkCode(code: string, where: string, input: Buffer | string): void {
  if (code === 'INTERNAL_ERROR') findings.add('internal', where, 'INTERNAL_ERROR', input)
  else if (!/^[A-Z_]+$/.test(code) || !KNOWN_CODES.has(code)) {
    findings.add('codes', where, `undocumented code ${JSON.stringify(code)}`, input)
  }
}

// Tallies for the summary: what the fuzz reached.
const tally = {
  lineEpisodes: 0,
  lineAnswers: 0,
  httpEpisodes: 0,
  httpResponses: 0,
  parityCases: 0,
  codes: new Map<string, number>(),
  statuses: new Map<number, number>(),
}
function count(code: string): void {
  tally.codes.set(code, (tally.codes.get(code) ?? 0) + 1)
}

// ---------------------------------------------------------------------------------------------
// Sockets

function rawConnect(address: AddressInfo): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ port: address.port, host: address.address })
    socket.once('connect', () => {
      socket.off('error', reject)
      socket.on('error', () => {}) // resets are part of the game; 'close' follows
      resolve(socket)
    })
    socket.once('error', reject)
  })
}

/**
 * Resolves true once `done()` holds, looked at whenever the socket brings data or closes;
 * false if it does not within `millis`.
 */
function until(socket: Socket, done: () => boolean, millis: number): Promise<boolean> {
  if (done()) return Promise.resolve(true)
  return new Promise((resolve) => {
    const finish = (result: boolean): void => {
      clearTimeout(timer)
      socket.off('data', check)
      socket.off('close', check)
      resolve(result)
    }
    const check = (): void => {
      if (done()) finish(true)
    }
    const timer = setTimeout(() => finish(done()), millis)
    // Listeners added after the reader's: they see what a chunk completed.
    socket.on('data', check)
    socket.on('close', check)
  })
}

/** Writes bytes in pieces, each after its delay: a slow sender. Stops once the socket is gone. */
async function send(socket: Socket, pieces: readonly Piece[]): Promise<void> {
  for (const { bytes, delay } of pieces) {
    if (delay > 0) await sleep(delay)
    if (socket.destroyed || socket.writableEnded) return
    socket.write(bytes)
  }
}

interface Piece {
  bytes: Buffer
  /** Milliseconds to wait before writing it. */
  delay: number
}

/** Bytes as one write, or (a slow sender) as several with small delays between them. */
function pieces(f: Fuzzer, bytes: Buffer, slow: boolean, delay = 0): Piece[] {
  if (!slow || bytes.length < 2) return [{ bytes, delay }]
  const cuts = new Set<number>()
  const wanted = f.between(2, 8)
  for (let i = 0; i < wanted; i++) cuts.add(f.between(1, bytes.length - 1))
  const sorted = [...cuts].sort((a, b) => a - b)
  const result: Piece[] = []
  let from = 0
  for (const cut of [...sorted, bytes.length]) {
    result.push({
      bytes: bytes.subarray(from, cut),
      delay: result.length === 0 ? delay : f.between(1, 15),
    })
    from = cut
  }
  return result
}

// ---------------------------------------------------------------------------------------------
// Line protocol: answers

type LineAnswer =
  { ok: true; line: string; payload?: Buffer } | { ok: false; code: string; message: string }

/** Splits what the server sends into answers; stops at the first thing that is not one. */
class AnswerReader {
  #buffer: Buffer = Buffer.alloc(0)
  readonly answers: LineAnswer[] = []
  /** The first malformed answer, escaped. */
  malformed: string | undefined

  push(chunk: Buffer): void {
    if (this.malformed !== undefined) return
    this.#buffer = this.#buffer.length === 0 ? chunk : Buffer.concat([this.#buffer, chunk])
    for (;;) {
      const answer = this.#next()
      if (answer === undefined) return
      this.answers.push(answer)
    }
  }

  /** Bytes of an answer that has not arrived whole. */
  get pendingBytes(): number {
    return this.#buffer.length
  }

  #next(): LineAnswer | undefined {
    if (this.malformed !== undefined) return undefined
    const lf = this.#buffer.indexOf(0x0a)
    if (lf === -1) {
      // No answer line is this long: the server is not sending answers.
      if (this.#buffer.length > 4 * MAX_LINE_BYTES + 200) this.#bad(this.#buffer)
      return undefined
    }
    const line = this.#buffer.subarray(0, lf).toString('utf8')
    const head = /^ok ([sbj]) (\d+)$/.exec(line)
    if (head !== null) {
      const end = lf + 1 + Number(head[2])
      if (this.#buffer.length < end + 1) return undefined
      if (this.#buffer[end] !== 0x0a) {
        this.#bad(this.#buffer.subarray(0, end + 1))
        return undefined
      }
      const payload = Buffer.from(this.#buffer.subarray(lf + 1, end))
      this.#buffer = this.#buffer.subarray(end + 1)
      return { ok: true, line, payload }
    }
    const raw = this.#buffer.subarray(0, lf)
    this.#buffer = this.#buffer.subarray(lf + 1)
    if (line === 'ok' || /^ok [A-Za-z0-9_.-]+$/.test(line)) return { ok: true, line }
    const err = /^err ([^ ]+) ([^\n]+)$/.exec(line)
    if (err !== null && /^[A-Z_]+$/.test(err[1] as string)) {
      return { ok: false, code: err[1] as string, message: err[2] as string }
    }
    this.#bad(raw)
    return undefined
  }

  #bad(bytes: Buffer): void {
    this.malformed = escape(bytes, 200)
    this.#buffer = Buffer.alloc(0)
  }
}

/** A line client that waits for each answer (the parity runs and the final checks). */
class LineLink {
  readonly reader = new AnswerReader()
  readonly socket: Socket
  #taken = 0
  #closed = false
  /** Where the link is used, for findings. */
  where = 'line link'

  private constructor(socket: Socket) {
    this.socket = socket
    socket.on('data', (chunk: Buffer) => this.reader.push(chunk))
    socket.on('close', () => (this.#closed = true))
  }

  static async connect(address: AddressInfo): Promise<LineLink> {
    return new LineLink(await rawConnect(address))
  }

  get closed(): boolean {
    return this.#closed
  }

  /** Sends bytes and resolves the next answer; null when the connection closed, or none came. */
  async request(bytes: Buffer | string): Promise<LineAnswer | null> {
    // One request, one answer: an answer nobody asked for means the server lost step.
    const extra = this.reader.answers.slice(this.#taken)
    if (extra.length > 0) {
      const shown = extra.slice(0, 3).map(describe).join(' / ')
      findings.add(
        'lineAnswer',
        this.where,
        `out of step: ${extra.length} answers too many (${shown})`,
      )
      this.#taken = this.reader.answers.length
    }
    if (!this.#closed) this.socket.write(bytes)
    await until(
      this.socket,
      () =>
        this.reader.answers.length > this.#taken ||
        this.#closed ||
        this.reader.malformed !== undefined,
      HANG_MILLIS,
    )
    const answer = this.reader.answers[this.#taken]
    if (answer === undefined) return null
    this.#taken++
    return answer
  }

  destroy(): void {
    this.socket.destroy()
  }
}

/** The bytes of a request: the line, and for put / put_all its byte count, payload and LF. */
function frame(line: string, payload?: Buffer | string): Buffer {
  if (payload === undefined) return Buffer.from(`${line}\n`)
  const bytes = typeof payload === 'string' ? Buffer.from(payload, 'utf8') : payload
  return Buffer.concat([Buffer.from(`${line} ${bytes.length}\n`), bytes, Buffer.from('\n')])
}

function describe(answer: LineAnswer | null): string {
  if (answer === null) return 'no answer (connection closed)'
  return answer.ok ? answer.line : `err ${answer.code} ${answer.message}`
}

// ---------------------------------------------------------------------------------------------
// Line protocol: frames and their mutations

/** A request as generated, before any mutation. */
interface LineFrame {
  label: string
  /** The command line without its LF (and without the byte count of a payload). */
  line: Buffer
  payload?: Buffer
  /** Names a sentinel session: sent exactly as made, so that no mutation turns it into a write. */
  sentinel?: true
}

function frameBytes(request: LineFrame, count = request.payload?.length): Buffer {
  if (request.payload === undefined) return Buffer.concat([request.line, Buffer.from('\n')])
  return Buffer.concat([
    request.line,
    Buffer.from(` ${count}\n`),
    request.payload,
    Buffer.from('\n'),
  ])
}

const KEYS = ['user', 'n', 'cart', 'a b', '100%', 'ü✓', 'k'.repeat(255), 'line\nbreak', '..']
const BAD_KEY_TOKENS = [
  '%zz',
  '%',
  '%E0%A4%A',
  '%FF',
  '%ED%A0%80',
  '__proto__',
  '%5F%5Fproto%5F%5F',
  'k'.repeat(256),
]
const BAD_UTF8 = [
  Buffer.from([0xff]),
  Buffer.from([0xc3, 0x28]),
  Buffer.from([0xed, 0xa0, 0x80]),
  Buffer.from([0xf8, 0x88, 0x80, 0x80, 0x80]),
  Buffer.from([0xc0, 0xaf]),
  Buffer.from([0xe2, 0x82]),
]
const HUGE_COUNTS = [
  '999999999',
  '9999999999',
  '99999999999',
  '4294967296',
  `${MAX_BODY_BYTES + 1}`,
  '0000065537',
  '1e9',
  '-1',
  '0x10',
  '+5',
]

function keyToken(f: Fuzzer): string {
  return f.chance(0.9) ? encodeURIComponent(f.pick(KEYS)) : f.pick(BAD_KEY_TOKENS)
}

/** A value for put: text, bytes that are not UTF-8, text that looks like the protocol, big. */
function lineValue(f: Fuzzer): Buffer {
  switch (f.below(8)) {
    case 0:
      return Buffer.from(f.idChars(f.between(0, 40)))
    case 1:
      return Buffer.from('héllo — 日本語 🎉\u2028\u0000', 'utf8')
    case 2:
      return f.bytes(f.between(1, 64))
    case 3:
      return Buffer.from('ok\nerr X y\ndestroy\n\r\n')
    case 4:
      return Buffer.alloc(0)
    case 5:
      return Buffer.alloc(f.between(1000, 8000), 'v')
    case 6:
      // Large enough that a few of them outgrow the session limit.
      return f.chance(0.5) ? Buffer.alloc(f.between(20_000, 62_000), 'w') : f.bytes(300)
    default:
      return Buffer.from(String(f.below(1e6)))
  }
}

/** A JSON body for put_all / PUT / PATCH: objects, and bodies the server must refuse. */
function jsonBody(f: Fuzzer): Buffer {
  switch (f.below(16)) {
    case 0:
    case 1:
    case 2:
      return Buffer.from(
        JSON.stringify({ [f.pick(KEYS)]: f.idChars(f.between(0, 30)), n: f.below(99) }),
      )
    case 3:
      return Buffer.from(JSON.stringify({ nested: { a: [1, 'two', null, { b: true }] }, u: 'é🎉' }))
    case 4:
      return Buffer.from(
        f.pick(['{"broken"', '{', '', ' ', 'undefined', "{'a':1}", '{"a":1}}', 'nul']),
      )
    case 5:
      return Buffer.from(f.pick(['[1,2]', 'null', '42', '"text"', 'true', '[]']))
    case 6:
      return Buffer.concat([Buffer.from('{"name":"'), f.pick(BAD_UTF8), Buffer.from('"}')])
    case 7:
      return Buffer.from(
        f.pick([
          '{"__proto__":{"isAdmin":true}}',
          '{"":1}',
          `{"${'k'.repeat(256)}":1}`,
          '{"a":1,"a":2}',
        ]),
      )
    case 8: {
      const depth = f.pick([10, 1000, 20_000])
      return Buffer.from(`{"deep":${'['.repeat(depth)}${']'.repeat(depth)}}`)
    }
    case 9:
      // Around the limits: the body's own, and the session's once merged.
      return Buffer.from(
        JSON.stringify({ blob: 'x'.repeat(MAX_BODY_BYTES + f.between(-200, 200)) }),
      )
    case 10:
      return Buffer.from(JSON.stringify({ blob: 'y'.repeat(f.between(1000, 40_000)) }))
    case 11:
      // Whitespace JSON allows around the object, and whitespace it does not.
      return Buffer.from(
        `${f.pick(['', ' ', '\t', '\r\n', '\u00a0', '\ufeff'])}{"w":1}${f.pick(['', ' ', '\n', '\u00a0', '\u2028', '\u3000'])}`,
      )
    case 12:
      return f.bytes(f.between(1, 100))
    case 13:
      return Buffer.from('{"big":1e400,"small":-0,"n":123456789012345678901234567890}')
    default:
      return Buffer.from(JSON.stringify({ cart: [f.below(10), f.below(10)], at: f.below(1e9) }))
  }
}

interface LineContext {
  /** Sessions this client may write: its own and some shared with the others. */
  ids: readonly string[]
  authenticated: boolean
}

/** An id to write to: usually the client's own, sometimes a mutated one (never a sentinel). */
function writableId(f: Fuzzer, ctx: { ids: readonly string[] }): string {
  if (f.chance(0.1)) return mutatedId(f, f.chance(0.5) ? f.pick(sentinelIds) : f.pick(ctx.ids))
  return f.pick(ctx.ids)
}

function mutatedId(f: Fuzzer, id: string): string {
  let result: string
  switch (f.below(8)) {
    case 0:
      result = id.slice(0, f.pick([1, 15, 16, id.length - 1]))
      break
    case 1:
      result = id + f.idChars(f.pick([1, 128 - id.length, 129 - id.length, 200]))
      break
    case 2: {
      const at = f.below(id.length + 1)
      const bad = f.pick([
        ' ',
        '/',
        '%',
        '+',
        '=',
        "'",
        '"',
        '\\',
        ';',
        '\t',
        '*',
        '~',
        '#',
        '?',
        '\u0000',
        'é',
        '😀',
        '\u00a0',
      ])
      result = `${id.slice(0, at)}${bad}${id.slice(at)}`
      break
    }
    case 3: {
      const at = f.below(id.length)
      result = `${id.slice(0, at)}${id[at] === 'A' ? 'B' : 'A'}${id.slice(at + 1)}`
      break
    }
    case 4:
      result = id.toUpperCase() === id ? id.toLowerCase() : id.toUpperCase()
      break
    case 5:
      result = `%41${id.slice(1)}`
      break
    case 6:
      result = f.pick(['................', '-'.repeat(16), '.', '..', `${id}.`])
      break
    default:
      result = f.idChars(f.pick([1, 15, 129, 300]))
  }
  // A mutation is never a sentinel again: the fuzz writes to what it mutates.
  return sentinelSet.has(result) ? `${result}!` : result
}

/** A well-formed request (in grammar; many are still refused by the server). */
function validFrame(f: Fuzzer, ctx: LineContext): LineFrame {
  const roll = f.below(100)
  const line = (text: string): Buffer => Buffer.from(text, 'utf8')
  if (roll < 13) {
    const mode = f.pick(['w', 'w', 'r', ''])
    if (mode !== 'w' && f.chance(0.3)) {
      const id = f.pick(sentinelIds)
      return {
        label: 'open sentinel',
        line: line(`open ${id}${mode === '' ? '' : ' r'}`),
        sentinel: true,
      }
    }
    const id = writableId(f, ctx)
    return {
      label: `open ${mode || '(r)'}`,
      line: line(`open ${id}${mode === '' ? '' : ` ${mode}`}`),
    }
  }
  if (roll < 17) return { label: 'new', line: line('new') }
  if (roll < 23) return { label: 'close', line: line('close') }
  if (roll < 29) return { label: 'commit', line: line('commit') }
  if (roll < 31) return { label: 'destroy', line: line('destroy') }
  if (roll < 34) return { label: 'regenerate_id', line: line('regenerate_id') }
  if (roll < 41) {
    const which = f.below(4)
    if (which === 0) return { label: 'exists', line: line('exists') }
    if (which === 1) {
      return {
        label: 'exists sentinel',
        line: line(`exists ${f.pick(sentinelIds)}`),
        sentinel: true,
      }
    }
    const id = which === 2 ? writableId(f, ctx) : f.idChars(f.between(16, 40))
    return { label: 'exists <id>', line: line(`exists ${id}`) }
  }
  if (roll < 45) return { label: 'keys', line: line('keys') }
  if (roll < 51) return { label: 'get_all', line: line('get_all') }
  if (roll < 60) return { label: 'get', line: line(`get ${keyToken(f)}`) }
  if (roll < 65) return { label: 'remove', line: line(`remove ${keyToken(f)}`) }
  if (roll < 81) return { label: 'put', line: line(`put ${keyToken(f)}`), payload: lineValue(f) }
  if (roll < 91) return { label: 'put_all', line: line('put_all'), payload: jsonBody(f) }
  if (roll < 99) {
    const json = JSON.stringify({ [f.pick(KEYS)]: f.below(1000), s: f.idChars(f.between(0, 20)) })
    return { label: 'put_all inline', line: line(`put_all ${json}`) }
  }
  // Rare: a wrong token hangs up, which ends the episode early.
  const right = ctx.authenticated && f.chance(0.7)
  return {
    label: right ? 'auth' : 'auth (wrong)',
    line: line(`auth ${right ? TOKEN : f.idChars(24)}`),
  }
}

const MUTATIONS = [
  'count',
  'huge',
  'garbage',
  'flip',
  'utf8',
  'crlf',
  'long',
  'case',
  'nul',
  'truncate',
  'repeat',
  'no-lf',
  'raw',
] as const

/** The request's bytes, mutated one way (or sent as made). */
function mutate(f: Fuzzer, request: LineFrame): { label: string; bytes: Buffer } {
  const bytes = frameBytes(request)
  if (request.sentinel === true) return { label: request.label, bytes }
  const kind = f.pick(MUTATIONS)
  const label = `${request.label} [${kind}]`
  const insert = (at: number, extra: Buffer): Buffer =>
    Buffer.concat([bytes.subarray(0, at), extra, bytes.subarray(at)])
  switch (kind) {
    case 'count': {
      if (request.payload === undefined) {
        return { label, bytes: Buffer.concat([request.line, Buffer.from(' 3\nabc\n')]) }
      }
      const length = request.payload.length
      const count = f.chance(0.5)
        ? Math.max(0, length - f.between(1, Math.max(1, length)))
        : length + f.between(1, 5)
      return { label, bytes: frameBytes(request, count) }
    }
    case 'huge':
      return {
        label,
        bytes: Buffer.concat([
          request.line,
          Buffer.from(` ${f.pick(HUGE_COUNTS)}\n`),
          request.payload ?? f.bytes(f.between(0, 20)),
          Buffer.from('\n'),
        ]),
      }
    case 'garbage':
      return { label, bytes: insert(f.below(bytes.length + 1), f.bytes(f.between(1, 16))) }
    case 'flip': {
      const copy = Buffer.from(bytes)
      for (let i = f.between(1, 3); i > 0; i--) copy[f.below(copy.length)] = f.below(256)
      return { label, bytes: copy }
    }
    case 'utf8':
      return { label, bytes: insert(f.below(request.line.length + 1), f.pick(BAD_UTF8)) }
    case 'crlf': {
      const lf = bytes.indexOf(0x0a)
      const odd = f.pick(['\r\n', '\r', '\n\n', '\r\r\n', '\n\r', '\r\n\r\n'])
      if (f.chance(0.3))
        return { label, bytes: insert(f.below(lf + 1), Buffer.from(f.pick(['\r', '\r\n', '\n']))) }
      return {
        label,
        bytes: Buffer.concat([bytes.subarray(0, lf), Buffer.from(odd), bytes.subarray(lf + 1)]),
      }
    }
    case 'long': {
      const length = f.pick([
        MAX_LINE_BYTES - 1,
        MAX_LINE_BYTES,
        MAX_LINE_BYTES + 1,
        MAX_LINE_BYTES + 2,
        f.between(2 * MAX_LINE_BYTES, 20 * MAX_LINE_BYTES),
      ])
      const padding = Math.max(1, length - request.line.length - 1)
      const line = Buffer.concat([request.line, Buffer.from(' '), Buffer.alloc(padding, 'p')])
      const crlf = f.chance(0.3) ? '\r\n' : '\n'
      return { label, bytes: Buffer.concat([line, Buffer.from(crlf)]) }
    }
    case 'case': {
      const text = request.line.toString('utf8')
      const odd = f.pick([
        text.toUpperCase(),
        text.replace(/ /g, '  '),
        ` ${text}`,
        `${text} `,
        text.replace(/ /g, '\t'),
        text.replace(/^(\w)/, (c) => c.toUpperCase()),
      ])
      return { label, bytes: frameBytes({ ...request, line: Buffer.from(odd, 'utf8') }) }
    }
    case 'nul':
      return { label, bytes: insert(f.below(bytes.length + 1), Buffer.alloc(f.between(1, 3))) }
    case 'truncate':
      return { label, bytes: bytes.subarray(0, f.below(bytes.length)) }
    case 'repeat': {
      const copies = f.between(2, 80)
      return {
        label: `${label} x${copies}`,
        bytes: Buffer.concat(Array(copies).fill(bytes) as Buffer[]),
      }
    }
    case 'no-lf':
      return { label, bytes: bytes.subarray(0, bytes.length - 1) }
    default: {
      const junk = f.chance(0.5)
        ? f.bytes(f.between(1, 200))
        : Buffer.from(`${f.idChars(f.between(1, 30))}\n`)
      return { label: 'raw bytes', bytes: junk }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Line protocol: episodes

/** How an episode ends: half-close and read every answer; cut the connection; go silent; stop reading. */
type LineEnding = 'end' | 'destroy' | 'silent' | 'stall'

interface LinePlan {
  authenticated: boolean
  labels: string[]
  writes: Piece[]
  ending: LineEnding
  /** For 'stall': how many requests were sent (the server must cut before answering them all). */
  requests?: number
}

function linePlan(f: Fuzzer, ctx: LineContext): LinePlan {
  const roll = f.below(100)
  if (roll < 3) return stallPlan(f)
  if (roll < 6) return silentPlan(f, ctx)
  const labels: string[] = []
  const writes: Piece[] = []
  if (ctx.authenticated) {
    labels.push('auth')
    writes.push({ bytes: Buffer.from(`auth ${TOKEN}${f.chance(0.2) ? '\r\n' : '\n'}`), delay: 0 })
    // Most episodes work on an open session, so that the session commands get past NO_OPEN_SESSION.
    if (f.chance(0.6)) {
      const open = f.chance(0.8) ? `open ${f.pick(ctx.ids)} w` : 'new'
      labels.push(open.split(' ', 2).join(' '))
      writes.push({ bytes: Buffer.from(`${open}\n`), delay: 0 })
    }
  }
  for (let burst = f.between(1, 10); burst > 0; burst--) {
    const size = f.chance(0.6) ? 1 : f.chance(0.75) ? f.between(2, 8) : f.between(20, 90)
    const parts: Buffer[] = []
    for (let i = 0; i < size; i++) {
      const request = validFrame(f, ctx)
      const sent = f.chance(0.5)
        ? { label: request.label, bytes: frameBytes(request) }
        : mutate(f, request)
      labels.push(sent.label)
      parts.push(sent.bytes)
    }
    const delay = f.chance(0.3) ? f.between(1, 20) : 0
    writes.push(...pieces(f, Buffer.concat(parts), f.chance(0.2), delay))
  }
  const ending: LineEnding = f.chance(0.88) ? 'end' : 'destroy'
  if (ending === 'destroy') {
    // Cut mid-frame: the server holds a partial line or payload when the client goes.
    const partial = frameBytes(validFrame(f, ctx))
    writes.push({ bytes: partial.subarray(0, f.below(partial.length)), delay: 0 })
    labels.push('(truncated, then the connection is cut)')
  }
  return { authenticated: ctx.authenticated, labels, writes, ending }
}

/** Says nothing after its first requests (or mid-payload): the server's deadline must close it. */
function silentPlan(f: Fuzzer, ctx: LineContext): LinePlan {
  if (!ctx.authenticated) {
    // Blank lines are no activity: they must not hold the auth deadline off.
    return {
      authenticated: false,
      labels: ['blank lines, then silence'],
      writes: [{ bytes: Buffer.from('\n\r\n'), delay: 0 }],
      ending: 'silent',
    }
  }
  const tail = f.chance(0.5) ? Buffer.from('put k 10\nabc') : Buffer.from(`exists ${f.idChars(20)}`)
  return {
    authenticated: true,
    labels: ['auth', 'keys', 'a request never finished, then silence'],
    writes: [{ bytes: Buffer.concat([Buffer.from(`auth ${TOKEN}\nkeys\n`), tail]), delay: 0 }],
    ending: 'silent',
  }
}

/** Pipelines far more big answers than socket buffers hold, and reads none of them for a while. */
function stallPlan(f: Fuzzer): LinePlan {
  const gets = f.between(250, 350)
  const puts = f.between(0, 20)
  const big = Buffer.alloc(MAX_BODY_BYTES - 200, 's')
  const bytes = Buffer.concat([
    Buffer.from(`auth ${TOKEN}\n`),
    // A session of its own (another client may hold the lock of any given id).
    frame('new'),
    frame('put big', big),
    Buffer.from('get_all\n'.repeat(gets)),
    ...Array.from({ length: puts }, () => frame('put other', big)),
  ])
  return {
    authenticated: true,
    labels: ['auth', 'new', 'put big', `get_all x${gets}`, `put x${puts}`, '(answers unread)'],
    writes: [{ bytes, delay: 0 }],
    ending: 'stall',
    requests: 3 + gets + puts,
  }
}

async function runLineEpisode(
  address: AddressInfo,
  plan: LinePlan,
  where: string,
  inputs: Hash,
): Promise<void> {
  tally.lineEpisodes++
  const input = Buffer.concat(plan.writes.map((piece) => piece.bytes))
  inputs.update(input)
  const describeInput = `${plan.labels.slice(0, 30).join(' | ')}${plan.labels.length > 30 ? ' | ...' : ''}`
  const socket = await rawConnect(address)
  const reader = new AnswerReader()
  let closed = false
  socket.on('data', (chunk: Buffer) => reader.push(chunk))
  socket.on('close', () => (closed = true))
  if (plan.ending === 'stall') socket.pause()
  await send(socket, plan.writes)
  let timely = true
  switch (plan.ending) {
    case 'end':
      socket.end()
      timely = await until(socket, () => closed, HANG_MILLIS)
      break
    case 'destroy':
      socket.destroy()
      break
    case 'silent':
      timely = await until(socket, () => closed, TIMEOUT_MILLIS + HANG_MILLIS)
      break
    case 'stall':
      // A client that does not read: a fixed pause is the behaviour under test here.
      await sleep(STALL_MILLIS)
      socket.resume()
      timely = await until(
        socket,
        () => closed || reader.answers.length >= (plan.requests ?? 0),
        HANG_MILLIS,
      )
      break
  }
  if (!timely) {
    findings.add(
      'hang',
      where,
      `not closed within ${HANG_MILLIS} ms of "${plan.ending}" (${describeInput})`,
      input,
    )
  }
  socket.destroy()
  checkLineAnswers(plan, reader, where, `${describeInput} :: ${escape(input, 200)}`, input)
}

function checkLineAnswers(
  plan: LinePlan,
  reader: AnswerReader,
  where: string,
  context: string,
  input: Buffer,
): void {
  const { answers } = reader
  tally.lineAnswers += answers.length
  if (reader.malformed !== undefined) {
    findings.add('lineAnswer', where, `malformed answer "${reader.malformed}" (${context})`)
  }
  if (reader.pendingBytes > 0 && (plan.ending === 'end' || plan.ending === 'silent')) {
    findings.add('lineAnswer', where, `an answer cut short: ${reader.pendingBytes} bytes`, input)
  }
  answers.forEach((answer, index) => {
    if (answer.ok) {
      if (!plan.authenticated) {
        findings.add('unauthenticated', where, `answer ${index} is "${answer.line}"`, input)
      }
      return
    }
    count(answer.code)
    checkCode(answer.code, `${where} answer ${index}`, input)
    if (
      (answer.code === 'AUTH_TIMEOUT' || answer.code === 'IDLE_TIMEOUT') &&
      index !== answers.length - 1
    ) {
      findings.add(
        'expectations',
        where,
        `${answers.length - index - 1} answers after ${answer.code}`,
        input,
      )
    }
  })
  const first = answers[0]
  if (plan.authenticated && first !== undefined && !(first.ok && first.line === 'ok')) {
    findings.add('expectations', where, `auth with the token answered "${describe(first)}"`, input)
  }
  if (plan.ending === 'silent') {
    const last = answers[answers.length - 1]
    const expected = plan.authenticated ? 'IDLE_TIMEOUT' : 'AUTH_TIMEOUT'
    if (last === undefined || last.ok || last.code !== expected) {
      findings.add(
        'expectations',
        where,
        `a silent client got "${describe(last ?? null)}", not ${expected}`,
        input,
      )
    }
  }
  if (plan.ending === 'stall' && answers.length >= (plan.requests ?? 0)) {
    findings.add(
      'expectations',
      where,
      `a client that read nothing for ${STALL_MILLIS} ms was not cut`,
      input,
    )
  }
}

// ---------------------------------------------------------------------------------------------
// HTTP: responses

interface HttpAnswer {
  status: number
  headers: Map<string, string>
  body: Buffer
}

/** Splits what the HTTP server sends into responses (interim 1xx skipped). */
class ResponseReader {
  #buffer: Buffer = Buffer.alloc(0)
  readonly responses: HttpAnswer[] = []
  malformed: string | undefined
  readonly #isHead: (index: number) => boolean

  constructor(isHead: (index: number) => boolean = () => false) {
    this.#isHead = isHead
  }

  push(chunk: Buffer): void {
    this.#buffer = this.#buffer.length === 0 ? chunk : Buffer.concat([this.#buffer, chunk])
    this.#drain(false)
  }

  /** The connection closed: a body delimited by the close is complete. */
  finish(): void {
    this.#drain(true)
    if (this.malformed === undefined && this.#buffer.length > 0) {
      this.malformed = `an incomplete response at close: ${escape(this.#buffer, 200)}`
    }
  }

  #drain(atClose: boolean): void {
    while (this.malformed === undefined && this.#buffer.length > 0) {
      const end = this.#buffer.indexOf('\r\n\r\n')
      if (end === -1) return
      const [statusLine = '', ...lines] = this.#buffer
        .subarray(0, end)
        .toString('latin1')
        .split('\r\n')
      const status = /^HTTP\/1\.[01] (\d{3})(?: [^\r\n]*)?$/.exec(statusLine)
      if (status === null) {
        this.malformed = `status line ${escape(statusLine, 120)}`
        return
      }
      const headers = new Map<string, string>()
      for (const line of lines) {
        const colon = line.indexOf(':')
        const name = line.slice(0, colon).trim().toLowerCase()
        const value = line.slice(colon + 1).trim()
        headers.set(name, headers.has(name) ? `${headers.get(name)}, ${value}` : value)
      }
      const code = Number(status[1])
      const rest = this.#buffer.subarray(end + 4)
      let body: Buffer
      let used: number
      if (code < 200) {
        this.#buffer = rest // 100 Continue: the final response follows
        continue
      } else if (code === 204 || code === 304 || this.#isHead(this.responses.length)) {
        body = Buffer.alloc(0)
        used = 0
      } else if (/chunked/i.test(headers.get('transfer-encoding') ?? '')) {
        const decoded = dechunk(rest)
        if (decoded === null) {
          this.malformed = `a chunked body: ${escape(rest, 120)}`
          return
        }
        if (decoded === undefined) return
        ;({ body, used } = decoded)
      } else if (headers.has('content-length')) {
        const length = Number(headers.get('content-length'))
        if (rest.length < length) return
        body = rest.subarray(0, length)
        used = length
      } else {
        if (!atClose) return
        body = rest
        used = rest.length
      }
      this.responses.push({ status: code, headers, body: Buffer.from(body) })
      this.#buffer = rest.subarray(used)
    }
  }
}

/** A chunked body: decoded with the bytes it took, undefined while incomplete, null if malformed. */
function dechunk(bytes: Buffer): { body: Buffer; used: number } | undefined | null {
  const parts: Buffer[] = []
  let at = 0
  for (;;) {
    const lineEnd = bytes.indexOf('\r\n', at)
    if (lineEnd === -1) return undefined
    const size = parseInt(
      bytes.subarray(at, lineEnd).toString('latin1').split(';', 1)[0] as string,
      16,
    )
    if (!Number.isSafeInteger(size) || size < 0) return null
    at = lineEnd + 2
    if (size === 0) {
      // No trailers from this server: the empty line ends the body.
      if (bytes.length < at + 2) return undefined
      return { body: Buffer.concat(parts), used: at + 2 }
    }
    if (bytes.length < at + size + 2) return undefined
    parts.push(bytes.subarray(at, at + size))
    at += size + 2
  }
}

/** Checks one response; returns its error code (or 'ok' for 2xx, or `status N` for Node's own). */
function checkResponse(response: HttpAnswer, where: string, input: Buffer, head = false): string {
  tally.httpResponses++
  const { status } = response
  tally.statuses.set(status, (tally.statuses.get(status) ?? 0) + 1)
  const type = response.headers.get('content-type') ?? ''
  let code: string | undefined
  if (head) {
    // HEAD: the headers of the JSON answer, no body to look into.
  } else if (/^application\/json/.test(type)) {
    let parsed: unknown
    try {
      parsed = JSON.parse(response.body.toString('utf8'))
    } catch {
      findings.add(
        'httpBody',
        where,
        `${status} with a body that is not JSON: ${escape(response.body, 100)}`,
        input,
      )
      return `status ${status}`
    }
    if (status >= 400) {
      const error = (parsed as { error?: { code?: unknown; message?: unknown } } | null)?.error
      if (
        typeof error?.code !== 'string' ||
        typeof error.message !== 'string' ||
        error.message === ''
      ) {
        findings.add('httpBody', where, `${status} error body ${escape(response.body, 150)}`, input)
        return `status ${status}`
      }
      code = error.code
      count(code)
      checkCode(code, where, input)
    }
  } else if (!(
    status === 204 ||
    status < 400 ||
    (NODE_STATUSES.has(status) && response.body.length === 0)
  )) {
    findings.add(
      'httpBody',
      where,
      `${status} without a JSON body (${type || 'no content type'})`,
      input,
    )
  }
  if (status >= 500 && !(status === 503 && code !== undefined && UNAVAILABLE_CODES.has(code))) {
    findings.add('httpStatus', where, `status ${status} ${code ?? ''}`, input)
  }
  if (status < 300) return 'ok'
  return code ?? `status ${status}`
}

// ---------------------------------------------------------------------------------------------
// HTTP: requests

type Framing =
  | 'length'
  | 'none'
  | 'short'
  | 'long'
  | 'huge'
  | 'chunked'
  | 'chunked-bad'
  | 'chunked-unfinished'
  | 'both'
  | 'double-length'
  | 'bad-length'
/** Framings that leave the server waiting for more body: only ever the last request sent. */
const INCOMPLETE = new Set<Framing>(['long', 'huge', 'chunked-unfinished'])

interface HttpRequest {
  label: string
  bytes: Buffer
  head: boolean
  incomplete: boolean
}

interface HttpContext {
  ids: readonly string[]
}

const METHODS = ['GET', 'GET', 'PUT', 'PATCH', 'PATCH', 'DELETE', 'POST', 'POST', 'OPTIONS', 'HEAD']
const ODD_METHODS = ['FOO', 'get', 'PROPFIND', 'M'.repeat(300), 'TRACE', 'PURGE']
const CONTENT_TYPES = [
  'application/json',
  'application/json',
  'application/json; charset=utf-8',
  'application/merge-patch+json',
  'APPLICATION/JSON',
  'text/plain',
  'application/x-www-form-urlencoded',
  'multipart/form-data; boundary=x',
  'application/jsonx',
  '',
]

function httpTarget(f: Fuzzer, ctx: HttpContext, readOnly: boolean): string {
  const id =
    readOnly && f.chance(0.2)
      ? f.pick(sentinelIds)
      : f.chance(0.15)
        ? f.idChars(f.between(16, 40))
        : writableId(f, ctx)
  const roll = f.below(100)
  if (roll < 25) return `/sessions/${id}`
  if (roll < 45) return `/sessions/${id}/keys/${keyToken(f)}`
  if (roll < 52) return `/sessions/${id}/regenerate`
  if (roll < 62) return '/sessions'
  if (roll < 67)
    return f.pick([`/sessions/${id}/`, `/sessions/${id}?q=%zz`, `/sessions/${id}#frag`])
  if (roll < 77) {
    const junk = f.pick(['%', '%zz', '%E0%A4%A', '%00', '%2F', '%C0%AF', '%%', '%u0041'])
    return f.pick([`/sessions/${junk}${id}`, `/sessions/${id}/keys/${junk}`, `/${junk}`])
  }
  if (roll < 82) return `/sessions/${'a'.repeat(f.pick([129, 4000, 20_000]))}`
  if (roll < 90) {
    return f.pick([
      '/',
      '*',
      '/nowhere',
      '//sessions',
      `/sessions/${id}/keys/a/b`,
      `http://127.0.0.1/sessions/${id}`,
      '/sessions/../sessions',
      `/SESSIONS/${id}`,
      `/sessions/${id}/keys/`,
      `/sessions/${id}/elsewhere`,
      `/sessions/é${id}`,
      `/sessions/${id} x`,
    ])
  }
  return `/sessions/${encodeURIComponent(mutatedId(f, id))}`
}

function httpRequest(
  f: Fuzzer,
  ctx: HttpContext,
  options: { head: boolean; last: boolean },
): HttpRequest {
  if (f.chance(0.5)) return wellFormedRequest(f, ctx, options.head)
  let method = f.chance(0.05) ? f.pick(ODD_METHODS) : f.pick(METHODS)
  if (method === 'HEAD' && !options.head) method = 'GET'
  const readOnly = method === 'GET' || method === 'HEAD'
  const target = httpTarget(f, ctx, readOnly)
  const version = f.chance(0.93)
    ? 'HTTP/1.1'
    : f.pick(['HTTP/1.0', 'HTTP/2.0', 'HTTP/1.2', 'HTTPS/1.1', ''])
  const headers: string[] = []
  if (f.chance(0.97)) headers.push('Host: 127.0.0.1')
  if (f.chance(0.85)) headers.push(`Authorization: Bearer ${TOKEN}`)
  else {
    const auth = f.pick([
      '',
      `Authorization: Bearer ${f.idChars(34)}`,
      'Authorization: Bearer',
      `Authorization: Basic ${Buffer.from(`u:${TOKEN}`).toString('base64')}`,
      `Authorization: bearer ${TOKEN}`,
      `Authorization: Bearer  ${TOKEN}  `,
      `Authorization: Bearer ${TOKEN}x`,
    ])
    if (auth !== '') headers.push(auth)
  }
  const hasBody = !readOnly || f.chance(0.1)
  const body = hasBody
    ? f.chance(0.15)
      ? f.bytes(f.between(0, 64))
      : jsonBody(f)
    : Buffer.alloc(0)
  const type = f.pick(CONTENT_TYPES)
  if (hasBody && f.chance(0.85) && type !== '') headers.push(`Content-Type: ${type}`)
  if (f.chance(0.1))
    headers.push(
      f.pick([
        'If-Match: "1"',
        'If-Match: W/"x"',
        'If-None-Match: *',
        'If-Match: "9007199254740991"',
        'If-Match: "abc"',
      ]),
    )
  if (f.chance(0.05)) headers.push('Expect: 100-continue')
  if (f.chance(0.05))
    headers.push(f.pick(['Connection: close', 'Connection: keep-alive', 'Connection: upgrade']))
  if (f.chance(0.05)) {
    headers.push(
      f.pick([
        `X-Long: ${'h'.repeat(f.pick([1000, 20_000]))}`,
        'X Bad: name with a space',
        'X-Folded: a\r\n b',
        `X-Bytes: ${f.bytes(8).toString('latin1')}`,
        ': no name',
      ]),
    )
  }
  let framing: Framing = 'length'
  if (hasBody || f.chance(0.1)) {
    const roll = f.below(100)
    if (roll < 70) framing = 'length'
    else if (roll < 78) framing = 'chunked'
    else {
      framing = f.pick<Framing>([
        'none',
        'short',
        'chunked-bad',
        'both',
        'double-length',
        'bad-length',
        'long',
        'huge',
        'chunked-unfinished',
      ])
      if (INCOMPLETE.has(framing) && !options.last) framing = 'short'
    }
  }
  let encoded = body
  switch (framing) {
    case 'length':
      headers.push(`Content-Length: ${body.length}`)
      break
    case 'short':
      headers.push(`Content-Length: ${Math.max(0, body.length - f.between(1, 10))}`)
      break
    case 'long':
      headers.push(`Content-Length: ${body.length + f.between(1, 100)}`)
      break
    case 'huge':
      headers.push(
        `Content-Length: ${f.pick(['99999999999', '9007199254740993', '18446744073709551616', `${MAX_BODY_BYTES * 8 + 1}`, `${MAX_BODY_BYTES + 1}`])}`,
      )
      break
    case 'both':
      headers.push(`Content-Length: ${body.length}`, 'Transfer-Encoding: chunked')
      encoded = chunked(f, body, 'good')
      break
    case 'double-length':
      headers.push(`Content-Length: ${body.length}`, `Content-Length: ${body.length + 1}`)
      break
    case 'bad-length':
      headers.push(`Content-Length: ${f.pick(['-1', 'abc', '1 2', '0x10', ''])}`)
      break
    case 'chunked':
    case 'chunked-bad':
    case 'chunked-unfinished':
      headers.push(
        f.chance(0.9) ? 'Transfer-Encoding: chunked' : 'Transfer-Encoding: gzip, chunked',
      )
      encoded = chunked(
        f,
        body,
        framing === 'chunked' ? 'good' : framing === 'chunked-bad' ? 'bad' : 'unfinished',
      )
      break
    case 'none':
      break
  }
  const eol = f.chance(0.97) ? '\r\n' : '\n'
  const head =
    `${method} ${target} ${version}`.trimEnd() + eol + headers.map((h) => h + eol).join('') + eol
  return {
    label: `${method} ${target.slice(0, 60)} [${framing}]`,
    bytes: Buffer.concat([Buffer.from(head, 'utf8'), encoded]),
    head: method === 'HEAD',
    incomplete: INCOMPLETE.has(framing),
  }
}

/**
 * A request as a client means it: a route, the token, a JSON body of the right kind, its exact
 * length. These get past the parser and the checks, to the stores (alongside the line clients).
 */
function wellFormedRequest(f: Fuzzer, ctx: HttpContext, head: boolean): HttpRequest {
  const id = writableId(f, ctx)
  const key = encodeURIComponent(f.pick(KEYS))
  const object = (): Buffer =>
    Buffer.from(JSON.stringify({ [f.pick(KEYS)]: f.idChars(f.between(0, 20)), n: f.below(1000) }))
  const [method, target, body] = f.pick<[string, string, Buffer | undefined]>([
    ['POST', '/sessions', f.chance(0.7) ? object() : undefined],
    ['GET', `/sessions/${f.chance(0.3) ? f.pick(sentinelIds) : id}`, undefined],
    ['PUT', `/sessions/${id}`, object()],
    ['PATCH', `/sessions/${id}`, object()],
    ['DELETE', `/sessions/${id}`, undefined],
    ['GET', `/sessions/${id}/keys/${key}`, undefined],
    [
      'PUT',
      `/sessions/${id}/keys/${key}`,
      Buffer.from(JSON.stringify(f.pick([1, 'v', [1], { a: null }]))),
    ],
    ['DELETE', `/sessions/${id}/keys/${key}`, undefined],
    ['POST', `/sessions/${id}/regenerate`, undefined],
    [head ? 'HEAD' : 'GET', `/sessions/${id}`, undefined],
  ])
  const headers = [
    `${method} ${target} HTTP/1.1`,
    'Host: 127.0.0.1',
    `Authorization: Bearer ${TOKEN}`,
    ...(body === undefined
      ? []
      : ['Content-Type: application/json', `Content-Length: ${body.length}`]),
  ]
  return {
    label: `${method} ${target.slice(0, 60)}`,
    bytes: Buffer.concat([Buffer.from(`${headers.join('\r\n')}\r\n\r\n`), body ?? Buffer.alloc(0)]),
    head: method === 'HEAD',
    incomplete: false,
  }
}

/** A body in chunks of random sizes (with a chunk extension now and then), or broken. */
function chunked(f: Fuzzer, body: Buffer, kind: 'good' | 'bad' | 'unfinished'): Buffer {
  const parts: Buffer[] = []
  let at = 0
  while (at < body.length) {
    const size = Math.min(body.length - at, f.between(1, 20_000))
    const extension = f.chance(0.1) ? ';ext=1' : ''
    const hex = f.chance(0.5) ? size.toString(16) : size.toString(16).toUpperCase()
    parts.push(
      Buffer.from(`${hex}${extension}\r\n`),
      body.subarray(at, at + size),
      Buffer.from('\r\n'),
    )
    at += size
  }
  if (kind === 'bad') {
    parts.splice(
      f.below(parts.length + 1),
      0,
      Buffer.from(f.pick(['zz\r\n', '-1\r\n', '5\r\nab\r\n', '\r\n', 'ffffffffffffffffff\r\n'])),
    )
  }
  if (kind !== 'unfinished') parts.push(Buffer.from('0\r\n\r\n'))
  return Buffer.concat(parts)
}

/** How an HTTP episode ends: after the answers; cut after a truncation; wait for the server's deadline; stall. */
type HttpEnding = 'answers' | 'cut' | 'wait' | 'stall'

interface HttpPlan {
  requests: HttpRequest[]
  writes: Piece[]
  ending: HttpEnding
  /** Responses to wait for before 'cut' goes: those of the requests sent whole. */
  expected: number
}

function httpPlan(f: Fuzzer, ctx: HttpContext): HttpPlan {
  const roll = f.below(100)
  if (roll < 1) return httpStallPlan(f)
  const count = roll < 62 ? 1 : roll < 87 ? f.between(2, 10) : f.between(1, 3)
  const requests = Array.from({ length: count }, (_, index) =>
    httpRequest(f, ctx, { head: count === 1, last: index === count - 1 }),
  )
  const bytes = Buffer.concat(requests.map((request) => request.bytes))
  if (roll >= 95) {
    // Truncated: the requests stop somewhere, then the client goes (or waits for the deadline).
    const cut = f.below(bytes.length)
    let whole = 0
    for (let end = 0; whole < count; whole++) {
      end += (requests[whole] as HttpRequest).bytes.length
      if (end > cut) break
    }
    return {
      requests,
      writes: pieces(f, bytes.subarray(0, cut), f.chance(0.3)),
      ending: f.chance(0.15) ? 'wait' : 'cut',
      expected: whole,
    }
  }
  const slow = roll >= 87
  const last = requests[requests.length - 1] as HttpRequest
  const ending: HttpEnding = last.incomplete ? (f.chance(0.15) ? 'wait' : 'cut') : 'answers'
  return { requests, writes: pieces(f, bytes, slow), ending, expected: count - 1 }
}

/**
 * Pipelines many GETs of a large session and reads none of the answers for a while. Node stops
 * parsing a connection's requests while its answers back up, so the server holds about one
 * answer for it (checked by the memory bound); there is no send deadline over HTTP, the idle
 * timeout ends such a connection in the end.
 */
function httpStallPlan(f: Fuzzer): HttpPlan {
  // A session of its own: a pooled id may have been destroyed, and stays destroyed.
  const id = `stall-${f.idChars(24)}`
  const body = Buffer.from(JSON.stringify({ big: 'g'.repeat(MAX_BODY_BYTES - 200) }))
  const put =
    `PUT /sessions/${id} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${TOKEN}\r\n` +
    `Content-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n`
  const get = `GET /sessions/${id} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${TOKEN}\r\n\r\n`
  const gets = f.between(150, 300)
  const requests: HttpRequest[] = [
    {
      label: `PUT /sessions/${id} (big)`,
      bytes: Buffer.concat([Buffer.from(put), body]),
      head: false,
      incomplete: false,
    },
    ...Array.from({ length: gets }, () => ({
      label: 'GET (unread)',
      bytes: Buffer.from(get),
      head: false,
      incomplete: false,
    })),
  ]
  const [first, ...rest] = requests
  return {
    requests,
    writes: [
      { bytes: (first as HttpRequest).bytes, delay: 0 },
      { bytes: Buffer.concat(rest.map((request) => request.bytes)), delay: 0 },
    ],
    ending: 'stall',
    expected: requests.length,
  }
}

async function runHttpEpisode(
  address: AddressInfo,
  plan: HttpPlan,
  where: string,
  inputs: Hash,
): Promise<void> {
  tally.httpEpisodes++
  const input = Buffer.concat(plan.writes.map((piece) => piece.bytes))
  inputs.update(input)
  const labels = plan.requests
    .map((request) => request.label)
    .slice(0, 12)
    .join(' | ')
  const socket = await rawConnect(address)
  const reader = new ResponseReader((index) => plan.requests[index]?.head === true)
  let closed = false
  socket.on('data', (chunk: Buffer) => reader.push(chunk))
  socket.on('close', () => {
    closed = true
    reader.finish()
  })
  if (plan.ending === 'stall') {
    // The big session is written first (pipelined requests run at once), then nothing is read.
    await send(socket, plan.writes.slice(0, 1))
    await until(socket, () => closed || reader.responses.length > 0, HANG_MILLIS)
    socket.pause()
  }
  await send(socket, plan.ending === 'stall' ? plan.writes.slice(1) : plan.writes)
  const all = plan.requests.length
  let timely = true
  switch (plan.ending) {
    case 'answers':
      timely = await until(socket, () => closed || reader.responses.length >= all, HANG_MILLIS)
      break
    case 'cut':
      // The answers to the requests sent whole, then the client goes.
      timely = await until(
        socket,
        () => closed || reader.responses.length >= plan.expected,
        HANG_MILLIS,
      )
      break
    case 'wait':
      timely = await until(socket, () => closed, TIMEOUT_MILLIS + HANG_MILLIS)
      break
    case 'stall':
      await sleep(STALL_MILLIS)
      socket.resume()
      timely = await until(socket, () => closed || reader.responses.length >= all, HANG_MILLIS)
      break
  }
  if (!timely) {
    findings.add(
      'hang',
      where,
      `no answer or close within the deadline ("${plan.ending}": ${labels})`,
      input,
    )
  }
  socket.destroy()
  if (reader.malformed !== undefined && !(plan.ending === 'stall' || plan.ending === 'cut')) {
    findings.add('httpBody', where, `malformed response: ${reader.malformed} (${labels})`, input)
  }
  reader.responses.forEach((response, index) => {
    const request = plan.requests[index]
    checkResponse(
      response,
      `${where} response ${index} (${request?.label ?? '?'})`,
      request?.bytes ?? input,
      request?.head === true,
    )
  })
}

// ---------------------------------------------------------------------------------------------
// Parity: the same input through both protocols

/** One HTTP request on its own connection; the response, or null if the server closed without one. */
async function httpOnce(
  address: AddressInfo,
  method: string,
  target: string,
  options: { body?: Buffer; authorization?: string } = {},
): Promise<{ response: HttpAnswer | null; bytes: Buffer }> {
  const body = options.body
  const head =
    `${method} ${target} HTTP/1.1\r\nHost: 127.0.0.1\r\n` +
    `Authorization: ${options.authorization ?? `Bearer ${TOKEN}`}\r\nConnection: close\r\n` +
    (body === undefined
      ? ''
      : `Content-Type: application/json\r\nContent-Length: ${body.length}\r\n`) +
    '\r\n'
  const bytes = Buffer.concat([Buffer.from(head, 'utf8'), body ?? Buffer.alloc(0)])
  const socket = await rawConnect(address)
  const reader = new ResponseReader()
  let closed = false
  socket.on('data', (chunk: Buffer) => reader.push(chunk))
  socket.on('close', () => {
    closed = true
    reader.finish()
  })
  socket.write(bytes)
  await until(socket, () => closed || reader.responses.length > 0, HANG_MILLIS)
  socket.destroy()
  return { response: reader.responses[0] ?? null, bytes }
}

/** A line answer as an outcome comparable with HTTP's: 'ok', or the code (one name per limit). */
function lineOutcome(answer: LineAnswer | null): string {
  if (answer === null) return 'no answer'
  if (answer.ok) return 'ok'
  // The same limit has a name per protocol (docs/server.md): a payload / a body over maxBodyBytes.
  return answer.code === 'VALUE_TOO_LARGE' ? 'BODY_TOO_LARGE' : answer.code
}

/** The value `get` sent, as the JSON value HTTP would send. */
function lineValueOf(answer: LineAnswer & { ok: true }): unknown {
  const payload = answer.payload ?? Buffer.alloc(0)
  if (answer.line.startsWith('ok s ')) return payload.toString('utf8')
  if (answer.line.startsWith('ok b ')) return { $binary: payload.toString('base64') }
  if (!answer.line.startsWith('ok j ')) return { 'not a value': answer.line }
  try {
    return JSON.parse(payload.toString('utf8'))
  } catch {
    return { 'not JSON': payload.toString('utf8') }
  }
}

const BASE_DATA: SessionData = { base: 'parity', 'a b': 1, n: [1, 2], ü: 'ü✓' }

class Parity {
  readonly #server: { lineAddress: AddressInfo; httpAddress: AddressInfo }
  readonly #ids: readonly string[]
  readonly #reset: (id: string) => Promise<void>
  #line: LineLink | undefined
  /** A digest of every input compared. */
  readonly inputs = createHash('sha256')

  constructor(
    server: { lineAddress: AddressInfo; httpAddress: AddressInfo },
    ids: readonly string[],
    reset: (id: string) => Promise<void>,
  ) {
    this.#server = server
    this.#ids = ids
    this.#reset = reset
  }

  close(): void {
    this.#line?.destroy()
  }

  /** The authenticated line connection of the parity runs (a new one if the last was closed). */
  async #link(where: string): Promise<LineLink> {
    if (this.#line === undefined || this.#line.closed) {
      this.#line = await LineLink.connect(this.#server.lineAddress)
      const auth = await this.#line.request(`auth ${TOKEN}\n`)
      if (auth === null || !auth.ok)
        findings.add('expectations', where, `auth answered ${describe(auth)}`)
    }
    return this.#line
  }

  /** A line request that sets up the case (open, close) must succeed. */
  async #setUp(link: LineLink, line: string, where: string): Promise<boolean> {
    const answer = await link.request(`${line}\n`)
    if (answer?.ok === true) return true
    findings.add('expectations', where, `"${line}" answered ${describe(answer)}`)
    return false
  }

  #compare(where: string, line: string, http: string, input: string): void {
    tally.parityCases++
    this.inputs.update(input)
    if (line !== http) findings.add('parity', where, `line ${line}, HTTP ${http}`, input)
  }

  async run(f: Fuzzer, where: string): Promise<void> {
    const kind = f.pick([
      'framing',
      'putAll',
      'putAll',
      'putKey',
      'putKey',
      'getKey',
      'removeKey',
      'id',
      'id',
      'auth',
    ])
    const id = f.pick(this.#ids)
    const link = await this.#link(where)
    link.where = where
    switch (kind) {
      case 'framing':
        return this.#framing(f, link, id, `${where} framing`)
      case 'putAll':
        return this.#putAll(f, link, id, `${where} put_all`)
      case 'putKey':
        return this.#putKey(f, link, id, `${where} put`)
      case 'getKey':
        return this.#getKey(f, link, id, `${where} get`)
      case 'removeKey':
        return this.#removeKey(f, link, id, `${where} remove`)
      case 'id':
        return this.#id(f, link, `${where} id`)
      default:
        return this.#auth(f, id, `${where} auth`)
    }
  }

  /**
   * Not a comparison: a refused put / put_all line that ends in a byte count still has its
   * payload skipped (here commands that would destroy the session), so the connection stays in
   * step. Checked here because only a client that waits for each answer can tell.
   */
  async #framing(f: Fuzzer, link: LineLink, id: string, where: string): Promise<void> {
    const canary = Buffer.from('destroy\nkeys\nCANARY\n')
    const n = canary.length
    const line = f.pick([
      Buffer.from(`put ${f.pick(BAD_KEY_TOKENS)} ${n}`),
      Buffer.from(`put a b ${n}`),
      Buffer.from(`put ${n}`),
      Buffer.from(`PUT %zz ${n}`),
      Buffer.from(`put ${'k'.repeat(f.pick([MAX_LINE_BYTES, 3 * MAX_LINE_BYTES]))} ${n}`),
      Buffer.from(`put_all 5 ${n}`),
      Buffer.concat([Buffer.from('put k'), f.pick(BAD_UTF8), Buffer.from(` ${n}`)]),
      Buffer.from(`put k ${MAX_BODY_BYTES + 1}`),
    ])
    const payload = line.toString('latin1').endsWith(` ${n}`)
      ? canary
      : Buffer.alloc(MAX_BODY_BYTES + 1, 'destroy\n')
    const request = Buffer.concat([line, Buffer.from('\n'), payload, Buffer.from('\n')])
    if (!(await this.#setUp(link, `open ${id} w`, where))) return
    tally.parityCases++
    this.inputs.update(request)
    const answer = await link.request(request)
    if (answer === null || answer.ok || answer.code === 'UNKNOWN_COMMAND') {
      findings.add(
        'lineAnswer',
        where,
        `a refused payload line answered ${describe(answer)}`,
        request,
      )
    }
    const after = await link.request('exists\n')
    if (after?.ok !== true || after.line !== 'ok 1') {
      findings.add(
        'lineAnswer',
        where,
        `the payload ran as commands: then "exists" answered ${describe(after)}`,
        request,
      )
      await this.#reset(id)
    }
    await link.request('close\n')
  }

  /** put_all of a body (as a payload, or inline) vs PATCH /sessions/:id with the same body. */
  async #putAll(f: Fuzzer, link: LineLink, id: string, where: string): Promise<void> {
    const body = jsonBody(f)
    const text = body.toString('utf8')
    // A client may send a JSON object inline when it holds no line break and fits in a line.
    const inlineable =
      Buffer.from(text, 'utf8').equals(body) &&
      !/[\r\n]/.test(text) &&
      text.trim().startsWith('{') &&
      body.length < MAX_LINE_BYTES - 10
    const request = inlineable && f.chance(0.5) ? frame(`put_all ${text}`) : frame('put_all', body)
    if (!(await this.#setUp(link, `open ${id} w`, where))) return
    const line = lineOutcome(await link.request(request))
    await this.#setUp(link, 'close', where)
    const { response, bytes } = await httpOnce(
      this.#server.httpAddress,
      'PATCH',
      `/sessions/${id}`,
      { body },
    )
    const http = response === null ? 'no answer' : checkResponse(response, where, bytes)
    this.#compare(where, line, http, `${escape(request, 160)} vs ${escape(bytes, 160)}`)
    if (http === 'ok') await this.#reset(id)
  }

  /** put <key> vs PUT /sessions/:id/keys/:key with the same value; a value put reads back the same. */
  async #putKey(f: Fuzzer, link: LineLink, id: string, where: string): Promise<void> {
    const token = parityKeyToken(f)
    const value = f.pick([
      'v',
      '',
      'héllo 🎉',
      'x'.repeat(f.between(1, 2000)),
      'ok\nerr X y',
      '{"a":1}',
    ])
    const request = frame(`put ${token}`, value)
    if (!(await this.#setUp(link, `open ${id} w`, where))) return
    const put = await link.request(request)
    const line = lineOutcome(put)
    const lineGot = put?.ok === true ? await link.request(`get ${token}\n`) : null
    await this.#setUp(link, 'close', where)
    const target = `/sessions/${id}/keys/${token}`
    const { response, bytes } = await httpOnce(this.#server.httpAddress, 'PUT', target, {
      body: Buffer.from(JSON.stringify(value)),
    })
    const http = response === null ? 'no answer' : checkResponse(response, where, bytes)
    const input = `${escape(request, 160)} vs ${escape(bytes, 160)}`
    this.#compare(where, line, http, input)
    if (line === 'ok' && http === 'ok') {
      const read = await httpOnce(this.#server.httpAddress, 'GET', target)
      const httpValue =
        read.response === null ? undefined : JSON.parse(read.response.body.toString('utf8'))
      const lineValue = lineGot?.ok === true ? lineValueOf(lineGot) : undefined
      if (!isDeepStrictEqual(httpValue, value) || !isDeepStrictEqual(lineValue, value)) {
        findings.add(
          'parity',
          where,
          `read back: line ${JSON.stringify(lineValue)}, HTTP ${JSON.stringify(httpValue)}`,
          input,
        )
      }
    }
    if (http === 'ok') await this.#reset(id)
  }

  /** get <key> on a session opened r vs GET /sessions/:id/keys/:key: same code, same value. */
  async #getKey(f: Fuzzer, link: LineLink, id: string, where: string): Promise<void> {
    const token = f.chance(0.5)
      ? encodeURIComponent(f.pick(Object.keys(BASE_DATA)))
      : parityKeyToken(f)
    if (!(await this.#setUp(link, `open ${id} r`, where))) return
    const got = await link.request(`get ${token}\n`)
    await this.#setUp(link, 'close', where)
    const { response, bytes } = await httpOnce(
      this.#server.httpAddress,
      'GET',
      `/sessions/${id}/keys/${token}`,
    )
    const http = response === null ? 'no answer' : checkResponse(response, where, bytes)
    const input = `get ${token} vs ${escape(bytes, 160)}`
    this.#compare(where, lineOutcome(got), http, input)
    if (got?.ok === true && response !== null && http === 'ok') {
      const lineValue = lineValueOf(got)
      const httpValue = JSON.parse(response.body.toString('utf8'))
      if (!isDeepStrictEqual(lineValue, httpValue)) {
        findings.add(
          'parity',
          where,
          `values: line ${JSON.stringify(lineValue)}, HTTP ${JSON.stringify(httpValue)}`,
          input,
        )
      }
    }
  }

  /** remove <key> vs DELETE /sessions/:id/keys/:key. */
  async #removeKey(f: Fuzzer, link: LineLink, id: string, where: string): Promise<void> {
    const token = parityKeyToken(f)
    if (!(await this.#setUp(link, `open ${id} w`, where))) return
    const line = lineOutcome(await link.request(`remove ${token}\n`))
    await this.#setUp(link, 'close', where)
    const { response, bytes } = await httpOnce(
      this.#server.httpAddress,
      'DELETE',
      `/sessions/${id}/keys/${token}`,
    )
    const http = response === null ? 'no answer' : checkResponse(response, where, bytes)
    this.#compare(where, line, http, `remove ${token} vs ${escape(bytes, 160)}`)
    if (http === 'ok') await this.#reset(id)
  }

  /**
   * An id token in `exists` and `open <id> r` vs GET /sessions/<the same id, percent-encoded>:
   * the same refusal, and `exists` 1 exactly when GET finds the session.
   */
  async #id(f: Fuzzer, link: LineLink, where: string): Promise<void> {
    const roll = f.below(10)
    let token =
      roll < 2
        ? f.pick(this.#ids)
        : roll < 4
          ? f.pick(sentinelIds)
          : roll < 5
            ? f.idChars(f.between(16, 128))
            : mutatedId(f, f.pick([...this.#ids, ...sentinelIds]))
    // One token of a line: no spaces, no line breaks.
    token = token.replace(/[ \r\n]/g, '_')
    if (token === '') token = '_'
    const exists = await link.request(`exists ${token}\n`)
    const open = await link.request(`open ${token} r\n`)
    if (open?.ok === true) await this.#setUp(link, 'close', where)
    const { response, bytes } = await httpOnce(
      this.#server.httpAddress,
      'GET',
      `/sessions/${encodeURIComponent(token)}`,
    )
    const http = response === null ? 'no answer' : checkResponse(response, where, bytes)
    const httpFound = http === 'ok' ? 'found' : http === 'SESSION_NOT_FOUND' ? 'missing' : http
    const lineFound =
      exists?.ok === true
        ? exists.line === 'ok 1'
          ? 'found'
          : exists.line === 'ok 0'
            ? 'missing'
            : exists.line
        : lineOutcome(exists)
    const input = `exists/open ${escape(token, 160)} vs ${escape(bytes, 160)}`
    this.#compare(where, lineFound, httpFound, input)
    const opened = open?.ok === true ? 'found or missing' : lineOutcome(open)
    this.#compare(
      `${where} (open r)`,
      opened,
      httpFound === 'found' || httpFound === 'missing' ? 'found or missing' : httpFound,
      input,
    )
  }

  /** auth <token> vs Authorization: Bearer <token>. */
  async #auth(f: Fuzzer, id: string, where: string): Promise<void> {
    const token = f.pick([
      TOKEN,
      `${TOKEN}x`,
      TOKEN.slice(0, -1),
      TOKEN.toUpperCase(),
      f.idChars(f.between(1, 40)),
      `é${TOKEN}`,
      `${TOKEN}${TOKEN}`,
    ])
    const link = await LineLink.connect(this.#server.lineAddress)
    const answer = await link.request(`auth ${token}\n`)
    link.destroy()
    const { response, bytes } = await httpOnce(this.#server.httpAddress, 'GET', `/sessions/${id}`, {
      authorization: `Bearer ${token}`,
    })
    const http = response === null ? 'no answer' : checkResponse(response, where, bytes)
    this.#compare(
      where,
      lineOutcome(answer),
      http,
      `auth ${escape(token)} vs ${escape(bytes, 160)}`,
    )
  }
}

/** A key token usable as is in a line and in a path: percent-encoded keys, garbage escapes, limits. */
function parityKeyToken(f: Fuzzer): string {
  switch (f.below(6)) {
    case 0:
      return encodeURIComponent(f.pick([...KEYS, 'a/b', 'q?x', '#', ' ', 'ü'.repeat(100)]))
    case 1:
      return f.pick(BAD_KEY_TOKENS)
    case 2:
      // Characters a path may hold unescaped, which decodeURIComponent leaves alone.
      return f.pick(["!$&'()*+,;=:@", '-._~', '..', '.', '+', 'a%2Fb', '%2e%2e'])
    case 3:
      return `${f.idChars(f.between(1, 10))}${f.pick(['%', '%z', '%zz', '%E0%A4%A', '%C0%80', '%25', '%41'])}${f.idChars(f.between(0, 5))}`
    case 4:
      return '%6B'.repeat(f.pick([254, 255, 256]))
    default:
      return encodeURIComponent(f.idChars(f.between(1, 30)))
  }
}

// ---------------------------------------------------------------------------------------------
// The run

const cluster = await startTestCluster(t, { stores: 3 })
// The manager's limit equals the server's, so a session too large is too large on both protocols.
const manager = await startManager(t, cluster, { maxSessionBytes: MAX_BODY_BYTES })

const setup = new Fuzzer(`${SEED}:setup`)
const SENTINEL_DATA: SessionData[] = [
  { user: 'ada', roles: ['admin'] },
  { text: 'héllo wörld — 日本語 🎉', n: 42 },
  { bytes: { $binary: Buffer.from([0, 255, 10, 13]).toString('base64') } },
  { nested: { a: [1, { b: null }] }, flag: true },
  { 'a key with spaces': 'v', '%': '100%' },
  { newline: 'line 1\nline 2\r\n', nul: 'a\u0000b' },
  { big: 'x'.repeat(20_000) },
  { looksLikeCommands: 'ok\nerr X y\ndestroy\n' },
  {},
  { number: -0.5, max: Number.MAX_SAFE_INTEGER },
]
const sentinelIds = SENTINEL_DATA.map((_, i) => `sentinel-${i}-${setup.idChars(24)}`)
const sentinelSet = new Set(sentinelIds)
const sharedIds = Array.from({ length: 4 }, () => `shared-${setup.idChars(24)}`)
const parityIds = Array.from({ length: 3 }, () => `parity-${setup.idChars(24)}`)

t.test('random and mutated input at both protocols of the session server', async (t) => {
  for (const [index, id] of sentinelIds.entries()) {
    await manager.writeSession(id, SENTINEL_DATA[index] as SessionData)
  }
  for (const id of parityIds) await manager.writeSession(id, BASE_DATA)
  const server = await startServer(t, manager, {
    token: TOKEN,
    maxBodyBytes: MAX_BODY_BYTES,
    maxLineBytes: MAX_LINE_BYTES,
    idleTimeoutMillis: TIMEOUT_MILLIS,
    authTimeoutMillis: AUTH_TIMEOUT_MILLIS,
    sendTimeoutMillis: TIMEOUT_MILLIS,
    requestTimeoutMillis: TIMEOUT_MILLIS,
    lockWaitMillis: LOCK_WAIT_MILLIS,
  })
  const addresses = {
    lineAddress: server.lineAddress,
    httpAddress: server.httpAddress as AddressInfo,
  }

  let peak = { bufferedBytes: 0, lineConnections: 0, httpConnections: 0 }
  const sampler = setInterval(() => {
    const stats = server.stats()
    if (stats.bufferedBytes > peak.bufferedBytes) peak = stats
  }, 5)
  t.teardown(() => clearInterval(sampler))

  const started = Date.now()
  const lineIds: string[][] = []
  // Digests of what each client sent: the same seed must send the same bytes, whatever the timing.
  const lineInputs = Array.from({ length: LINE_CLIENTS }, () => createHash('sha256'))
  const httpInputs = Array.from({ length: HTTP_CLIENTS }, () => createHash('sha256'))
  const lineClients = Array.from({ length: LINE_CLIENTS }, async (_, client) => {
    const f = new Fuzzer(`${SEED}:line:${client}`)
    const ids = [...Array.from({ length: 6 }, () => `line${client}-${f.idChars(24)}`), ...sharedIds]
    lineIds.push(ids)
    for (let round = 0; round < ROUNDS; round++) {
      const ctx = { ids, authenticated: f.chance(0.8) }
      await runLineEpisode(
        server.lineAddress,
        linePlan(f, ctx),
        `line client ${client} episode ${round}`,
        lineInputs[client] as Hash,
      )
    }
  })
  const httpClients = Array.from({ length: HTTP_CLIENTS }, async (_, client) => {
    const f = new Fuzzer(`${SEED}:http:${client}`)
    const ids = [...Array.from({ length: 4 }, () => `http${client}-${f.idChars(24)}`), ...sharedIds]
    for (let round = 0; round < ROUNDS * HTTP_EPISODES_PER_ROUND; round++) {
      await runHttpEpisode(
        addresses.httpAddress,
        httpPlan(f, { ids }),
        `http client ${client} episode ${round}`,
        httpInputs[client] as Hash,
      )
    }
  })
  // Back to the base data after a change; a session destroyed by mistake stays destroyed (the
  // library never resurrects one), which would make every later comparison on it meaningless.
  const parity = new Parity(addresses, parityIds, async (id) => {
    const result = await manager.writeSession(id, BASE_DATA)
    if (result.dropped) findings.add('expectations', 'parity', `parity session ${id} was destroyed`)
  })
  const parityRuns = (async () => {
    const f = new Fuzzer(`${SEED}:parity`)
    for (let round = 0; round < ROUNDS * PARITY_CASES_PER_ROUND; round++) {
      await parity.run(f, `parity case ${round}`)
    }
    parity.close()
  })()
  await Promise.all([...lineClients, ...httpClients, parityRuns])
  const fuzzSeconds = (Date.now() - started) / 1000
  clearInterval(sampler)

  // Every connection the fuzz opened is gone from the server, with nothing buffered for it.
  await waitFor(
    'the server to drop every fuzz connection',
    () => {
      const stats = server.stats()
      return stats.lineConnections === 0 && stats.httpConnections === 0 && stats.bufferedBytes === 0
    },
    HANG_MILLIS,
  ).catch((error: Error) =>
    findings.add('hang', 'after the fuzz', `${error.message}: ${JSON.stringify(server.stats())}`),
  )

  if (peak.bufferedBytes > BUFFERED_BYTES_BOUND) {
    findings.add('memory', 'during the fuzz', `peak ${JSON.stringify(peak)}`)
  }

  // No lock outlived its connection: each session the line clients wrote opens w at once.
  const checker = await LineLink.connect(server.lineAddress)
  t.teardown(() => checker.destroy())
  t.match(
    await checker.request(`auth ${TOKEN}\n`),
    { ok: true },
    `a fresh line client authenticates (seed ${SEED})`,
  )
  for (const id of new Set(lineIds.flat())) {
    const open = await checker.request(`open ${id} w\n`)
    if (open?.ok !== true)
      findings.add('locks', 'after the fuzz', `open ${id} w answered ${describe(open)}`)
    else await checker.request('close\n')
  }

  // The server still serves both protocols.
  const id = (await checker.request('new\n')) as LineAnswer
  t.match(id, { ok: true, line: /^ok [A-Za-z0-9_-]{32}$/ }, `line: new (seed ${SEED})`)
  const newId = id.ok ? id.line.slice(3) : ''
  t.match(
    await checker.request(frame('put after', 'fuzz')),
    { ok: true },
    `line: put (seed ${SEED})`,
  )
  t.match(await checker.request('commit\n'), { ok: true }, `line: commit (seed ${SEED})`)
  t.match(await checker.request('close\n'), { ok: true }, `line: close (seed ${SEED})`)
  const read = await fetch(`http://127.0.0.1:${addresses.httpAddress.port}/sessions/${newId}`, {
    headers: { authorization: `Bearer ${TOKEN}` },
  })
  t.equal(
    read.status,
    200,
    `HTTP: GET of a session written through the line protocol (seed ${SEED})`,
  )
  t.match(await read.json(), { data: { after: 'fuzz' } }, `HTTP: its data (seed ${SEED})`)

  for (const [index, sentinel] of sentinelIds.entries()) {
    const data = await manager.readSession(sentinel)
    if (!isDeepStrictEqual(data, SENTINEL_DATA[index])) {
      findings.add(
        'sentinels',
        `sentinel ${index}`,
        `reads back ${escape(JSON.stringify(data), 200)}`,
      )
    }
  }

  for (const check of Object.keys(CHECKS) as Check[]) {
    t.same(findings.of(check), [], `${CHECKS[check]} (seed ${SEED})`)
  }
  t.same(unhandled, [], `no unhandled rejections (seed ${SEED})`)
  const digest = createHash('sha256')
  for (const hash of [...lineInputs, ...httpInputs, parity.inputs]) digest.update(hash.digest())
  const codes = [...tally.codes].sort((a, b) => b[1] - a[1]).map(([code, n]) => `${code} ${n}`)
  t.comment(
    `seed ${SEED} (inputs ${digest.digest('hex').slice(0, 16)}): ${tally.lineEpisodes} line episodes (${tally.lineAnswers} answers), ` +
      `${tally.httpEpisodes} HTTP episodes (${tally.httpResponses} responses), ` +
      `${tally.parityCases} parity comparisons in ${fuzzSeconds.toFixed(1)} s; ` +
      `peak buffered ${peak.bufferedBytes} bytes (bound ${BUFFERED_BYTES_BOUND}); codes: ${codes.join(', ')}; ` +
      `HTTP statuses: ${[...tally.statuses]
        .sort((a, b) => a[0] - b[0])
        .map(([status, n]) => `${status} ${n}`)
        .join(', ')}`,
  )
})
