import { spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { inspect } from 'node:util'
import t from 'tap'
import type { Test } from 'tap'
import {
  createSessionManager,
  InvalidOptionError,
  type SessionManager,
  type SessionManagerOptions,
  type StoreOptions,
} from '../lib/index.js'
import { parseStoreUri } from '../lib/store-options.js'
import { startTestCluster } from './helpers/cluster.js'
import { startManager } from './helpers/manager.js'
import { waitFor } from './helpers/wait.js'

// Passwords and signing secrets never leak: real failures (crashed, hung and misconfigured
// stores, bad options) are provoked, and everything a caller or an operator can see of them is
// captured: each error's message, stack, String() and util.inspect() (and its causes and
// per-store failures, recursively), every event the manager emits, stats(), inspect(manager),
// and the NODE_DEBUG=session-shards log. None of it may contain a password or a secret.

const cluster = await startTestCluster(t, { stores: 3 })
// Crashing, hanging and misconfiguring needs stores this run started.
const localTest = cluster.canCrash ? t.test.bind(t) : t.skip.bind(t)

const PASSWORD = cluster.stores[0]!.config.password
const WRONG_PASSWORD = `wrong-password-${randomBytes(9).toString('base64url')}`
const SECRETS = [
  `first-signing-secret-${randomBytes(12).toString('hex')}`.slice(0, 40),
  `second-signing-secret-${randomBytes(12).toString('hex')}`.slice(0, 40),
]
/** Too short to be a secret: refused, and the refusal must not repeat it either. */
const SHORT_SECRET = `short-secret-${randomBytes(6).toString('hex')}`

/** A secret and the forms it could leak in: as is, URI-encoded, base64, hex (also as inspect shows Buffers). */
function forms(name: string, secret: string): { name: string; text: string }[] {
  const bytes = Buffer.from(secret, 'utf8')
  return [
    { name, text: secret },
    { name: `${name} (URI-encoded)`, text: encodeURIComponent(secret) },
    { name: `${name} (base64)`, text: bytes.toString('base64').replace(/=+$/, '') },
    { name: `${name} (hex)`, text: bytes.toString('hex') },
    {
      name: `${name} (as a Buffer prints)`,
      text: [...bytes.subarray(0, 12)].map((b) => b.toString(16).padStart(2, '0')).join(' '),
    },
  ]
}

const FORBIDDEN = [
  ...forms('the store password', PASSWORD),
  ...forms('a wrong password', WRONG_PASSWORD),
  ...forms('the first secret', SECRETS[0]!),
  ...forms('the second secret', SECRETS[1]!),
  ...forms('a refused short secret', SHORT_SECRET),
]

/** Everything printable gathered from errors, events, stats and logs, by where it came from. */
class Capture {
  readonly texts: { source: string; text: string }[] = []
  readonly codes = new Set<string>()
  readonly errorNames = new Set<string>()
  readonly events = new Set<string>()

  text(source: string, text: string): void {
    this.texts.push({ source, text })
  }

  /** An error with its causes and per-store failures, recursively. */
  error(source: string, error: unknown, seen = new Set<unknown>()): void {
    if (error === null || typeof error !== 'object' || seen.has(error)) return
    seen.add(error)
    if (error instanceof Error) {
      this.errorNames.add(error.constructor.name)
      const code = (error as { code?: unknown }).code
      if (typeof code === 'string') this.codes.add(code)
      this.text(`${source} message`, error.message)
      this.text(`${source} stack`, String(error.stack))
      this.text(`${source} String()`, String(error))
    }
    this.value(source, error)
    const { cause, failures, errors } = error as {
      cause?: unknown
      failures?: { storeId: string; error: unknown }[]
      errors?: unknown[]
    }
    this.error(`${source} cause`, cause, seen)
    if (Array.isArray(failures)) {
      for (const failure of failures)
        this.error(`${source} failure of ${failure.storeId}`, failure.error, seen)
    }
    if (Array.isArray(errors))
      for (const each of errors) this.error(`${source} errors[]`, each, seen)
    // Any other error reachable from its own properties (e.g. an event payload's `error`).
    for (const key of Object.keys(error)) {
      const value = (error as Record<string, unknown>)[key]
      if (value instanceof Error) this.error(`${source}.${key}`, value, seen)
    }
  }

  /** Any value as util.inspect and JSON show it. */
  value(source: string, value: unknown): void {
    this.text(`${source} inspect`, inspect(value, { depth: 10 }))
    this.text(`${source} inspect(showHidden)`, inspect(value, { depth: 10, showHidden: true }))
    try {
      this.text(`${source} JSON`, JSON.stringify(value) ?? '')
    } catch {
      // Not every value serializes (cycles); inspect covered it.
    }
  }

  /** Records every event `sm` emits, whatever its name, with its payload. */
  listen(sm: SessionManager, name: string): void {
    const emit = sm.emit.bind(sm)
    sm.emit = ((event: string | symbol, ...payload: unknown[]): boolean => {
      this.events.add(String(event))
      this.value(`${name} event ${String(event)}`, payload)
      for (const item of payload) this.error(`${name} event ${String(event)}`, item)
      return (emit as (event: string | symbol, ...payload: unknown[]) => boolean)(event, ...payload)
    }) as typeof sm.emit
  }

  /** stats() and inspect() of a manager. */
  manager(sm: SessionManager, name: string): void {
    this.text(`${name} stats() JSON`, JSON.stringify(sm.stats()))
    this.value(`${name} stats()`, sm.stats())
    this.text(`${name} inspect`, inspect(sm, { depth: 10, showHidden: true }))
    this.text(
      `${name} inspect (no custom)`,
      inspect(sm, { depth: 10, showHidden: true, customInspect: false }),
    )
  }

  /** Runs an operation that may fail; a failure is captured. */
  async attempt(source: string, operation: () => Promise<unknown>): Promise<unknown> {
    try {
      return await operation()
    } catch (error) {
      this.error(source, error)
      return error
    }
  }

  leaks(): string[] {
    const found: string[] = []
    for (const { source, text } of this.texts) {
      for (const { name, text: secret } of FORBIDDEN) {
        if (text.includes(secret)) found.push(`${source} contains ${name}`)
      }
    }
    return found
  }

  assertNoLeak(t: Test, what: string): void {
    t.ok(this.texts.length > 0, `${what}: something was captured`)
    t.same(
      this.leaks(),
      [],
      `${what}: ${this.texts.length} texts captured, none holds a password or a secret`,
    )
  }
}

function managerOptions(options: Partial<SessionManagerOptions>): SessionManagerOptions {
  return {
    stores: cluster.storeConfigs(),
    connectTimeoutMillis: 1000,
    queryTimeoutMillis: 1000,
    secrets: SECRETS,
    ...options,
  }
}

localTest('crashed and hung stores: errors and events hold no password or secret', async (t) => {
  const capture = new Capture()
  const [a, b, c] = [cluster.stores[0]!, cluster.stores[1]!, cluster.stores[2]!]
  t.teardown(async () => {
    c.resume()
    await Promise.all(cluster.stores.map((store) => store.start()))
  })
  // A statement's deadline (queryTimeoutMillis) also covers opening a connection: with the
  // connect timeout longer, a request to the hung store fails with StoreTimeoutError, never
  // with whichever of two equal timeouts fired first (background statements such as the read
  // lease's rounds time out on the hung store too, and the pool then opens new connections).
  const quick = { healthCheckIntervalMillis: 100, secrets: SECRETS, connectTimeoutMillis: 3000 }
  const lenient = await startManager(t, cluster, { ...quick, copies: 2, minCopies: 1 })
  const strict = await startManager(t, cluster, { ...quick, copies: 2, minCopies: 2 })
  capture.listen(lenient, 'lenient')
  capture.listen(strict, 'strict')
  const ids = await Promise.all(Array.from({ length: 20 }, (_, i) => lenient.createSession({ i })))
  const everything = async (step: string): Promise<void> => {
    for (const [name, sm] of [
      ['lenient', lenient],
      ['strict', strict],
    ] as const) {
      for (const id of ids.slice(0, 8)) {
        await capture.attempt(`${step} ${name}.readSession`, () => sm.readSession(id))
        await capture.attempt(`${step} ${name}.writeSession`, () => sm.writeSession(id, { step }))
        await capture.attempt(`${step} ${name}.touch`, () => sm.touch(id))
      }
      await capture.attempt(`${step} ${name}.createSession`, () => sm.createSession({ step }))
      await capture.attempt(`${step} ${name}.destroySession`, () =>
        sm.destroySession(sm.generateId()),
      )
      await capture.attempt(`${step} ${name}.count`, () => sm.count())
      capture.value(
        `${step} ${name}.sweep`,
        await capture.attempt(`${step} ${name}.sweep`, () => sm.sweep()),
      )
      capture.value(
        `${step} ${name}.repair`,
        await capture.attempt(`${step} ${name}.repair`, () => sm.repair()),
      )
      capture.manager(sm, `${step} ${name}`)
    }
  }
  const down = (storeId: string) => (sm: SessionManager) =>
    sm.stats().stores.find((store) => store.id === storeId)?.state === 'down'

  await a.kill()
  await everything('one store killed')
  await waitFor('both managers to mark the first store down', () =>
    [lenient, strict].every(down(a.id)),
  )
  await b.kill()
  // At once, before the circuits open: failures carry the connection errors.
  await everything('two stores killed')
  await waitFor('both managers to mark the second store down', () =>
    [lenient, strict].every(down(b.id)),
  )
  await everything('two stores down')
  await c.pause()
  // A hung store: statements time out (StoreTimeoutError) until its circuit opens.
  await everything('two stores down, one hung')
  await waitFor('the hung store to be marked down', () => [lenient, strict].every(down(c.id)))
  await everything('every store down')
  c.resume()
  await Promise.all([a.start(), b.start()])
  await waitFor('every store back in service', () =>
    [lenient, strict].every((sm) => sm.stats().stores.every((s) => s.state === 'up' && !s.behind)),
  )
  await everything('stores back')

  t.ok(capture.codes.has('NOT_ENOUGH_STORES'), 'NotEnoughStoresError provoked')
  t.ok(capture.codes.has('NO_STORE_AVAILABLE'), 'NoStoreAvailableError provoked')
  t.ok(capture.codes.has('STORE_TIMEOUT'), 'StoreTimeoutError provoked (a hung store)')
  t.ok(capture.codes.has('ECONNREFUSED'), 'connection errors of killed stores captured as causes')
  for (const event of ['store-down', 'store-up', 'degraded-write']) {
    t.ok(capture.events.has(event), `event ${event} emitted and captured`)
  }
  t.comment(`events: ${[...capture.events].join(', ')}; codes: ${[...capture.codes].join(', ')}`)
  capture.assertNoLeak(t, 'crashes and hangs')
})

localTest('a wrong password is refused by the server and never shown', async (t) => {
  const capture = new Capture()
  const [first, ...others] = cluster.storeConfigs()
  const stores: StoreOptions[] = [
    // As a uri (where the password is part of one string) and as a field.
    {
      id: first!.id,
      uri: `mysql://${first!.user}:${encodeURIComponent(WRONG_PASSWORD)}@${first!.host}:${first!.port}/${first!.database}`,
    },
    ...others.map((config) => ({ ...config, password: WRONG_PASSWORD })),
  ]
  const sm = createSessionManager(managerOptions({ stores, healthCheckIntervalMillis: 100 }))
  t.teardown(() => sm.close())
  capture.listen(sm, 'wrong password')
  const schema = await capture.attempt('applySchema', () => sm.applySchema())
  t.match(
    schema,
    {
      code: 'SCHEMA_NOT_APPLIED',
      failures: [{ error: { code: 'ER_ACCESS_DENIED_ERROR', errno: 1045 } }],
    },
    'the server refused the login',
  )
  const id = sm.generateId()
  await capture.attempt('readSession', () => sm.readSession(id))
  await capture.attempt('writeSession', () => sm.writeSession(id, { a: 1 }))
  await capture.attempt('createSession', () => sm.createSession({ a: 1 }))
  await capture.attempt('destroySession', () => sm.destroySession(id))
  await capture.attempt('touch', () => sm.touch(id))
  await capture.attempt('setSessionTimeout', () => sm.setSessionTimeout(id, 60))
  await capture.attempt('count', () => sm.count())
  capture.value('sweep', await capture.attempt('sweep', () => sm.sweep()))
  capture.value('repair', await capture.attempt('repair', () => sm.repair()))
  await waitFor('the health check to mark every store down', () =>
    sm.stats().stores.every((store) => store.state === 'down'),
  )
  await capture.attempt('readSession (stores down)', () => sm.readSession(id))
  capture.manager(sm, 'wrong password')
  t.ok(
    capture.codes.has('NOT_ENOUGH_STORES') && capture.codes.has('NO_STORE_AVAILABLE'),
    'typed errors',
  )
  t.ok(capture.events.has('store-down'), 'store-down events')
  capture.assertNoLeak(t, 'wrong password')
  // The server's refusal names the account ("Access denied for user 'name'@'host'"): the
  // library's own messages leave it out (the driver's errors they carry keep it, for the app).
  const account = `'${first!.user}'@`
  const ownMessages = capture.texts.filter(
    ({ source }) => / message$/.test(source) && !/failure of|event|cause/.test(source),
  )
  t.ok(
    ownMessages.some(({ text }) => /Access denied/.test(text)),
    'they say why',
  )
  t.same(
    ownMessages.filter(({ text }) => text.includes(account)).map(({ source }) => source),
    [],
    "the library's messages do not name the user the server refused",
  )
})

t.test('invalid options: the error never repeats a password or a secret', async (t) => {
  const capture = new Capture()
  const config = cluster.storeConfigs()[0]!
  const pw = encodeURIComponent(PASSWORD)
  const host = `${config.host}:${config.port}`
  const cases: [string, unknown][] = [
    ['uri with a bad port', { stores: [{ id: 'a', uri: `mysql://shards:${pw}@${host}0000/db` }] }],
    [
      'uri with another scheme',
      { stores: [{ id: 'a', uri: `postgres://shards:${pw}@${host}/db` }] },
    ],
    ['uri without a database', { stores: [{ id: 'a', uri: `mysql://shards:${pw}@${host}/` }] }],
    ['uri with two path parts', { stores: [{ id: 'a', uri: `mysql://shards:${pw}@${host}/a/b` }] }],
    ['uri without a host', { stores: [{ id: 'a', uri: `mysql://shards:${pw}@/db` }] }],
    ['uri with spaces', { stores: [{ id: 'a', uri: `mysql://shards:${pw} @${host} /db` }] }],
    [
      'uri not a string',
      { stores: [{ id: 'a', uri: Buffer.from(`mysql://shards:${pw}@${host}/db`) }] },
    ],
    // A malformed %-escape in the password part, or in the user or database part.
    [
      'uri with a malformed escape in the password',
      { stores: [{ id: 'a', uri: `mysql://shards:${pw}%ZZ@${host}/db` }] },
    ],
    [
      'uri with a malformed escape in the database',
      { stores: [{ id: 'a', uri: `mysql://shards:${pw}@${host}/db%E0%A4` }] },
    ],
    // Its authority ends at the "/": the rest, password and host, would pass for the database.
    [
      'uri with an unencoded "/" in the password',
      { stores: [{ id: 'a', uri: `mysql://shards:2024/${pw}@${host}` }] },
    ],
    ['store id invalid', { stores: [{ ...config, id: 'not a valid id!' }] }],
    ['store ids duplicated', { stores: [config, config] }],
    [
      'store without host',
      { stores: [{ id: 'a', user: 'shards', password: PASSWORD, database: 'db' }] },
    ],
    ['store without database', { stores: [{ ...config, database: '' }] }],
    ['copies above the stores', { stores: [config], copies: 3 }],
    ['secrets: one short secret', { stores: [config], secrets: [SHORT_SECRET] }],
    ['secrets: a good and a short one', { stores: [config], secrets: [SECRETS[0], SHORT_SECRET] }],
    ['secrets: a string, not an array', { stores: [config], secrets: SECRETS[0] }],
    ['secrets: a number among them', { stores: [config], secrets: [SECRETS[0], 42] }],
    ['secrets: empty', { stores: [config], secrets: [] }],
    [
      'acceptUnsignedIds: not a boolean',
      { stores: [config], secrets: SECRETS, acceptUnsignedIds: PASSWORD },
    ],
  ]
  const untyped: string[] = []
  for (const [name, options] of cases) {
    let manager: SessionManager | undefined
    try {
      manager = createSessionManager(options as SessionManagerOptions)
    } catch (error) {
      capture.error(name, error)
      if (!(error instanceof InvalidOptionError)) untyped.push(`${name}: ${String(error)}`)
      continue
    }
    await manager.close()
    untyped.push(`${name}: accepted`)
  }
  t.same(untyped, [], `each of ${cases.length} bad options throws an InvalidOptionError`)
  capture.assertNoLeak(t, 'invalid options')
  // The check itself: it does find a password where there is one.
  const canary = new Capture()
  canary.value('a store config', { stores: [config] })
  canary.text('a uri', `mysql://shards:${pw}@${host}/db`)
  t.equal(
    new Set(canary.leaks().map((leak) => leak.split(' contains ')[0])).size,
    4,
    'the leak check finds the password in a config (inspect, inspect(showHidden), JSON) and a uri',
  )
})

localTest('the debug log (NODE_DEBUG=session-shards) holds no password or secret', async (t) => {
  // The schema, applied by a manager of this process.
  await startManager(t, cluster)
  const victim = cluster.stores[2]!
  t.teardown(() => victim.start())
  const stores = [
    ...cluster.storeConfigs(),
    { ...cluster.storeConfigs()[0]!, id: 'store-wrong-password', password: WRONG_PASSWORD },
  ]
  const script = new URL('./fixtures/debug-log-workload.ts', import.meta.url).pathname
  const child = spawn(process.execPath, ['--import', 'tsx', script], {
    env: {
      ...process.env,
      NODE_DEBUG: 'session-shards',
      STORES: JSON.stringify(stores),
      SECRETS: JSON.stringify(SECRETS),
    },
    stdio: ['pipe', 'pipe', 'pipe'],
  })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString('utf8')))
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')))
  const exited = new Promise<number | null>((resolve) =>
    child.once('exit', (code) => resolve(code)),
  )
  const timer = setTimeout(() => child.kill('SIGKILL'), 60_000)
  t.teardown(() => clearTimeout(timer))
  await waitFor(
    'the workload to write its sessions',
    () => stdout.includes('written\n') || child.exitCode !== null,
    30_000,
  )
  await victim.kill()
  child.stdin.end('go\n')
  const code = await exited
  t.equal(code, 0, 'the workload ran to its end', { stderr: stderr.slice(-2000) })
  const outcomes = JSON.parse(stdout.split('\n')[1] ?? '[]') as string[]
  t.ok(outcomes.includes('INVALID_SESSION_ID'), 'bad ids refused in the workload')
  t.match(stderr, /^SESSION-SHARDS \d+: store store-c: /m, 'the debug log reports the killed store')
  t.match(stderr, /store-wrong-password: .*Access denied/, 'and the refused login')
  // Without the account the refusal names: every line that logs a store's error summarizes it.
  const account = `'${cluster.storeConfigs()[0]!.user}'@`
  t.same(
    stderr.split('\n').filter((line) => line.includes(account)),
    [],
    'no line names the refused account',
  )
  const capture = new Capture()
  capture.text('debug log (stderr)', stderr)
  capture.text('workload output (stdout)', stdout)
  t.comment(`debug log: ${stderr.split('\n').length} lines`)
  capture.assertNoLeak(t, 'debug log')
})

