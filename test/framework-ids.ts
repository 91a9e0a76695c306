import t from 'tap'
import type { SessionData } from 'express-session'
import { SessionShardsStore as ExpressStore } from '../lib/adapters/express.js'
import { SessionShardsStore as FastifyStore } from '../lib/adapters/fastify.js'
import { startTestCluster } from './helpers/cluster.js'
import { startExpressApp } from './helpers/express-app.js'
import { CookieClient } from './helpers/http-client.js'
import { LineClient } from './helpers/line-client.js'
import { rowsOnStores, startManager } from './helpers/manager.js'
import { startServer, statementsSent } from './helpers/session-server.js'

// Ids made elsewhere (express-session's genid, PHP, a store being migrated from) are stored
// as they come by the adapters and the server, under a key derived from them; the library's
// own methods keep refusing them, and signed ids keep their rules.
const cluster = await startTestCluster(t, { stores: 3 })
const secrets = ['manager-id-signing-secret-for-tests-0123456789']

/** Ids frameworks and clients produce that break the library's own id rules. */
const oddIds = [
  'apple',
  'Apple',
  '%',
  '/foo',
  'a b',
  'abc,def-1234',
  "'; DROP TABLE sessions; --",
  'ünïcödé-☃-🍪',
  'x'.repeat(129),
  'y'.repeat(4000),
]

function expressSession(maxAgeMillis: number, data: Record<string, unknown>): SessionData {
  const cookie = {
    originalMaxAge: maxAgeMillis,
    expires: new Date(Date.now() + maxAgeMillis),
    httpOnly: true,
    path: '/',
  }
  return { ...data, cookie } as unknown as SessionData
}

t.test(
  'sessionKey: rule-abiding ids are their own key, others a fixed-length derived one',
  async (t) => {
    const manager = await startManager(t, cluster)
    const valid = manager.generateId()
    t.equal(manager.sessionKey(valid), valid, 'a generated id')
    const uuid = '0b6c6f2e-6f0a-4c55-9a53-8a1f7f2b9c11'
    t.equal(manager.sessionKey(uuid), uuid, 'a UUID follows the rules')
    const keys = oddIds.map((id) => manager.sessionKey(id))
    for (const key of keys) t.match(key, /^h-[A-Za-z0-9_-]{43}$/)
    t.equal(new Set(keys).size, oddIds.length, 'distinct ids, distinct keys ("apple" ≠ "Apple")')
    t.equal(manager.sessionKey('apple'), keys[0], 'the same id, the same key')
    t.throws(() => manager.sessionKey(''), { code: 'INVALID_SESSION_ID' }, 'an empty id')
    t.throws(() => manager.sessionKey(42 as unknown as string), { code: 'INVALID_SESSION_ID' })
    await t.rejects(manager.readSession('apple'), { code: 'INVALID_SESSION_ID' }, 'library API')
    // UTF-8 has no form for an unpaired surrogate: encoded, each becomes U+FFFD, and these ids
    // would share one key.
    for (const id of ['legacy:\uD800', 'legacy:\uDBFF', 'legacy:\uDFFF', 'user-7:\uD83D']) {
      t.throws(() => manager.sessionKey(id), { code: 'INVALID_SESSION_ID' }, 'a lone surrogate')
    }
    t.match(manager.sessionKey('legacy:\uFFFD'), /^h-/, 'U+FFFD itself is a character like any')

    const signing = await startManager(t, cluster, { secrets })
    t.equal(signing.sessionKey('apple'), 'apple', 'with secrets, ids keep their rules')
  },
)

t.test('the express store keeps sessions under any id express-session gives', async (t) => {
  const manager = await startManager(t, cluster, { copies: 2, table: 'odd_express' })
  const store = new ExpressStore({ manager })
  for (const [index, id] of oddIds.entries()) {
    await store.set(id, expressSession(60_000, { index }))
    t.match(await store.get(id), { index }, `stored and read: ${id.slice(0, 30)}`)
  }
  const key = manager.sessionKey('abc,def-1234')
  const rows = await rowsOnStores(cluster, key, 'odd_express')
  t.ok(
    [...rows.values()].filter((row) => row?.deleted === 0).length >= 2,
    'two copies of the key (a hedge around a slow store may add a third)',
  )
  t.same(
    await rowsOnStores(cluster, 'abc,def-1234', 'odd_express'),
    new Map(cluster.stores.map((store) => [store.id, null])),
    'nothing stored under the raw id',
  )
  const touched = expressSession(120_000, {})
  await store.touch('apple', touched)
  t.equal(
    (await manager.readSession(manager.sessionKey('apple'), { withVersion: true }))?.expiresAt,
    touched.cookie.expires?.getTime(),
    'touched',
  )
  await store.destroy('apple')
  t.equal(await store.get('apple'), null, 'destroyed')
  t.match(await store.get('Apple'), { index: 1 }, 'its neighbour in case is untouched')
  t.ok((await store.ids()).includes(manager.sessionKey('/foo')), 'listed under its key')
})

