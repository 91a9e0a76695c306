import t from 'tap'
import fastifyCookie from '@fastify/cookie'
import fastifySession from '@fastify/session'
import Fastify from 'fastify'
import type { SessionData } from 'express-session'
import type { SessionCodec, SessionManager } from '../lib/index.js'
import { SessionShardsStore as ExpressStore } from '../lib/adapters/express.js'
import { SessionShardsStore as FastifyStore } from '../lib/adapters/fastify.js'
import { dataFingerprint, SeenSessions, touchIsDue } from '../lib/adapters/touch-throttle.js'
import { startTestCluster } from './helpers/cluster.js'
import { grayManagers } from './helpers/gray.js'
import { fastifyWithSessions } from './helpers/fastify-app.js'
import { CookieClient } from './helpers/http-client.js'
import { LineClient } from './helpers/line-client.js'
import {
  allStatementsSent,
  startManager,
  statementsSent as statementsOf,
} from './helpers/manager.js'
import { startServer, statementsSent } from './helpers/session-server.js'
import { sessionExpiringAt } from './helpers/express-sessions.js'
import { gate, sleep } from './helpers/wait.js'

/** A codec that stores Maps (JSON with a tag), as a custom codec may. */
/**
 * A session as a framework hands it back to `set` after loading `data` and changing nothing
 * (its cookie's expiry aside): Express builds it with the store's `createSession`, and
 * @fastify/session's says it is not modified. Only such a save may be skipped.
 */
function asLoaded(store: ExpressStore | FastifyStore, id: string, data: object): never {
  if (store instanceof ExpressStore) {
    return store.createSession({ sessionID: id } as never, data as never) as never
  }
  return Object.defineProperty({ ...data }, 'isModified', { value: () => false }) as never
}

const mapCodec: SessionCodec = {
  encode: (data) =>
    JSON.stringify(data, (_key, value: unknown) =>
      value instanceof Map ? { $map: [...value] } : value,
    ),
  decode: (bytes) =>
    JSON.parse(bytes.toString('utf8'), (_key, value: { $map?: [unknown, unknown][] }) =>
      value !== null && typeof value === 'object' && Array.isArray(value.$map)
        ? new Map(value.$map)
        : value,
    ) as Record<string, unknown>,
}

