import { createHmac, randomBytes } from 'node:crypto'
import { isDeepStrictEqual } from 'node:util'
import seedrandom from 'seedrandom'
import t from 'tap'
import type { Test } from 'tap'
import type { SessionManager, SessionManagerOptions } from '../lib/index.js'
import { createSessionManager, SessionShardsError } from '../lib/index.js'
import { startTestCluster, type TestCluster } from './helpers/cluster.js'
import { rowsOnStores, type RawRow } from './helpers/manager.js'
import { waitFor } from './helpers/wait.js'

// Bad input, tried for real: thousands of seeded random calls through every public method of
// SessionManager that takes input, against real stores. Each call must settle with a
// well-formed result or a typed SessionShardsError; a malformed id (or a refused argument)
// must never cost a statement, by the managers' counters and by the servers' own; what was
// acknowledged must read back; the sessions written before the fuzz must come through
// byte-identical. Replay a run with FUZZ_SEED=<the seed printed in the output>.
const SEED = process.env.FUZZ_SEED || 'session-shards-fuzz-1'
const MALFORMED_CALLS = 3000
const VALID_CALLS = 2000
const KNOWN_SESSIONS = 50
const MAX_SESSION_BYTES = 64 * 1024
const DEFAULT_TTL_SECONDS = 86400
/** An expiry this close to now is not asserted on either way. */
const EXPIRY_MARGIN_MILLIS = 2000
const EXAMPLES_PER_KIND = 5

t.comment(`fuzz seed: ${SEED} (replay with FUZZ_SEED=${SEED})`)

const SECRETS = [randomBytes(30).toString('base64url'), randomBytes(30).toString('base64url')]
const FOREIGN_SECRET = randomBytes(30).toString('base64url')
/** The id form the library documents (unsigned); checked here independently of lib/ids.ts. */
const ID_FORM = /^[A-Za-z0-9_.-]{16,128}$/
const ID_CHARS = [...'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-']
const VALIDATION_CODES = new Set([
  'INVALID_SESSION_ID',
  'INVALID_SESSION_DATA',
  'SESSION_TOO_LARGE',
  'INVALID_OPTION',
])

const unhandled: string[] = []
const onUnhandled = (reason: unknown): void => {
  unhandled.push(errorText(reason))
}
process.on('unhandledRejection', onUnhandled)
t.teardown(() => {
  process.off('unhandledRejection', onUnhandled)
})

// ---------------------------------------------------------------------------------------------
// Inputs. Each carries a JSON-safe label made when it was generated, so that reporting never
// touches a hostile value (a revoked Proxy, a throwing getter) again.

interface Input {
  value: unknown
  label: string
  /** The library must refuse this argument (with a validation error, before any statement). */
  bad?: true
  /** ...but may refuse it only once it has read the session (the check needs the stored data). */
  late?: true
}

const input = (value: unknown, label: string): Input => ({ value, label })
const refused = ({ value, label }: Input): Input => ({ value, label, bad: true })

/** A label for a primitive (or a short name for anything else). */
function named(value: unknown, otherwise: string = typeof value): string {
  if (typeof value === 'number') return Object.is(value, -0) ? '-0' : String(value)
  if (typeof value === 'string') return show(value)
  if (typeof value === 'bigint') return `${value}n`
  if (value === null || value === undefined || typeof value === 'boolean') return String(value)
  return otherwise
}

/** A string shortened for a report; JSON.stringify escapes NUL and lone surrogates. */
function show(text: string): string {
  const head = text.length > 60 ? `${text.slice(0, 60)}…` : text
  return `${JSON.stringify(head)} (length ${text.length})`
}

/** Describes a caught value without trusting it: it may be a Symbol or a revoked Proxy. */
function errorText(error: unknown): string {
  try {
    if (error instanceof Error) return `${error.constructor.name}: ${error.message.slice(0, 300)}`
    return `non-Error ${typeof error}: ${String(error).slice(0, 100)}`
  } catch {
    return `unprintable ${typeof error}`
  }
}