localTest('TLS: the ssl store option reaches mysql2', async (t) => {
  // The local MariaDB servers run without TLS. A store configured with `ssl` must fail at the
  // handshake with mysql2's HANDSHAKE_NO_SSL_SUPPORT ("Server does not support secure
  // connection"), which proves the option reached the pool; the same stores without it work.
  const capture = new Capture()
  const tls = createSessionManager(
    managerOptions({
      stores: cluster
        .storeConfigs()
        .map((config) => ({ ...config, ssl: { rejectUnauthorized: true } })),
      healthCheckIntervalMillis: 3_600_000,
    }),
  )
  t.teardown(() => tls.close())
  capture.listen(tls, 'tls')
  const error = await capture.attempt('applySchema with ssl', () => tls.applySchema())
  t.match(
    error,
    {
      code: 'SCHEMA_NOT_APPLIED',
      failures: [
        {
          error: {
            code: 'HANDSHAKE_NO_SSL_SUPPORT',
            message: /does not support secure connection/,
          },
        },
      ],
    },
    'the first statement fails at the TLS handshake',
  )
  await capture.attempt('readSession with ssl', () => tls.readSession(tls.generateId()))
  t.ok(capture.events.has('store-down'), 'the health check marks the stores down')
  capture.manager(tls, 'tls')
  capture.assertNoLeak(t, 'tls')

  const plain = createSessionManager(managerOptions({ healthCheckIntervalMillis: 3_600_000 }))
  t.teardown(() => plain.close())
  await plain.applySchema()
  t.equal(await plain.readSession(plain.generateId()), null, 'without ssl the same stores answer')
})

t.test('an "@" in the database name is the database\'s, with a user before it', async (t) => {
  // RFC 3986 allows "@" in a path, and MariaDB in a quoted database name: only a URI whose
  // authority has no user (a "/" in the password cut it short) is refused.
  t.same(parseStoreUri('uri', 'mysql://app:secret@db-host:3306/sessions@eu'), {
    host: 'db-host',
    port: 3306,
    database: 'sessions@eu',
    user: 'app',
    password: 'secret',
  })
  t.throws(() => parseStoreUri('uri', 'mysql://app:20/24@db-host'), { code: 'INVALID_OPTION' })
})