// touchAfterSeconds: a touch, or a save that changes nothing but the expiry, is written only
// when it moves the stored expiry by at least the throttle.
t.test('touchIsDue and dataFingerprint, from tables', async (t) => {
  const seen = { version: 1, expiresAt: 100_000, fingerprint: 'f', lifetime: 600_000 }
  // [stored, wanted, throttle, now, due]
  const cases: [typeof seen | undefined, number, number, number, boolean][] = [
    [undefined, 100_500, 60_000, 0, true],
    [seen, 100_500, 60_000, 0, false],
    [seen, 159_999, 60_000, 0, false],
    [seen, 160_000, 60_000, 0, true],
    [seen, 90_000, 60_000, 0, false],
    [seen, 100_001, 0, 0, true],
    // A 10 s lifetime under a 60 s throttle: written once the expiry would move by 5 s.
    [seen, 104_999, 60_000, 95_000, false],
    [seen, 105_000, 60_000, 95_000, true],
  ]
  for (const [known, wanted, after, now, due] of cases) {
    t.equal(
      touchIsDue(known, wanted, after, now),
      due,
      `${known?.expiresAt} → ${wanted}, after ${after}, at ${now}`,
    )
  }
  const base = { user: 'ada', cart: { cookie: 'a nested key named cookie counts' } }
  const print = dataFingerprint({ ...base, cookie: { expires: 'one' } })
  t.equal(dataFingerprint({ ...base, cookie: { expires: 'two' } }), print, 'cookie left out')
  t.not(dataFingerprint({ ...base, cart: { cookie: 'changed' } }), print, 'nested cookie counts')
  t.not(dataFingerprint({ ...base, user: 'bob' }), print)
  t.equal(dataFingerprint({ big: 1n }), null, 'not JSON: no fingerprint')

  // Without the codec, only data JSON shows exactly gets a fingerprint: anything JSON would
  // show alike (a Map as {}, undefined left out, -0 as 0) counts as changed, every time.
  for (const [what, data] of [
    ['a Map', { cart: new Map([['a', 1]]) }],
    ['a Set', { tags: new Set(['a']) }],
    ['a Date', { at: new Date(0) }],
    ['a class instance', { box: new (class Box {})() }],
    ['an undefined value', { user: undefined }],
    ['a hole', { list: [1, , 3] }],
    ['-0', { n: -0 }],
    ['NaN', { n: NaN }],
    ['a toJSON', { v: { toJSON: () => 1 } }],
    ['a null prototype', { v: Object.create(null) as object }],
  ] as const) {
    t.equal(dataFingerprint(data), null, `${what}: no fingerprint without the codec`)
  }
  // With the codec, the fingerprint is of the bytes it stores: exact for whatever it encodes.
  const before = dataFingerprint({ cart: new Map([['a', 1]]) }, mapCodec)
  t.type(before, 'string')
  t.equal(dataFingerprint({ cart: new Map([['a', 1]]) }, mapCodec), before, 'same bytes, same')
  t.not(dataFingerprint({ cart: new Map([['a', 2]]) }, mapCodec), before, 'a changed Map')
  const withCookie = (cookie: object) =>
    dataFingerprint({ cart: new Map([['a', 1]]), cookie }, mapCodec)
  t.equal(
    withCookie({ expires: 'x', path: '/' }),
    withCookie({ expires: 'y', path: '/' }),
    "the cookie's expiry left out",
  )
  t.not(
    withCookie({ path: '/', secure: true }),
    withCookie({ path: '/' }),
    'a cookie option counts',
  )
  const cookie = { toJSON: () => ({ path: '/', expires: 'x' }) }
  t.equal(
    withCookie(cookie),
    withCookie({ path: '/' }),
    "a cookie as its JSON (a framework's Cookie)",
  )
  const throwingGetter = Object.defineProperty({}, 'user', {
    get: () => {
      throw new Error('no')
    },
    enumerable: true,
  })
  t.equal(dataFingerprint(throwingGetter), null, 'a getter that throws: none')
  const throwing: SessionCodec = { encode: () => undefined as never, decode: () => ({}) }
  t.equal(dataFingerprint({ a: 1 }, throwing), null, 'a codec that returns nothing: none')
  t.equal(
    dataFingerprint(
      { a: 1 },
      {
        ...throwing,
        encode: () => {
          throw new Error('no')
        },
      },
    ),
    null,
    'a codec that throws: none',
  )

  const remembered = new SeenSessions()
  for (let i = 0; i <= 10_000; i++) remembered.remember(`k${i}`, seen)
  t.equal(remembered.get('k0'), undefined, 'bounded: the oldest is forgotten')
  t.same(remembered.get('k10000'), seen)
})

const cluster = await startTestCluster(t, { stores: 3 })
const mapManagerOptions = {
  stores: cluster.storeConfigs(),
  copies: 2,
  table: 'throttle_codec',
  codec: mapCodec,
}

t.test('express: touches within the throttle are not written, later ones are', async (t) => {
  const manager = await startManager(t, cluster, { copies: 2, table: 'throttle_touch' })
  const store = new ExpressStore({ manager, touchAfterSeconds: 60 })
  const plain = new ExpressStore({ manager })
  const id = manager.generateId()
  const start = Date.now() + 600_000
  await store.set(id, sessionExpiringAt(start, { user: 'ada' }))
  await store.get(id)
  let before = statementsSent(manager)
  await store.touch(id, sessionExpiringAt(start + 30_000, { user: 'ada' }))
  t.equal(statementsSent(manager), before, 'a touch 30 s later than stored: no statement')
  t.equal((await manager.readSession(id, { withVersion: true }))?.expiresAt, start)

  await store.touch(id, sessionExpiringAt(start + 61_000, { user: 'ada' }))
  t.equal(
    (await manager.readSession(id, { withVersion: true }))?.expiresAt,
    start + 61_000,
    'a touch past the throttle is written',
  )
  before = statementsSent(manager)
  await store.touch(id, sessionExpiringAt(start + 90_000, { user: 'ada' }))
  t.equal(statementsSent(manager), before, 'measured from the last written touch')

  await plain.get(id)
  before = statementsSent(manager)
  await plain.touch(id, sessionExpiringAt(start + 62_000, { user: 'ada' }))
  t.ok(statementsSent(manager) > before, 'without a throttle every touch is written')
})