t.test('an Express app whose genid makes short ids logs users in and out', async (t) => {
  const manager = await startManager(t, cluster, { copies: 2, table: 'odd_app' })
  let made = 0
  const app = await startExpressApp(t, manager, { genid: () => `u${++made}` })
  const client = new CookieClient()
  const login = await client.post(`${app.url}/login`, { user: 'ada' })
  t.match(login, { status: 200, body: { sessionId: 'u1', user: 'ada' } })
  t.match((await client.get(`${app.url}/me`)).body, { sessionId: 'u1', user: 'ada' })
  t.match(await manager.readSession(manager.sessionKey('u1')), { user: 'ada' })
  await client.post(`${app.url}/logout`)
  t.match((await client.get(`${app.url}/me`)).body, { user: null }, 'logged out')
  t.equal(await manager.readSession(manager.sessionKey('u1')), null)
})

t.test('the fastify store keeps sessions under any id', async (t) => {
  const manager = await startManager(t, cluster, { table: 'odd_fastify' })
  const store = new FastifyStore({ manager })
  t.teardown(() => store.close())
  const session = { user: 'bo', cookie: { expires: new Date(Date.now() + 60_000) } }
  await store.set('php,style-id', session as never)
  t.match(await store.get('php,style-id'), { user: 'bo' })
  await store.destroy('php,style-id')
  t.equal(await store.get('php,style-id'), null)
})

t.test(
  'with secrets, unsigned or malformed ids are still no session, and no store is asked',
  async (t) => {
    const manager = await startManager(t, cluster, { secrets })
    const store = new ExpressStore({ manager })
    const before = statementsSent(manager)
    t.equal(await store.get('apple'), null)
    t.equal(await store.get('an-unsigned-id-of-the-right-form'), null)
    t.equal(await store.touch('apple', expressSession(1000, {})), undefined)
    await store.destroy('apple')
    await t.rejects(store.set('apple', expressSession(1000, {})), { code: 'INVALID_SESSION_ID' })
    t.equal(statementsSent(manager), before, 'no statement')
  },
)

t.test('the server stores any id over HTTP and the line protocol', async (t) => {
  const manager = await startManager(t, cluster, { table: 'odd_server' })
  const server = await startServer(t, manager)
  const base = `http://${server.httpAddress!.address}:${server.httpAddress!.port}`
  for (const id of ['apple', '%', "'; DROP TABLE x; --", 'abc,def-1234']) {
    const path = `/sessions/${encodeURIComponent(id)}`
    const put = await fetch(base + path, {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ id }),
    })
    t.equal(put.status, 200, `PUT ${id}`)
    const got = await fetch(base + path)
    t.match(await got.json(), { id, data: { id } }, `GET ${id} answers with the id it was given`)
    t.match(await manager.readSession(manager.sessionKey(id)), { id })
  }

  const client = await LineClient.connect(server.lineAddress)
  t.teardown(() => client.destroy())
  await client.ok('open abc,def-1234 w')
  await client.ok('put from', 'line')
  await client.ok('commit')
  await client.ok('close')
  t.same(await client.ok('exists abc,def-1234'), { ok: true, word: '1' })
  t.same(await client.ok('exists short'), { ok: true, word: '0' })
  t.match(
    await manager.readSession(manager.sessionKey('abc,def-1234')),
    {
      id: 'abc,def-1234',
      from: 'line',
    },
    'the line protocol and HTTP share the session',
  )

  const signing = await startManager(t, cluster, { secrets, table: 'odd_server' })
  const strict = await startServer(t, signing)
  const strictBase = `http://${strict.httpAddress!.address}:${strict.httpAddress!.port}`
  const before = statementsSent(signing)
  t.equal((await fetch(`${strictBase}/sessions/apple`)).status, 400, 'with secrets: refused')
  const strictLine = await LineClient.connect(strict.lineAddress)
  t.teardown(() => strictLine.destroy())
  t.match(await strictLine.request('open apple'), { ok: false, code: 'INVALID_SESSION_ID' })
  t.equal(statementsSent(signing), before, 'no statement')
})

t.test('a touch is seen by the next get, without rewriting the data', async (t) => {
  const manager = await startManager(t, cluster, { copies: 2, table: 'odd_touch' })
  const express = new ExpressStore({ manager })
  const fastify = new FastifyStore({ manager })
  t.teardown(() => fastify.close())
  const id = manager.generateId()
  const saved = expressSession(60_000, { user: 'ada' })
  await express.set(id, saved)
  const before = await manager.readSession(id, { withVersion: true })
  const later = new Date(Date.now() + 3_600_000)
  await express.touch(id, { ...saved, cookie: { ...saved.cookie, expires: later } })
  for (const [name, store] of [
    ['express', express],
    ['fastify', fastify],
  ] as const) {
    const got = (await store.get(id)) as unknown as { user: string; cookie: { expires: string } }
    t.equal(got.user, 'ada')
    t.equal(new Date(got.cookie.expires).getTime(), later.getTime(), `${name}: the new expiry`)
  }
  const after = await manager.readSession(id, { withVersion: true })
  t.equal(after?.version, before?.version, 'the data was not rewritten')
  t.equal(after?.expiresAt, later.getTime(), 'the stored expiry moved')

  const browserSession = manager.generateId()
  await express.set(browserSession, {
    cookie: { expires: null, path: '/' },
  } as unknown as SessionData)
  t.match(
    await express.get(browserSession),
    { cookie: { expires: null } },
    'a browser-session cookie stays one',
  )
})