function isTyped(error: unknown): error is SessionShardsError {
  return error instanceof SessionShardsError && typeof error.code === 'string' && error.code !== ''
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

class Fuzzer {
  readonly #random: seedrandom.PRNG

  constructor(seed: string) {
    this.#random = seedrandom(seed)
  }

  below(n: number): number {
    return Math.floor(this.#random() * n)
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

// Built once: large values are costly to make, not to pass.
const TEN_KB = 'a'.repeat(10 * 1024)
const ONE_MB = 'b'.repeat(1024 * 1024)
const OVERSIZED = 'c'.repeat(MAX_SESSION_BYTES + 1)
const DEEP_OBJECT = nest(10_000, (inner) => ({ a: inner }))
const DEEP_ARRAY = nest(10_000, (inner) => [inner])

function nest(depth: number, wrap: (inner: unknown) => unknown): unknown {
  let value: unknown = {}
  for (let i = 0; i < depth; i++) value = wrap(value)
  return value
}

function revokedProxy(): object {
  const { proxy, revoke } = Proxy.revocable({}, {})
  revoke()
  return proxy
}

function throwingProxy(): object {
  const fail = (): never => {
    throw new Error('trap')
  }
  return new Proxy({}, { get: fail, ownKeys: fail, getOwnPropertyDescriptor: fail, has: fail })
}

/** Values of the `owner` key (the managers' ownerKey), including ones the owner column cannot hold. */
const OWNERS = [
  'alice',
  'bob',
  42,
  '😀'.repeat(100),
  'x'.repeat(255),
  'x'.repeat(256),
  'é'.repeat(200),
]

const UNICODE = [
  '😀😃🎉',
  '\u202Egnp.exe',
  'שלום עולם',
  'مرحبا',
  '\u0000',
  'a\u0000b',
  '\uD800',
  '\uDFFF',
  '\uDBFF\uDFFF',
  'e\u0301',
  '\u200B\u200D\uFEFF',
  'ＡＢＣ',
  '\r\n\t',
]

const SQL = [
  "' OR 1=1 --",
  '"; DROP TABLE sessions; --',
  "\\' OR ''='",
  "'; DELETE FROM sessions WHERE '1'='1",
  '1; SHOW GLOBAL STATUS',
  '%',
  '_',
  '`sessions`',
  '?',
  "x' UNION SELECT version, expires_at, deleted, data, ttl_seconds FROM sessions -- ",
  '\\',
  '0x41414141',
]

/** Signs `random` the way signed ids are made (HMAC-SHA256, base64url), with any secret. */
function sign(random: string, secret: string): string {
  return `${random}.${createHmac('sha256', secret).update(random).digest('base64url')}`
}

/** Whether a manager must accept `id`, decided here independently of the library. */
function acceptable(id: unknown, signed: boolean): boolean {
  if (typeof id !== 'string' || !ID_FORM.test(id)) return false
  if (!signed) return true
  const random = id.slice(0, 32)
  return /^[A-Za-z0-9_-]{32}$/.test(random) && SECRETS.some((secret) => sign(random, secret) === id)
}

/** A malformed id for a manager; for a signed manager also forged and mangled signatures. */
function malformedId(f: Fuzzer, target: Target): Input {
  for (;;) {
    const candidate = malformedCandidate(f, target)
    if (!acceptable(candidate.value, target.signed)) return refused(candidate)
  }
}

function malformedCandidate(f: Fuzzer, target: Target): Input {
  const valid = target.sm.generateId()
  switch (f.below(target.signed ? 12 : 10)) {
    case 0: {
      const text = f.bytes(f.pick([1, 8, 16, 32, 64, 128, 129, 300])).toString('latin1')
      return input(text, `latin1 bytes ${show(text)}`)
    }
    case 1: {
      const text = f.bytes(f.pick([1, 16, 32, 128, 200])).toString('utf8')
      return input(text, `utf8 bytes ${show(text)}`)
    }
    case 2: {
      const text = f.chance(0.5) ? f.pick(UNICODE) : spliceIn(f, valid, f.pick(UNICODE))
      return input(text, `unicode ${show(text)}`)
    }
    case 3: {
      const fragment = f.pick(SQL)
      const text = f.chance(0.5) ? fragment : `${f.idChars(f.below(20))}${fragment}${f.idChars(16)}`
      return input(text, `sql ${show(text)}`)
    }
    case 4: {
      // One forbidden character in an otherwise valid id, or the right alphabet at a bad length.
      const bad = f.pick([' ', '/', '+', '=', '%', "'", '"', '\\', ';', '\n', '\t', '*', '~', '#'])
      const text = f.pick([
        spliceIn(f, valid, bad),
        ` ${valid}`,
        `${valid}\n`,
        f.idChars(f.pick([1, 15])),
        f.idChars(129),
        f.idChars(300),
      ])
      return input(text, `near miss ${show(text)}`)
    }
    case 5:
      return f.chance(0.7)
        ? input(TEN_KB, 'string of 10 KB')
        : input(ONE_MB + f.idChars(1), 'string of 1 MB')
    case 6:
      return input('', 'empty string')
    case 7:
    case 8:
      return nonString(f, valid)
    case 9: {
      const text = f.pick(['../../../etc/passwd', '%00', '%27%20OR%201%3D1', '${id}', 'null'])
      return input(text, `path or escape ${show(text)}`)
    }
    case 10: {
      // Signed manager only: ids of the accepted form whose signature fails.
      const random = valid.slice(0, 32)
      const signature = valid.slice(33)
      const at = f.below(43)
      const flipped = `${signature.slice(0, at)}${signature[at] === 'A' ? 'B' : 'A'}${signature.slice(at + 1)}`
      const text = f.pick([
        random,
        `${random}.${flipped}`,
        `${target.sm.generateId().slice(0, 32)}.${signature}`,
        `${random}.${signature.slice(0, 42)}`,
        `${random}.${signature}A`,
        `${random}..${signature.slice(1)}`,
        `${random.slice(1)}.${signature}`,
      ])
      return input(text, `forged signature ${show(text)}`)
    }
    default: {
      const text = sign(f.idChars(32), FOREIGN_SECRET)
      return input(text, `id signed with a foreign secret ${show(text)}`)
    }
  }
}

function spliceIn(f: Fuzzer, text: string, insert: string): string {
  const at = f.below(text.length + 1)
  return `${text.slice(0, at)}${insert}${text.slice(at)}`
}

function nonString(f: Fuzzer, valid: string): Input {
  const cases: (() => Input)[] = [
    () => input(f.pick([0, -1, 42, 1.5, 2 ** 53, 1e300]), 'a number'),
    () => input(NaN, 'NaN'),
    () => input(Infinity, 'Infinity'),
    () => input(10n ** 30n, 'a bigint'),
    () => input(null, 'null'),
    () => input(undefined, 'undefined'),
    () => input(f.chance(0.5), 'a boolean'),
    () => input({}, '{}'),
    () => input([], '[]'),
    () => input([valid], '[a valid id]'),
    () => input(new String(valid), 'new String(a valid id)'),
    () => input({ toString: () => valid }, '{ toString: () => a valid id }'),
    () => input(Symbol('session'), 'Symbol("session")'),
    () => input(() => valid, 'a function returning a valid id'),
    () => input(new Date(), 'a Date'),
    () => input(Buffer.from(valid), 'a Buffer of a valid id'),
    () => input(new Map([[valid, valid]]), 'a Map'),
    () => input(Object.create(null), 'Object.create(null)'),
    () => input(Promise.resolve(valid), 'a Promise of a valid id'),
    () => input(throwingProxy(), 'a Proxy whose traps throw'),
    () => input(revokedProxy(), 'a revoked Proxy'),
  ]
  return f.pick(cases)()
}

/** Session data the library should accept (its JSON form is what reads return). */
function goodData(f: Fuzzer): Input {
  const text = f.pick([...UNICODE, ...SQL, 'plain'])
  const cases: (() => Input)[] = [
    () => input({}, '{}'),
    () => input({ n: f.below(1e9), s: text }, `{ n, s: ${show(text)} }`),
    () =>
      input(
        { constructor: 'c', prototype: 1, toString: 't', hasOwnProperty: 'h', valueOf: 0 },
        'built-in names as keys',
      ),
    () => input({ [text]: text, '': 'empty key' }, `odd keys ${show(text)}`),
    () => input({ list: [1, 'two', null, { three: [3] }], flag: true }, 'nested arrays'),
    () =>
      input(
        { when: new Date(0), map: new Map([[1, 2]]), set: new Set([1]) },
        'Date, Map, Set inside',
      ),
    () =>
      input(
        { fn: () => 1, sym: Symbol('s'), [Symbol('k')]: 1, u: undefined },
        'function, Symbol, undefined inside',
      ),
    () => input({ nan: NaN, inf: -Infinity, negZero: -0, big: 2 ** 60 }, 'odd numbers inside'),
    () => input({ blob: 'd'.repeat(MAX_SESSION_BYTES - 100) }, 'just under maxSessionBytes'),
    () => {
      // The ownerKey of both managers: its value goes to the indexed owner column.
      // A value longer than the column's 255 bytes is refused (InvalidSessionDataError).
      const owner = f.pick(OWNERS)
      const data = input({ owner, n: f.below(100) }, `{ owner: ${named(owner)} }`)
      return Buffer.byteLength(String(owner)) > 255 ? refused(data) : data
    },
  ]
  return f.pick(cases)()
}

/** Session data the library must refuse: none of it is a plain object that encodes within bounds. */
function badData(f: Fuzzer): Input {
  const cases: (() => Input)[] = [
    () => {
      const cycle: Record<string, unknown> = { a: 1 }
      cycle.self = cycle
      return input(cycle, 'a cycle')
    },
    () => {
      const list: unknown[] = []
      const holder = { list }
      list.push(holder)
      return input(holder, 'a cycle through an array')
    },
    () => input(10n, 'a bigint'),
    () => input({ big: 10n }, '{ big: 10n }'),
    () => input(() => ({}), 'a function'),
    () => input(Symbol('data'), 'a Symbol'),
    () => input(DEEP_OBJECT, 'object nested 10,000 deep'),
    () => input({ deep: DEEP_ARRAY }, 'array nested 10,000 deep'),
    () => input({ blob: OVERSIZED }, 'string over maxSessionBytes'),
    () => input({ blob: ONE_MB }, 'string of 1 MB'),
    () => input(f.pick(['text', '', ONE_MB]), 'a string'),
    () => input(f.pick([0, 42, NaN, -1.5]), 'a number'),
    () => input(f.chance(0.5), 'a boolean'),
    () => input(null, 'null'),
    () => input([1, 2, 3], 'an array'),
    () => input([], 'an empty array'),
    () => input({ toJSON: () => 10n }, 'toJSON returning a bigint'),
    () =>
      input(
        {
          toJSON() {
            throw new Error('from toJSON')
          },
        },
        'toJSON throwing an Error',
      ),
    () => input(throwingProxy(), 'a Proxy whose traps throw an Error'),
    () =>
      input(
        JSON.parse('{"__proto__": {"polluted": true}, "x": 1}'),
        '{ "__proto__": {...} } own key',
      ),
  ]
  return refused(f.pick(cases)())
}

/** Rare inputs that defeat the library's own checks. */
function hostileData(f: Fuzzer): Input {
  const cases: (() => Input)[] = [
    () =>
      input(
        {
          toJSON() {
            throw null
          },
        },
        'toJSON throwing null',
      ),
    () =>
      input(
        {
          get x() {
            throw undefined
          },
        },
        'a getter throwing undefined',
      ),
    () => input(revokedProxy(), 'a revoked Proxy'),
    () => input(new Date(0), 'a Date (its JSON form is a string)'),
    () => input(new String('boxed'), 'new String (its JSON form is a string)'),
    () => input({ toJSON: () => 42 }, 'toJSON returning a number'),
  ]
  return refused(f.pick(cases)())
}

function anyData(f: Fuzzer): Input {
  const roll = f.below(100)
  if (roll < 55) return goodData(f)
  if (roll < 95) return badData(f)
  return hostileData(f)
}

// Up to ten years; longer TTLs are refused (the stores keep per-session timeouts in 32 bits).
const GOOD_TTLS = [5, 60, 3600, 86400, 315_360_000]

function ttl(f: Fuzzer, good: boolean): Input {
  if (good) {
    const value = f.pick(GOOD_TTLS)
    return input(value, `${value}`)
  }
  const value = f.pick([
    () => f.pick([-1, 0, -0, 1.5, 0.1, -86400]),
    () => NaN,
    () => f.pick([Infinity, -Infinity, 1e300, 2 ** 53, 315_360_001, 2 ** 32, 2 ** 53 - 1]),
    () => f.pick(['60', '', 'abc', ' 1']),
    () => 60n,
    () => null,
    () => true,
    () => f.pick([{}, [60], new Number(60)]),
    () => Symbol('ttl'),
  ])()
  return refused(input(value, named(value, Array.isArray(value) ? '[60]' : 'an object or Symbol')))
}

function expiresAt(f: Fuzzer, good: boolean): Input {
  if (good) {
    const millis = f.pick([
      Date.now() + 10_000,
      Date.now() + 3_600_000,
      Date.now() + 365 * 86_400_000,
      8.64e15,
      Date.now() - 1000,
      0,
      -1,
    ])
    return f.chance(0.5)
      ? input(millis, `${millis} ms`)
      : input(new Date(Math.min(millis, 8.64e15)), `Date(${Math.min(millis, 8.64e15)})`)
  }
  return refused(
    f.pick([
      input(NaN, 'NaN'),
      input(Infinity, 'Infinity'),
      input(1e300, '1e300'),
      input(Number.MAX_SAFE_INTEGER, 'beyond a Date'),
      input(new Date('not a date'), 'an invalid Date'),
      input('2030-01-01', 'a date string'),
      input({}, '{}'),
      input(10n, 'a bigint'),
      input(null, 'null'),
      input(Symbol('when'), 'a Symbol'),
    ]),
  )
}

/** The options argument of writeSession, createSession, touch and updateSession. */
function writeOptions(f: Fuzzer, good: boolean): Input {
  const roll = f.below(100)
  if (good) {
    if (roll < 40) return input(undefined, 'no options')
    if (roll < 75) {
      const seconds = ttl(f, true)
      return input({ ttlSeconds: seconds.value }, `{ ttlSeconds: ${seconds.label} }`)
    }
    const when = expiresAt(f, true)
    return input({ expiresAt: when.value }, `{ expiresAt: ${when.label} }`)
  }
  if (roll < 45) {
    const seconds = ttl(f, false)
    return refused(input({ ttlSeconds: seconds.value }, `{ ttlSeconds: ${seconds.label} }`))
  }
  if (roll < 75) {
    const when = expiresAt(f, false)
    return refused(input({ expiresAt: when.value }, `{ expiresAt: ${when.label} }`))
  }
  if (roll < 85) {
    const both = { ttlSeconds: 60, expiresAt: Date.now() + 60_000 }
    return refused(input(both, '{ ttlSeconds: 60, expiresAt }'))
  }
  // (null means no options, like undefined.)
  return refused(
    f.pick([
      input('options', 'options a string'),
      input(42, 'options a number'),
      input(Symbol('options'), 'options a Symbol'),
    ]),
  )
}

/** writeSession's options, sometimes with an expectedVersion (a compare-and-set). */
function writeSessionOptions(f: Fuzzer, good: boolean): Input {
  if (!f.chance(0.15)) return writeOptions(f, good)
  const version = good ? f.pick([0, 1, 2 ** 52]) : f.pick<unknown>([-1, 1.5, '1', null, NaN, 10n])
  const label = `{ expectedVersion: ${named(version)} }`
  return good
    ? input({ expectedVersion: version }, label)
    : refused(input({ expectedVersion: version }, label))
}

/** Options of list, count, sweep, repair, find and listWithKey. */
function batchOptions(f: Fuzzer, good: boolean): Input {
  if (good) {
    return f.chance(0.3)
      ? input(undefined, 'no options')
      : f.pick([input({ batchSize: 1000 }, '{ batchSize: 1000 }'), input({}, '{}')])
  }
  // null options may be refused or read as no options; either way, nothing untyped may come out.
  if (f.chance(0.2)) return input(null, 'options null')
  const size = f.pick([0, -1, 1.5, NaN, Infinity, 2 ** 53, '10', 10n])
  return refused(input({ batchSize: size }, `{ batchSize: ${named(size)} }`))
}

/** Marks a refused argument as one the method can only refuse after reading the session. */
function late(arg: Input): Input {
  return arg.bad ? { ...arg, late: true } : arg
}

/** A key of session data for the per-key methods and find. */
function key(f: Fuzzer, good: boolean): Input {
  const value = good
    ? f.pick([
        'n',
        'owner',
        'visits',
        'constructor',
        'toString',
        '😀',
        "' OR 1=1 --",
        'k'.repeat(255),
      ])
    : f.pick<unknown>([
        '',
        '__proto__',
        'k'.repeat(256),
        null,
        undefined,
        42,
        Symbol('key'),
        {},
        ['n'],
      ])
  const label = `key ${named(value)}`
  return good ? input(value, label) : refused(input(value, label))
}

/** A value for setValue or find. */
function value(f: Fuzzer): Input {
  const roll = f.below(100)
  if (roll < 70) {
    const chosen = f.pick<unknown>([
      1,
      -0.5,
      'text',
      '😀',
      null,
      true,
      [1, 2],
      { a: { b: 1 } },
      'x'.repeat(1000),
    ])
    return input(chosen, `value ${named(chosen, 'an object')}`)
  }
  if (roll < 90) {
    const cycle: Record<string, unknown> = {}
    cycle.self = cycle
    // Refused only once merged into the data, i.e. after the read: a late refusal.
    const chosen = f.pick<unknown>([10n, cycle, OVERSIZED])
    return { ...input(chosen, `value ${named(chosen, 'a cycle')}`), bad: true, late: true }
  }
  const chosen = f.pick<unknown>([undefined, () => 1, Symbol('v')])
  return input(chosen, `value ${named(chosen, 'a function or Symbol')} (dropped by JSON)`)
}

function incrementBy(f: Fuzzer, good: boolean): Input {
  const by = good
    ? f.pick([1, -1, 0, 0.5, 1e9])
    : f.pick<unknown>(['1', NaN, Infinity, null, 1n, {}])
  // `by` is checked only once the current value is read.
  return good
    ? input(by, `by ${named(by)}`)
    : { ...input(by, `by ${named(by)}`), bad: true, late: true }
}

/** The values argument of putAll. */
function values(f: Fuzzer, good: boolean): Input {
  if (good)
    return f.pick([
      input({ a: 1 }, '{ a: 1 }'),
      input({ n: 2, s: '😀' }, '{ n, s }'),
      input({}, '{}'),
    ])
  const chosen = f.pick<unknown>([null, [1], 'text', 42, JSON.parse('{"__proto__": 1}'), { '': 1 }])
  return { ...input(chosen, `values ${named(chosen, 'an object')}`), bad: true, late: true }
}

/** Thrown by the change callbacks the fuzz passes; a rejection with it is the caller's own. */
const CALLBACK_ERROR = new Error('thrown by the change callback')

/** The change callback of updateSession and withSessionLock. */
function change(f: Fuzzer, good: boolean): Input {
  if (!good) {
    const chosen = f.pick<unknown>([null, undefined, 'change', 42, {}])
    return { ...input(chosen, `change ${named(chosen)}`), bad: true, late: true }
  }
  const roll = f.below(100)
  if (roll < 60) {
    const next = goodData(f)
    return input(() => next.value, `change → ${next.label}`)
  }
  if (roll < 75) return input(() => undefined, 'change → undefined (no write)')
  if (roll < 85) {
    return input(() => {
      throw CALLBACK_ERROR
    }, 'change throws')
  }
  const next = f.chance(0.8) ? badData(f) : hostileData(f)
  return { ...input(() => next.value, `change → ${next.label}`), bad: true, late: true }
}

function lockOptions(f: Fuzzer, good: boolean): Input {
  if (good) {
    const chosen = f.pick<unknown>([
      undefined,
      { leaseMillis: 50 },
      { leaseMillis: 10_000, waitMillis: 0 },
    ])
    return input(chosen, `lock options ${named(chosen, JSON.stringify(chosen))}`)
  }
  const chosen = f.pick<unknown>([
    { leaseMillis: -1 },
    { leaseMillis: 0 },
    { leaseMillis: 2 ** 31 },
    { waitMillis: 1.5 },
    { leaseMillis: '10' },
    { waitMillis: NaN },
  ])
  return refused(input(chosen, `lock options ${JSON.stringify(chosen)}`))
}

function readOptions(f: Fuzzer, good: boolean): Input {
  if (good)
    return f.chance(0.7)
      ? input(undefined, 'no options')
      : input({ withVersion: true }, '{ withVersion: true }')
  const chosen = f.pick<unknown>([null, 'yes', { withVersion: 'yes' }])
  // null means no options and a withVersion other than true is ignored; a string is refused.
  const read = input(chosen, `read options ${named(chosen, JSON.stringify(chosen))}`)
  return typeof chosen === 'string' ? refused(read) : read
}

function owner(f: Fuzzer, good: boolean): Input {
  const chosen = good
    ? f.pick<unknown>(OWNERS.slice(0, 3))
    : f.pick<unknown>(['', 'x'.repeat(256), null, {}, Symbol('o'), [1]])
  return good
    ? input(chosen, `owner ${named(chosen)}`)
    : refused(input(chosen, `owner ${named(chosen)}`))
}

// ---------------------------------------------------------------------------------------------
// The methods under test.

interface Target {
  name: string
  sm: SessionManager
  signed: boolean
}

interface Spec {
  /** The first argument is a session id. */
  takesId: boolean
  /** Not async: it may throw a typed error synchronously. */
  sync?: boolean
  /** Returns an async iterable, which the fuzz collects. */
  iterates?: boolean
  /** Never writes: may be given the known sessions' ids. */
  readOnly?: boolean
  /** Changes sessions in ways the model does not follow: the session becomes unknown to it. */
  opaque?: boolean
  /**
   * Merges its arguments into the stored data, so it can refuse the result (invalid or too
   * large) only after reading the session.
   */
  mergesData?: boolean
  /** The arguments after the id. */
  args(f: Fuzzer, good: boolean): Input[]
  /** Whether a result has the documented shape. */
  ok(value: unknown): boolean
}

const count = (n: unknown): boolean => typeof n === 'number' && Number.isSafeInteger(n) && n >= 0
const isId = (value: unknown): boolean => typeof value === 'string' && ID_FORM.test(value)
const nullOrObject = (value: unknown): boolean => value === null || isPlainObject(value)
const strings = (value: unknown): boolean =>
  Array.isArray(value) && value.every((item) => typeof item === 'string')

const SPECS = {
  readSession: {
    takesId: true,
    readOnly: true,
    args: (f, good) => (f.chance(0.8) ? [] : [readOptions(f, good)]),
    ok: (value) =>
      value === null ||
      (isPlainObject(value) && (!('version' in value) || isPlainObject(value.data))),
  },
  writeSession: {
    takesId: true,
    args: (f, good) =>
      f.chance(0.03)
        ? [refused(input(undefined, 'data missing'))]
        : [good ? goodData(f) : anyData(f), writeSessionOptions(f, good || f.chance(0.5))],
    ok: (value) =>
      isPlainObject(value) &&
      typeof value.version === 'number' &&
      Array.isArray(value.storeIds) &&
      typeof value.degraded === 'boolean',
  },
  destroySession: { takesId: true, args: () => [], ok: (value) => value === undefined },
  regenerateSession: {
    takesId: true,
    args: () => [],
    ok: (value) => value === null || isId(value),
  },
  touch: {
    takesId: true,
    args: (f, good) => [writeOptions(f, good)],
    ok: (value) => typeof value === 'boolean',
  },
  setSessionTimeout: {
    takesId: true,
    args: (f, good) => [
      f.chance(0.05) ? refused(input(undefined, 'ttlSeconds missing')) : ttl(f, good),
    ],
    ok: (value) => typeof value === 'boolean',
  },
  getSessionTimeout: {
    takesId: true,
    readOnly: true,
    args: () => [],
    ok: (value) => value === null || count(value),
  },
  locate: {
    takesId: true,
    sync: true,
    readOnly: true,
    args: () => [],
    ok: (value) => strings(value) && (value as string[]).length === 3,
  },
  updateSession: {
    takesId: true,
    opaque: true,
    mergesData: true,
    // Its options are checked by the write, after the read.
    args: (f, good) => [
      change(f, good || f.chance(0.5)),
      late(writeOptions(f, good || f.chance(0.5))),
    ],
    ok: nullOrObject,
  },
  getValue: { takesId: true, readOnly: true, args: (f, good) => [key(f, good)], ok: () => true },
  getAll: { takesId: true, readOnly: true, args: () => [], ok: nullOrObject },
  setValue: {
    takesId: true,
    opaque: true,
    mergesData: true,
    args: (f, good) => [key(f, good || f.chance(0.5)), value(f)],
    ok: (value) => value === undefined,
  },
  removeValue: {
    takesId: true,
    opaque: true,
    mergesData: true,
    args: (f, good) => [key(f, good)],
    ok: (value) => value === undefined,
  },
  increment: {
    takesId: true,
    opaque: true,
    mergesData: true,
    args: (f, good) => [key(f, good || f.chance(0.5)), incrementBy(f, good || f.chance(0.5))],
    ok: (value) => typeof value === 'number',
  },
  putAll: {
    takesId: true,
    opaque: true,
    mergesData: true,
    args: (f, good) => [values(f, good)],
    ok: (value) => value === undefined,
  },
  lockSession: {
    takesId: true,
    opaque: true,
    args: (f, good) => [lockOptions(f, good)],
    ok: (value) => typeof (value as { release?: unknown })?.release === 'function',
  },
  withSessionLock: {
    takesId: true,
    opaque: true,
    mergesData: true,
    args: (f, good) => [change(f, good || f.chance(0.5)), lockOptions(f, good || f.chance(0.5))],
    ok: nullOrObject,
  },
  createSession: {
    takesId: false,
    args: (f, good) =>
      good
        ? [goodData(f), writeOptions(f, true)]
        : f.chance(0.5)
          ? [f.chance(0.8) ? badData(f) : hostileData(f), writeOptions(f, f.chance(0.5))]
          : [goodData(f), writeOptions(f, false)],
    ok: isId,
  },
  list: { takesId: false, iterates: true, args: (f, good) => [batchOptions(f, good)], ok: strings },
  count: { takesId: false, args: (f, good) => [batchOptions(f, good)], ok: count },
  find: {
    takesId: false,
    iterates: true,
    args: (f, good) => [
      key(f, good || f.chance(0.5)),
      { ...value(f), bad: undefined, late: undefined },
      batchOptions(f, good || f.chance(0.5)),
    ],
    ok: strings,
  },
  listWithKey: {
    takesId: false,
    iterates: true,
    args: (f, good) => [key(f, good || f.chance(0.5)), batchOptions(f, good || f.chance(0.5))],
    ok: strings,
  },
  findByOwner: { takesId: false, args: (f, good) => [owner(f, good)], ok: strings },
  destroyByOwner: { takesId: false, opaque: true, args: (f, good) => [owner(f, good)], ok: count },
  sweep: {
    takesId: false,
    args: (f, good) => [batchOptions(f, good)],
    ok: (value) => isPlainObject(value) && count(value.deleted) && Array.isArray(value.stores),
  },
  repair: {
    takesId: false,
    args: (f, good) => [batchOptions(f, good)],
    ok: (value) =>
      isPlainObject(value) && count(value.scanned) && Array.isArray(value.skippedStores),
  },
} satisfies Record<string, Spec>

type Method = keyof typeof SPECS
const METHODS = Object.keys(SPECS) as Method[]
const ID_METHODS = METHODS.filter((method) => SPECS[method].takesId)
/** The methods that take input as the task first listed them; the fuzz weighs them more. */
const CORE_METHODS: Method[] = [
  'readSession',
  'writeSession',
  'destroySession',
  'createSession',
  'regenerateSession',
  'touch',
  'setSessionTimeout',
  'getSessionTimeout',
  'locate',
]
/** Full scans and bulk operations: a few calls are enough. */
const BULK_METHODS = new Set<Method>([
  'list',
  'count',
  'find',
  'listWithKey',
  'sweep',
  'repair',
  'destroyByOwner',
])
const spec = (method: Method): Spec => SPECS[method]

function pickMethod(f: Fuzzer): Method {
  const roll = f.below(100)
  if (roll < 70) return f.pick(CORE_METHODS)
  const others = METHODS.filter((method) => !CORE_METHODS.includes(method))
  const chosen = f.pick(others)
  return BULK_METHODS.has(chosen) && f.chance(0.7) ? f.pick(CORE_METHODS) : chosen
}

interface Call {
  target: Target
  method: Method
  args: Input[]
}

type Outcome =
  | { kind: 'result'; value: unknown; promise: boolean }
  | { kind: 'rejected'; error: unknown }
  | { kind: 'threw'; error: unknown }

async function invoke(call: Call): Promise<Outcome> {
  const fn = (call.target.sm as unknown as Record<string, unknown>)[call.method]
  if (typeof fn !== 'function')
    return { kind: 'threw', error: new Error(`no method ${call.method}`) }
  let returned: unknown
  try {
    returned = fn.apply(
      call.target.sm,
      call.args.map((arg) => arg.value),
    )
  } catch (error) {
    return { kind: 'threw', error }
  }
  const iterates = spec(call.method).iterates === true
  if (iterates) returned = collect(returned as AsyncIterable<unknown>)
  else if (!(returned instanceof Promise))
    return { kind: 'result', value: returned, promise: false }
  try {
    return { kind: 'result', value: await returned, promise: !iterates }
  } catch (error) {
    return { kind: 'rejected', error }
  }
}

async function collect(items: AsyncIterable<unknown>): Promise<unknown[]> {
  const all: unknown[] = []
  for await (const item of items) all.push(item)
  return all
}

/** Violations grouped by kind, with the first few calls of each, so that a report stays short. */
class Violations {
  readonly #byKind = new Map<string, { count: number; examples: string[] }>()
  total = 0

  add(kind: string, call: Call, detail: string): void {
    this.total++
    const entry = this.#byKind.get(kind) ?? { count: 0, examples: [] }
    this.#byKind.set(kind, entry)
    entry.count++
    if (entry.examples.length < EXAMPLES_PER_KIND) {
      const args = call.args.map((arg) => arg.label).join(', ')
      entry.examples.push(`${call.target.name}.${call.method}(${args}) → ${detail}`)
    }
  }

  report(): { seed: string; violations: Record<string, { count: number; examples: string[] }> } {
    return { seed: SEED, violations: Object.fromEntries(this.#byKind) }
  }
}

// ---------------------------------------------------------------------------------------------
// What the stores should hold, as far as acknowledged calls tell (stores all up, calls one at a
// time). A session whose state the test cannot know for sure is left out of the checks.

interface Expected {
  destroyed: boolean
  data: unknown
  expiresAtMillis: number
  ownTimeout: number | null
  uncertain: boolean
}

class Model {
  readonly #sessions = new Map<string, Expected>()
  checked = 0

  get(id: string): Expected {
    let entry = this.#sessions.get(id)
    if (entry === undefined) {
      entry = {
        destroyed: false,
        data: null,
        expiresAtMillis: 0,
        ownTimeout: null,
        uncertain: false,
      }
      this.#sessions.set(id, entry)
    }
    return entry
  }

  /** Whether the session is live now; null when that cannot be told (expiry too close, or unknown). */
  live(id: string): boolean | null {
    const entry = this.get(id)
    if (entry.uncertain) return null
    if (entry.destroyed) return false
    const left = entry.expiresAtMillis - Date.now()
    if (Math.abs(left) < EXPIRY_MARGIN_MILLIS) return null
    return left > 0
  }

  ids(): string[] {
    return [...this.#sessions.keys()]
  }
}

function sumOperations(targets: readonly Target[]): number {
  let sum = 0
  for (const { sm } of targets) for (const store of sm.stats().stores) sum += store.operations
  return sum
}

interface ServerCounters {
  execute: number
  prepare: number
  questions: number
}

/** The servers' own statement counters, summed over the stores (read with text queries). */
async function serverCounters(cluster: TestCluster): Promise<ServerCounters> {
  const sum: ServerCounters = { execute: 0, prepare: 0, questions: 0 }
  for (const store of cluster.stores) {
    const rows = await store.query<{ Variable_name: string; Value: string }>(
      "SHOW GLOBAL STATUS WHERE Variable_name IN ('Com_stmt_execute', 'Com_stmt_prepare', 'Questions')",
    )
    for (const row of rows) {
      const value = Number(row.Value)
      if (row.Variable_name === 'Com_stmt_execute') sum.execute += value
      else if (row.Variable_name === 'Com_stmt_prepare') sum.prepare += value
      else sum.questions += value
    }
  }
  return sum
}

/** Resolves 'closed', or 'still open' when close() has not settled within `millis`. */
function closeWithin(sm: SessionManager, millis: number): Promise<string> {
  let timer: NodeJS.Timeout | undefined
  const late = new Promise<string>((resolve) => {
    timer = setTimeout(() => resolve('still open'), millis)
  })
  const closed = sm.close().then(
    () => 'closed',
    (error: unknown) => `close() rejected: ${errorText(error)}`,
  )
  return Promise.race([closed, late]).finally(() => clearTimeout(timer))
}

/**
 * Like startManager (test/helpers/manager.ts), but its teardown gives up on close() after a
 * while: a manager that a fuzz call left with an operation counted as in flight never closes,
 * and the test reports that instead of hanging until tap's timeout.
 */
async function startFuzzManager(
  t: Test,
  options: Partial<SessionManagerOptions>,
): Promise<SessionManager> {
  const sm = createSessionManager({
    stores: cluster.storeConfigs(),
    connectTimeoutMillis: 1000,
    queryTimeoutMillis: 1000,
    ...options,
  })
  t.teardown(() => closeWithin(sm, 2000))
  await sm.applySchema()
  await sm.readSession(sm.generateId())
  await waitFor('every store to be in service', () =>
    sm.stats().stores.every((store) => store.state === 'up' && !store.behind),
  )
  return sm
}

const cluster = await startTestCluster(t, { stores: 3 })

t.test('random bad input through every public method, against real stores', async (t) => {
  // No background statements (the servers' own counters are compared): no health probes, no
  // sweeps, no read lease rounds.
  const quiet = {
    copies: 2,
    healthCheckIntervalMillis: 3_600_000,
    sweepIntervalSeconds: 0,
    readLeaseMillis: 0,
    maxSessionBytes: MAX_SESSION_BYTES,
    ownerKey: 'owner',
  }
  const plain: Target = { name: 'plain', sm: await startFuzzManager(t, quiet), signed: false }
  const signed: Target = {
    name: 'signed',
    sm: await startFuzzManager(t, { ...quiet, secrets: SECRETS }),
    signed: true,
  }
  const targets = [plain, signed]
  const f = new Fuzzer(SEED)
  const model = new Model()

  // Sessions with known data (and no owner), only ever passed to read-only methods.
  const known: { id: string; data: unknown; target: Target }[] = []
  for (let i = 0; i < KNOWN_SESSIONS; i++) {
    const target = i % 5 === 4 ? signed : plain
    const data = { i, user: `user-${i}`, text: UNICODE[i % UNICODE.length], list: [i, 'two', null] }
    const id = await target.sm.createSession(data)
    known.push({ id, data: JSON.parse(JSON.stringify(data)), target })
    Object.assign(model.get(id), {
      data: JSON.parse(JSON.stringify(data)),
      expiresAtMillis: Date.now() + DEFAULT_TTL_SECONDS * 1000,
    })
  }
  const rowsBefore = await Promise.all(known.map(({ id }) => rowsOnStores(cluster, id)))

  const violations = new Violations()
  /** Records a violation unless the call ended in a typed error (or its own callback's) or a well-formed result. */
  const check = (call: Call, outcome: Outcome): void => {
    if (outcome.kind === 'result') {
      const { value, promise } = outcome
      const async = !spec(call.method).sync && !spec(call.method).iterates
      if (promise !== async)
        violations.add(`${call.method}: ${promise ? 'a' : 'no'} Promise returned`, call, '')
      else if (!spec(call.method).ok(value)) {
        violations.add(
          `${call.method} resolved to an ill-formed result`,
          call,
          show(safeJson(value)),
        )
      }
      return
    }
    const { error } = outcome
    if (outcome.kind === 'threw' && !spec(call.method).sync) {
      violations.add('async method threw synchronously', call, errorText(error))
    } else if (error === CALLBACK_ERROR) {
      // The caller's own callback threw: passing that on unchanged is right.
    } else if (!isTyped(error)) {
      violations.add(`untyped error: ${errorText(error).slice(0, 70)}`, call, errorText(error))
    }
  }

  // Phase 1: malformed ids, and arguments every id-less method must refuse. None may reach a
  // store: neither the managers' counters nor the servers' own may move.
  const phase1Started = performance.now()
  const calibration = await serverCounters(cluster)
  const serverBefore = await serverCounters(cluster)
  const measuringQuestions = serverBefore.questions - calibration.questions
  const operationsBefore = sumOperations(targets)
  for (let n = 0; n < MALFORMED_CALLS; n++) {
    const target = f.chance(0.6) ? plain : signed
    const method = f.chance(0.9)
      ? f.pick(ID_METHODS)
      : f.pick(METHODS.filter((m) => !SPECS[m].takesId))
    const { takesId } = spec(method)
    const args = takesId
      ? [malformedId(f, target), ...spec(method).args(f, f.chance(0.5))]
      : spec(method).args(f, false)
    // Some methods' bad arguments are refused only after a read ("late"): no use here.
    if (!args.some((arg) => arg.bad && !arg.late)) continue
    const call = { target, method, args }
    const outcome = await invoke(call)
    check(call, outcome)
    if (outcome.kind === 'result')
      violations.add(`${method} accepted malformed input`, call, 'resolved')
  }
  await new Promise((resolve) => setTimeout(resolve, 50))
  const operationsAfter = sumOperations(targets)
  const serverAfter = await serverCounters(cluster)
  const phase1Seconds = (performance.now() - phase1Started) / 1000

  t.equal(
    operationsAfter - operationsBefore,
    0,
    'malformed input: no statement counted by the managers',
  )
  t.equal(
    serverAfter.execute - serverBefore.execute,
    0,
    'malformed input: no prepared statement executed on any server (Com_stmt_execute)',
  )
  t.equal(serverAfter.prepare - serverBefore.prepare, 0, 'none prepared (Com_stmt_prepare)')
  t.equal(
    serverAfter.questions - serverBefore.questions - measuringQuestions,
    0,
    'no other statement either (Questions, less the measuring queries)',
  )

  // Phase 2: valid ids (fresh, or sessions this fuzz wrote; the known sessions for read-only
  // methods) with random arguments. Every store is up, so the acceptable rejections are
  // validation errors (which must not cost a statement unless they need the stored data) and
  // the documented outcomes of compare-and-set, per-key and lock calls; and every answer
  // must agree with what the calls before it acknowledged.
  const phase2Started = performance.now()
  const owned: { id: string; signed: boolean }[] = []
  const storeFailures = new Violations()
  const refusedButRan = new Violations()
  const disagreements = new Violations()
  const documentedOutcomes = new Set(['VERSION_CONFLICT', 'SESSION_NOT_FOUND', 'LOCK_EXPIRED'])
  const validId = (target: Target, method: Method): Input => {
    const roll = f.below(100)
    if (spec(method).readOnly && roll < 30) return input(f.pick(known).id, 'a known session id')
    if (roll < 75 && owned.length > 0) {
      const usable = owned.filter((o) => o.signed || !target.signed)
      const { id } = f.pick(usable.length > 0 && f.chance(0.9) ? usable : owned)
      return input(id, 'an id this fuzz wrote')
    }
    return input(target.sm.generateId(), 'a fresh id')
  }
  const operationsBeforeValid = sumOperations(targets)
  const executeBeforeValid = (await serverCounters(cluster)).execute
  for (let n = 0; n < VALID_CALLS; n++) {
    const target = f.chance(0.6) ? plain : signed
    const method = pickMethod(f)
    const good = f.chance(0.7)
    const id = spec(method).takesId ? validId(target, method) : null
    const args = [...(id === null ? [] : [id]), ...spec(method).args(f, good)]
    const call = { target, method, args }
    const sessionId = id?.value as string
    const liveBefore = id === null ? null : model.live(sessionId)
    const before = sumOperations(targets)
    const startedAt = Date.now()
    const outcome = await invoke(call)
    check(call, outcome)
    const mustRefuse =
      (id !== null && !acceptable(sessionId, target.signed)) || args.some((arg) => arg.bad)
    const mayRunFirst = args.some((arg) => arg.late)
    if (id !== null && spec(method).opaque) model.get(sessionId).uncertain = true
    if (outcome.kind !== 'result') {
      const { error } = outcome
      if (error === CALLBACK_ERROR) continue
      if (!isTyped(error) || VALIDATION_CODES.has(error.code)) {
        const refusesMerge =
          spec(method).mergesData === true &&
          isTyped(error) &&
          (error.code === 'INVALID_SESSION_DATA' || error.code === 'SESSION_TOO_LARGE')
        if (sumOperations(targets) !== before && !mayRunFirst && !refusesMerge) {
          refusedButRan.add(`${method}: refused input cost a statement`, call, errorText(error))
        }
        if (!mustRefuse && isTyped(error) && !refusesMerge) {
          violations.add(`${method} refused valid input`, call, errorText(error))
        }
      } else if (!documentedOutcomes.has(error.code)) {
        storeFailures.add(`${method}: ${error.code} with every store up`, call, errorText(error))
        if (id !== null) model.get(sessionId).uncertain = true
      }
      continue
    }
    const value = outcome.value
    if (method === 'lockSession') await (value as { release(): Promise<void> }).release()
    if (mustRefuse) {
      violations.add(`${method} accepted bad input`, call, show(safeJson(value)))
      const written =
        method === 'createSession'
          ? (value as string)
          : method === 'writeSession'
            ? sessionId
            : null
      if (written !== null) {
        await verifyRead(target, written, true)
        model.get(written).uncertain = true
      }
      if (id !== null) model.get(sessionId).uncertain = true
      continue
    }
    const disagree = (what: string, detail: string): void => {
      disagreements.add(what, call, detail)
    }
    const expiryFrom = (options: unknown, own: number | null): number => {
      const { ttlSeconds, expiresAt: when } = (isPlainObject(options) ? options : {}) as {
        ttlSeconds?: number
        expiresAt?: Date | number
      }
      if (ttlSeconds !== undefined) return startedAt + ttlSeconds * 1000
      if (when !== undefined) return Math.trunc(when instanceof Date ? when.getTime() : when)
      return startedAt + (own ?? DEFAULT_TTL_SECONDS) * 1000
    }
    const explicit = (options: unknown): boolean =>
      isPlainObject(options) &&
      (options.ttlSeconds !== undefined || options.expiresAt !== undefined)
    switch (method) {
      case 'createSession': {
        const newId = value as string
        owned.push({ id: newId, signed: target.signed })
        Object.assign(model.get(newId), {
          data: JSON.parse(JSON.stringify(args[0]!.value)),
          expiresAtMillis: expiryFrom(args[1]!.value, null),
        })
        await verifyRead(target, newId)
        break
      }
      case 'writeSession': {
        const entry = model.get(sessionId)
        const landed = (value as { storeIds: string[] }).storeIds.length > 0
        if (!entry.uncertain && landed === entry.destroyed) {
          disagree(
            'a write landed on a destroyed session, or met a tombstone on a live one',
            `landed: ${landed}`,
          )
          entry.uncertain = true
        }
        if (landed) {
          entry.data = JSON.parse(JSON.stringify(args[1]!.value))
          const options = args[2]!.value
          entry.expiresAtMillis = expiryFrom(options, explicit(options) ? null : entry.ownTimeout)
        }
        if (!owned.some((o) => o.id === sessionId))
          owned.push({ id: sessionId, signed: target.signed })
        await verifyRead(target, sessionId)
        break
      }
      case 'destroySession':
        model.get(sessionId).destroyed = true
        break
      case 'regenerateSession': {
        if (liveBefore !== null && (value !== null) !== liveBefore) {
          disagree('regenerateSession disagrees with whether the session is live', String(value))
        }
        if (typeof value === 'string') {
          const old = model.get(sessionId)
          Object.assign(model.get(value), { ...old, destroyed: false })
          old.destroyed = true
          owned.push({ id: value, signed: target.signed })
          await verifyRead(target, value)
        }
        break
      }
      case 'touch':
      case 'setSessionTimeout': {
        const entry = model.get(sessionId)
        if (liveBefore !== null && value !== liveBefore) {
          disagree(
            `${method} answered ${String(value)} for a session that is ${liveBefore ? 'live' : 'not live'}`,
            `resolved ${String(value)}`,
          )
          entry.uncertain = true
        } else if (value === true && method === 'touch') {
          const own = explicit(args[1]!.value) ? null : entry.ownTimeout
          entry.expiresAtMillis = Math.max(entry.expiresAtMillis, expiryFrom(args[1]!.value, own))
        } else if (value === true) {
          entry.ownTimeout = args[1]!.value as number
          entry.expiresAtMillis = startedAt + entry.ownTimeout * 1000
        }
        break
      }
      case 'readSession':
      case 'getAll':
      case 'getSessionTimeout': {
        if (liveBefore === null) break
        model.checked++
        const entry = model.get(sessionId)
        const withVersion = isPlainObject(args[1]?.value) && args[1]!.value.withVersion === true
        const read = withVersion && value !== null ? (value as { data: unknown }).data : value
        const expected = !liveBefore
          ? null
          : method === 'getSessionTimeout'
            ? (entry.ownTimeout ?? DEFAULT_TTL_SECONDS)
            : entry.data
        if (!isDeepStrictEqual(read, expected)) {
          disagree(`${method} disagrees with what was acknowledged`, show(safeJson(value)))
        }
        break
      }
      case 'getValue': {
        if (liveBefore === null) break
        model.checked++
        const data = model.get(sessionId).data as Record<string, unknown> | null
        const name = args[1]!.value as string
        const expected =
          liveBefore && data !== null && Object.hasOwn(data, name) ? data[name] : undefined
        if (!isDeepStrictEqual(value, expected)) {
          disagree('getValue disagrees with what was acknowledged', show(safeJson(value)))
        }
        break
      }
      case 'list':
      case 'count': {
        const ids = model.ids()
        const live = ids.filter((each) => model.live(each) === true).length
        const unsure = ids.filter((each) => model.live(each) === null).length
        const listed = method === 'count' ? (value as number) : (value as string[]).length
        if (listed < live || listed > live + unsure) {
          disagree(
            `${method} disagrees with what was acknowledged`,
            `${listed}, expected ${live} (+${unsure} unknown)`,
          )
        }
        break
      }
      case 'destroyByOwner':
        // Whose sessions it destroyed is not followed: every session with an owner becomes unknown.
        for (const each of model.ids()) {
          const data = model.get(each).data
          if (isPlainObject(data) && 'owner' in data) model.get(each).uncertain = true
        }
        break
    }
  }

  /** A read right after an acknowledged write: null or an object, and the model's data when it knows. */
  async function verifyRead(target: Target, sessionId: string, shapeOnly = false): Promise<void> {
    const live = model.live(sessionId)
    if (live === null && !shapeOnly) return
    model.checked++
    const read = await target.sm.readSession(sessionId).catch((error: unknown) => errorText(error))
    const call = {
      target,
      method: 'readSession' as const,
      args: [input(sessionId, 'the id just written')],
    }
    if (read !== null && !isPlainObject(read)) {
      disagreements.add('accepted data that reads back as a non-object', call, show(safeJson(read)))
    } else if (!shapeOnly && !isDeepStrictEqual(read, live ? model.get(sessionId).data : null)) {
      disagreements.add('an acknowledged write reads back differently', call, show(safeJson(read)))
    }
  }

  const phase2Seconds = (performance.now() - phase2Started) / 1000
  t.ok(
    sumOperations(targets) > operationsBeforeValid,
    'valid ids did reach the stores (the counters work)',
  )
  t.ok((await serverCounters(cluster)).execute > executeBeforeValid, 'and the servers counted them')

  await new Promise((resolve) => setTimeout(resolve, 50))
  t.equal(
    violations.total,
    0,
    `${MALFORMED_CALLS + VALID_CALLS} calls: bad input refused with a SessionShardsError with a code, good input answered with a well-formed result`,
    violations.report(),
  )
  t.equal(
    storeFailures.total,
    0,
    'valid ids with every store up: refused by validation or answered, never failed by a store',
    storeFailures.report(),
  )
  t.equal(
    refusedButRan.total,
    0,
    'input refused with an error cost no statement',
    refusedButRan.report(),
  )
  t.equal(
    disagreements.total,
    0,
    `answers agree with what was acknowledged (${model.checked} reads checked)`,
    disagreements.report(),
  )
  t.same(unhandled, [], 'no unhandled rejection')

  // The known sessions: the same data through the managers, the same rows on every store.
  const changedReads: string[] = []
  for (const { id, data, target } of known) {
    if (!isDeepStrictEqual(await target.sm.readSession(id), data)) changedReads.push(id)
  }
  t.same(changedReads, [], `the ${KNOWN_SESSIONS} known sessions read back unchanged`)
  const rowsAfter = await Promise.all(known.map(({ id }) => rowsOnStores(cluster, id)))
  // A store that held a row must hold it unchanged. One that held none may have received a
  // copy since, identical to what another store held: the late answer of a store that a
  // creation hedged around on a loaded machine, its hint, or a read's repair. That is a copy
  // arriving, not stored content changing. And such an extra copy, on a store outside the
  // session's first `copies`, may go again: a full repair (the fuzz calls repair()) drops it
  // once the first `copies` stores hold the same row.
  const rowChanges = known.flatMap(({ id, target }, i) => {
    const before = rowsBefore[i]!
    const after = rowsAfter[i]!
    const arrived = (row: RawRow | null): boolean =>
      row !== null && [...before.values()].some((held) => isDeepStrictEqual(held, row))
    const placement = target.sm.locate(id).slice(0, quiet.copies)
    const extraDropped = (store: string, held: RawRow | null, now: RawRow | null): boolean =>
      held !== null &&
      now === null &&
      !placement.includes(store) &&
      placement.every((each) => isDeepStrictEqual(after.get(each) ?? null, held))
    return [...after].flatMap(([store, now]) => {
      const held = before.get(store) ?? null
      if (isDeepStrictEqual(now, held) || (held === null && arrived(now))) return []
      if (extraDropped(store, held, now)) return []
      return [`${id} on ${store}: ${describeRow(held)} -> ${describeRow(now)}`]
    })
  })
  t.same(
    rowChanges,
    [],
    'and their rows are unchanged on every store (copies may arrive, extras beyond the placement go)',
  )
  // close() waits for every operation in flight: one that a bad argument left counted forever
  // would keep it (and the process) from ever ending.
  t.same(
    await Promise.all(targets.map((target) => closeWithin(target.sm, 5000))),
    ['closed', 'closed'],
    'after the fuzz, close() settles: no call left an operation counted as in flight',
  )
  t.comment(
    `seed ${SEED}: ${MALFORMED_CALLS} malformed-input calls in ${phase1Seconds.toFixed(1)} s, ` +
      `${VALID_CALLS} valid-id calls in ${phase2Seconds.toFixed(1)} s`,
  )
})

function describeRow(row: RawRow | null): string {
  if (row === null) return 'none'
  return `version ${row.version}, deleted ${row.deleted}, expires ${row.expires_at}, ${row.data?.length ?? 0} bytes`
}

function safeJson(value: unknown): string {
  try {
    return (
      JSON.stringify(value, (_, v: unknown) => (typeof v === 'bigint' ? `${v}n` : v)) ?? 'undefined'
    )
  } catch {
    return 'unserializable'
  }
}