for (const [name, makeStore] of [
  ['express', (manager: never) => new ExpressStore({ manager, touchAfterSeconds: 60 })],
  ['fastify', (manager: never) => new FastifyStore({ manager, touchAfterSeconds: 60 })],
] as const) {
  t.test(`${name}: a save that changes only the expiry is a throttled touch`, async (t) => {
    const manager = await startManager(t, cluster, { copies: 2, table: `throttle_${name}` })
    const store = makeStore(manager as never) as ExpressStore
    t.teardown(() => store.close())
    const id = manager.generateId()
    const start = Date.now() + 600_000
    await store.set(id, sessionExpiringAt(start, { user: 'ada' }))
    const first = await manager.readSession(id, { withVersion: true })
    const loaded = (await store.get(id)) as unknown as Record<string, unknown>

    let before = statementsSent(manager)
    await store.set(
      id,
      asLoaded(store, id, sessionExpiringAt(start + 30_000, { ...loaded, cookie: undefined })),
    )
    t.equal(statementsSent(manager), before, 'unchanged, 30 s later: not written')

    await store.set(id, asLoaded(store, id, sessionExpiringAt(start + 120_000, { user: 'ada' })))
    const touched = await manager.readSession(id, { withVersion: true })
    t.equal(touched?.version, first?.version, 'unchanged, 2 min later: the data is not rewritten')
    t.equal(touched?.expiresAt, start + 120_000, 'but the expiry moved')

    await store.set(id, sessionExpiringAt(start + 121_000, { user: 'bob' }))
    const changed = await manager.readSession(id, { withVersion: true })
    t.ok(changed!.version > first!.version, 'a changed session is always written')
    t.match(changed?.data, { user: 'bob' })

    // A request that loaded "bob" before another app server wrote "cy" saves "bob" unchanged:
    // skipped, so it does not overwrite the newer data with what it loaded.
    await manager.writeSession(id, { user: 'cy' }, { expiresAt: start + 121_000 })
    await store.set(id, asLoaded(store, id, sessionExpiringAt(start + 122_000, { user: 'bob' })))
    t.match(await manager.readSession(id), { user: 'cy' }, 'the change made elsewhere stays')
  })
}

// A custom codec that stores what JSON cannot (a Map): a change to it is a change of the data,
// written at once whatever the throttle, whether the store was given the manager or made it.
for (const [name, makeStore] of [
  [
    'express, given the manager',
    (manager: SessionManager) => new ExpressStore({ manager, touchAfterSeconds: 60 }),
  ],
  [
    'fastify, given the manager',
    (manager: SessionManager) => new FastifyStore({ manager, touchAfterSeconds: 60 }),
  ],
  [
    'express, making its manager',
    () => new ExpressStore({ managerOptions: mapManagerOptions, touchAfterSeconds: 60 }),
  ],
  [
    'fastify, making its manager',
    () => new FastifyStore({ managerOptions: mapManagerOptions, touchAfterSeconds: 60 }),
  ],
] as const) {
  t.test(`${name}: a changed Map in a custom codec's data is written`, async (t) => {
    const manager = await startManager(t, cluster, mapManagerOptions)
    const store = makeStore(manager) as ExpressStore
    t.teardown(() => store.close())
    await store.manager.applySchema()
    const id = manager.generateId()
    const start = Date.now() + 600_000
    await store.set(id, sessionExpiringAt(start, { cart: new Map([['apple', 1]]) }))
    await store.get(id)
    await store.set(id, sessionExpiringAt(start + 30_000, { cart: new Map([['apple', 2]]) }))
    const stored = await manager.readSession(id)
    t.same(stored?.cart, new Map([['apple', 2]]), 'the new cart is stored')
    t.same(
      ((await store.get(id)) as unknown as { cart: unknown }).cart,
      new Map([['apple', 2]]),
      'and read back',
    )
  })
}

t.test('touchAfterSeconds is checked; the value is not echoed', async (t) => {
  const manager = await startManager(t, cluster)
  for (const bad of [-1, 1.5, 'sixty', 40_000_000]) {
    t.throws(
      () => new ExpressStore({ manager, touchAfterSeconds: bad as number }),
      { code: 'INVALID_OPTION', message: /touchAfterSeconds/ },
      String(bad),
    )
  }
  t.throws(() => new FastifyStore({ manager, touchAfterSeconds: -5 }), { code: 'INVALID_OPTION' })
})

t.test(
  'server: a line commit that changes nothing is written only past the throttle',
  async (t) => {
    const manager = await startManager(t, cluster, {
      copies: 2,
      table: 'throttle_line',
      ttlSeconds: 600,
    })
    const server = await startServer(t, manager, { touchAfterSeconds: 60 })
    const client = await LineClient.connect(server.lineAddress)
    t.teardown(() => client.destroy())
    const id = await manager.createSession({ user: 'ada', visits: 1 })
    const first = await manager.readSession(id, { withVersion: true })

    // What a PHP handler sends on every request: the whole session, then commit.
    await client.ok(`open ${id} w`)
    await client.ok('put_all', '{"visits":1,"user":"ada"}')
    const before = writesSent(manager)
    await client.ok('commit')
    t.equal(writesSent(manager), before, 'the same data, just read: no write')
    await client.ok('close')
    t.same(await manager.readSession(id, { withVersion: true }), first, 'nothing moved')

    await client.ok(`open ${id} w`)
    await client.ok('put visits', '2')
    await client.ok('commit')
    const changed = await manager.readSession(id, { withVersion: true })
    t.ok(changed!.version > first!.version, 'a changed session is written')
    t.same(changed?.data, { user: 'ada', visits: '2' })
    const afterChange = writesSent(manager)
    await client.ok('commit')
    t.equal(writesSent(manager), afterChange, 'a second commit of what was just written: none')
    await client.ok('close')

    // Stored expiry older than the throttle: a commit that changes nothing still writes.
    await manager.writeSession(id, changed!.data, { expiresAt: Date.now() + 500_000 })
    await client.ok(`open ${id} w`)
    await client.ok('commit')
    const touched = await manager.readSession(id, { withVersion: true })
    t.ok(touched!.expiresAt >= Date.now() + 590_000, 'moved by 100 s: written, expiry renewed')
    await client.ok('close')

    // A session timeout shorter than twice the throttle: written once half of it has passed.
    await manager.setSessionTimeout(id, 30)
    await manager.writeSession(id, changed!.data, { expiresAt: Date.now() + 14_000 })
    await client.ok(`open ${id} w`)
    await client.ok('commit')
    const short = await manager.readSession(id, { withVersion: true })
    t.equal(short?.timeoutSeconds, 30)
    t.ok(short!.expiresAt >= Date.now() + 25_000, '16 s of a 30 s timeout gone: written')
    await client.ok('close')

    // As PHP's lazy_write: a skipped commit writes nothing, so it neither overwrites nor notices
    // a change made behind the lock by an app that does not lock.
    await client.ok(`open ${id} w`)
    await manager.writeSession(id, { user: 'behind the lock' })
    await client.ok('commit')
    t.same(
      await manager.readSession(id),
      { user: 'behind the lock' },
      'the change made elsewhere stays',
    )
    await client.ok('put user', 'eve')
    t.match(
      await client.request('commit'),
      { ok: false, code: 'VERSION_CONFLICT' },
      'a commit that writes is fenced as ever',
    )
    await client.ok('close')

    // But a logout elsewhere is noticed: a skipped commit of a destroyed session is not ok.
    await client.ok(`open ${id} w`)
    await manager.destroySession(id)
    t.match(
      await client.request('commit'),
      { ok: false, code: 'SESSION_NOT_FOUND' },
      'a skipped commit of a session destroyed meanwhile: SESSION_NOT_FOUND, never ok',
    )
    t.equal(await manager.readSession(id), null, 'and it stays destroyed')
  },
)

/** Write statements sent to every store (batched or not). */
function writesSent(manager: SessionManager): number {
  return manager
    .stats()
    .stores.reduce(
      (sum, store) =>
        sum +
        statementsOf(manager, store.id, 'write') +
        statementsOf(manager, store.id, 'writeMany'),
      0,
    )
}

t.test('server: touchAfterSeconds is checked; the value is not echoed', async (t) => {
  const manager = await startManager(t, cluster, { table: 'throttle_line' })
  await t.rejects(startServer(t, manager, { touchAfterSeconds: -4321 }), {
    code: 'INVALID_OPTION',
    message: /touchAfterSeconds/,
  })
  await t.rejects(startServer(t, manager, { touchAfterSeconds: -4321 }), {
    message: /^(?!.*4321)/s,
  })
})

t.test('with the throttle, a save that changes only cookie options is stored', async (t) => {
  // @fastify/session (rolling by default) saves every request and restores the cookie's
  // options (secure, sameSite, domain...) from the stored session; so does express with resave.
  const manager = await startManager(t, cluster, { copies: 2 })
  const cookie = (options: object) => ({
    originalMaxAge: 3_600_000,
    expires: new Date(Date.now() + 3_600_000),
    path: '/',
    ...options,
  })
  for (const [name, store] of [
    ['express', new ExpressStore({ manager, touchAfterSeconds: 60 })],
    ['fastify', new FastifyStore({ manager, touchAfterSeconds: 60 })],
  ] as const) {
    const id = store.generateId()
    await store.set(id, { user: 'a', cookie: cookie({ sameSite: 'lax' }) } as never)
    await store.get(id)
    const changed = { user: 'a', cookie: cookie({ sameSite: 'strict', secure: true }) }
    await store.set(id, changed as never)
    const read = (await store.get(id)) as { cookie?: object } | null
    t.match(read?.cookie, { sameSite: 'strict', secure: true }, `${name}: stored`)
  }
})

t.test(
  'with the throttle, a save whose data cannot be read is refused with a typed error',
  async (t) => {
    const manager = await startManager(t, cluster, { copies: 2 })
    for (const [name, store] of [
      ['express', new ExpressStore({ manager, touchAfterSeconds: 60 })],
      ['fastify', new FastifyStore({ manager, touchAfterSeconds: 60 })],
    ] as const) {
      const id = store.generateId()
      const cookie = { originalMaxAge: 3_600_000, expires: new Date(Date.now() + 3_600_000) }
      await store.set(id, { user: 'a', cookie } as never)
      await store.get(id)
      const throwing = Object.defineProperty({ cookie }, 'user', {
        get: () => {
          throw new Error('getter')
        },
        enumerable: true,
      })
      await t.rejects(store.set(id, throwing as never), { code: 'INVALID_SESSION_DATA' }, name)
      t.match(await store.get(id), { user: 'a' }, `${name}: the stored session stays`)
    }
  },
)

t.test(
  'fastify + touchAfterSeconds: rolling saves of an unchanged session are throttled',
  async (t) => {
    const manager = await startManager(t, cluster, { copies: 2 })
    const store = new FastifyStore({ manager, touchAfterSeconds: 60 })
    const app = await fastifyWithSessions(store, 600_000)
    app.post('/login', async (request) => {
      ;(request.session as unknown as { user: string }).user = 'ada'
      return { sessionId: request.session.sessionId }
    })
    app.get('/me', async (request) => ({ sessionId: request.session.sessionId }))
    const url = await app.listen({ port: 0, host: '127.0.0.1' })
    t.teardown(() => app.close())
    const client = new CookieClient()
    const id: string = (await client.post(`${url}/login`)).body.sessionId
    await client.get(`${url}/me`)
    await client.get(`${url}/me`)
    const before = await manager.readSession(id, { withVersion: true })
    for (let i = 0; i < 4; i++) await client.get(`${url}/me`)
    const after = await manager.readSession(id, { withVersion: true })
    t.match(after?.data, { user: 'ada' })
    t.equal(
      after?.version,
      before?.version,
      'requests that change nothing, within the 60 s throttle, do not rewrite the session',
    )
    t.equal(after?.expiresAt, before?.expiresAt, 'nor move its expiry (under the throttle)')
  },
)

// A browser-session cookie (maxAge null: the default of express-session and @fastify/session)
// leaves the expiry to the manager's timeout; the throttle applies to it too, from the timeout
// a read found: a touch a second later moves that expiry by about a second.
t.test('express: touches of a browser-session cookie are throttled too', async (t) => {
  const manager = await startManager(t, cluster, {
    copies: 2,
    table: 'throttle_browser_express',
    ttlSeconds: 600,
  })
  const store = new ExpressStore({ manager, touchAfterSeconds: 60 })
  const id = store.generateId()
  const sess = () =>
    ({
      user: 'ada',
      cookie: { originalMaxAge: null, expires: null, httpOnly: true, path: '/' },
    }) as unknown as SessionData
  await store.set(id, sess())
  await store.get(id)
  await store.touch(id, sess()) // first touch may write
  const first = await manager.readSession(id, { withVersion: true })
  const before = allStatementsSent(manager)
  for (let i = 0; i < 3; i++) await store.touch(id, sess())
  t.equal(
    allStatementsSent(manager),
    before,
    'three touches within the 60 s throttle: no statement is sent',
  )
  const after = await manager.readSession(id, { withVersion: true })
  t.ok(after !== null && after.expiresAt - first!.expiresAt < 60_000, 'expiry lag within throttle')
})

// The same for @fastify/session, whose default cookie has no maxAge: with `rolling` it saves
// every request; a save of an unchanged browser-session session is a throttled touch.
t.test('fastify: saves of an unchanged browser-session session are throttled', async (t) => {
  const manager = await startManager(t, cluster, {
    copies: 2,
    table: 'throttle_browser_fastify',
    ttlSeconds: 600,
  })
  const store = new FastifyStore({ manager, touchAfterSeconds: 60 })
  const id = store.generateId()
  const sess = () =>
    ({
      user: 'ada',
      cookie: { originalMaxAge: null, expires: null, httpOnly: true, path: '/' },
    }) as never
  await store.set(id, sess())
  await store.get(id)
  const first = await manager.readSession(id, { withVersion: true })
  for (let i = 0; i < 3; i++) await store.set(id, asLoaded(store, id, sess()))
  const after = await manager.readSession(id, { withVersion: true })
  t.equal(after?.version, first?.version, 'unchanged data within the throttle: not rewritten')
})

t.test(
  'fastify: a read that answers late does not make a later changed save pass for a repeat',
  async (t) => {
    // App server A's read (request Y) answers 1.5 s late; meanwhile B writes the session
    // (role: admin) and A's next request (W) reads that and drops the role. Y's late answer must
    // not put the older data's fingerprint back: W's save, equal to it, would be skipped as an
    // unchanged save within the throttle, acknowledged but not stored.
    const ids = cluster.storeConfigs().map((config) => config.id)
    const { faulty, healthy, proxies } = await grayManagers(t, cluster, ids, {
      copies: 2,
      table: 'throttle_late_read',
      queryTimeoutMillis: 5000,
      batching: false,
    })
    const dropping = gate()
    const app = async (manager: SessionManager, hold: () => Promise<void>): Promise<string> => {
      const store = new FastifyStore({ manager, touchAfterSeconds: 60 })
      const server = Fastify()
      await server.register(fastifyCookie)
      await server.register(fastifySession, {
        store,
        idGenerator: () => store.generateId(),
        secret: 'a cookie secret of the late-read test, 32+ characters',
        cookieName: 'sid',
        cookie: { secure: false, maxAge: 3_600_000 },
      })
      server.addHook('onClose', () => store.close())
      const me = (request: { session: { get(key: string): unknown } }) => ({
        user: request.session.get('user') ?? null,
        role: request.session.get('role') ?? null,
      })
      server.post('/login', async (request) => {
        request.session.set('user', 'ada')
        return me(request)
      })
      server.post('/elevate', async (request) => {
        request.session.set('role', 'admin')
        return me(request)
      })
      server.post('/drop-role', async (request) => {
        await hold()
        delete request.session.role
        return me(request)
      })
      server.get('/me', async (request) => me(request))
      const url = await server.listen({ port: 0, host: '127.0.0.1' })
      t.teardown(() => server.close())
      return url
    }
    const a = await app(faulty, dropping.wait)
    const b = await app(healthy, async () => {})
    const browser = new CookieClient()
    t.match((await browser.post(`${a}/login`)).body, { user: 'ada' })
    // Warm A's connections, so that the slow read is one round trip.
    for (let i = 0; i < 3; i++) await browser.get(`${a}/me`)
    for (const proxy of proxies.values()) {
      proxy.setFault({ kind: 'latency', toStoreMillis: 0, toClientMillis: 1500 })
    }
    const slowRead = browser.get(`${a}/me`)
    await sleep(150)
    for (const proxy of proxies.values()) proxy.heal()
    t.match((await browser.post(`${b}/elevate`)).body, { role: 'admin' })
    const dropped = browser.post(`${a}/drop-role`)
    await dropping.entered
    t.match((await slowRead).body, { user: 'ada' }, 'the slow request finished first')
    dropping.release()
    const w = await dropped
    t.match(w.body, { user: 'ada', role: null }, 'A acknowledged dropping the role')
    t.match((await browser.get(`${b}/me`)).body, { role: null }, 'B reads it dropped')
    t.match((await browser.get(`${a}/me`)).body, { role: null }, 'so does A')
  },
)
