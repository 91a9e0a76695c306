import t from 'tap'
import type { SessionManager } from '../lib/index.js'
import { appScenarios } from './helpers/app-scenarios.js'
import { startTestCluster } from './helpers/cluster.js'
import { startFastifyApp } from './helpers/fastify-app.js'
import { CookieClient } from './helpers/http-client.js'
import { rowsOnStores, startManager, storesWithLiveCopy } from './helpers/manager.js'

// Fastify with @fastify/cookie and @fastify/session over real HTTP, against 3 stores holding
// 2 copies of each session. The plugin saves the session on every request by default.
const cluster = await startTestCluster(t, { stores: 3 })
const fast = { copies: 2, healthCheckIntervalMillis: 100 }
const secrets = ['manager-id-signing-secret-for-tests-0123456789']

function operations(manager: SessionManager): number {
  return manager.stats().stores.reduce((sum, store) => sum + store.operations, 0)
}

t.test('fastify app: log in, read, write, regenerate, log out', async (t) => {
  const manager = await startManager(t, cluster, { ...fast, secrets })
  const app = await startFastifyApp(t, manager)
  const client = new CookieClient()
  const login = await client.post(`${app.url}/login`, { user: 'ada' })
  t.equal(login.status, 200)
  const firstId: string = login.body.sessionId
  t.match(firstId, /^[A-Za-z0-9_-]{32}\.[A-Za-z0-9_-]{43}$/, 'a manager-signed id (idGenerator)')
  t.match((await client.get(`${app.url}/me`)).body, { sessionId: firstId, user: 'ada' })
  await client.post(`${app.url}/note`, { note: 'hello' })
  t.match((await client.get(`${app.url}/me`)).body, { user: 'ada', note: 'hello' })

  const rows = await rowsOnStores(cluster, firstId)
  const expiries = [...rows.values()].flatMap((row) => (row === null ? [] : [row.expires_at]))
  t.ok(expiries.length >= 2, 'two copies (a hedge around a slow store may add a third)')
  for (const expiresAt of expiries) {
    t.ok(Math.abs(expiresAt - (Date.now() + 60_000)) < 5_000, 'expiry from the cookie maxAge')
  }

  const before = operations(manager)
  for (let i = 0; i < 5; i++) await client.get(`${app.url}/me`)
  t.ok(
    operations(manager) - before <= 20,
    'the save on every request is one write: a read (data and digest) and two copies per request',
  )

  const beforeRegenerate = client.copy()
  const regenerated = await client.post(`${app.url}/regenerate`)
  const secondId: string = regenerated.body.sessionId
  t.not(secondId, firstId, 'a new id')
  t.match((await client.get(`${app.url}/me`)).body, { sessionId: secondId, user: 'ada' })
  t.same(await storesWithLiveCopy(cluster, firstId), [], 'old id: no live copy on any store')
  const oldRows = [...(await rowsOnStores(cluster, firstId)).values()]
  // Tombstones on every store a read may ask (maxReadStores: all 3 here).
  t.equal(oldRows.filter((row) => row?.deleted === 1).length, 3, 'three tombstones')
  const oldCookie = await beforeRegenerate.get(`${app.url}/me`)
  t.match(oldCookie.body, { user: null }, 'the old cookie is logged out')
  t.not(oldCookie.body.sessionId, firstId, 'and gets a fresh session')

  const beforeLogout = client.copy()
  t.same((await client.post(`${app.url}/logout`)).body, { loggedOut: true })
  t.match((await client.get(`${app.url}/me`)).body, { user: null }, 'logged out')
  t.match((await beforeLogout.get(`${app.url}/me`)).body, { user: null }, 'old cookie: out')
  t.same(await storesWithLiveCopy(cluster, secondId), [], 'no live copy after logout')
})

t.test('a malformed or unsigned id is no session, and no store is asked', async (t) => {
  const manager = await startManager(t, cluster, { ...fast, secrets })
  const app = await startFastifyApp(t, manager)
  const before = operations(manager)
  t.equal(await app.store.get('not a session id!'), null)
  t.equal(await app.store.get('an-unsigned-id-of-the-right-form'), null, 'unsigned, with secrets')
  await app.store.destroy('short')
  t.equal(operations(manager), before)
})

// https://github.com/expressjs/session/issues/632 (the same race with @fastify/session, which
// saves the session it loaded at the end of every request).
t.test('a request ending after logout does not bring the session back', async (t) => {
  const manager = await startManager(t, cluster, fast)
  let entered!: () => void
  let release!: () => void
  const reachedGate = new Promise<void>((resolve) => (entered = resolve))
  const released = new Promise<void>((resolve) => (release = resolve))
  const app = await startFastifyApp(t, manager, {
    slow: () => {
      entered()
      return released
    },
  })
  const events: unknown[] = []
  app.store.on('write-after-destroy', (event) => events.push(event))
  const client = new CookieClient()
  const { sessionId } = (await client.post(`${app.url}/login`, { user: 'ada' })).body
  const tab = client.copy()
  const slow = tab.get(`${app.url}/slow`)
  await reachedGate
  t.same((await client.post(`${app.url}/logout`)).body, { loggedOut: true })
  release()
  const answer = await slow
  t.equal(answer.status, 200, 'the slow request still completes')
  t.match(answer.body, { sessionId, user: 'ada' })
  t.same(events, [{ sessionId }], 'the store reported the dropped save')
  t.same(await storesWithLiveCopy(cluster, sessionId), [], 'no live copy on any store')
  t.equal(await app.store.get(sessionId), null)
  t.match((await tab.copy().get(`${app.url}/me`)).body, { user: null }, 'old cookie: out')
})

appScenarios(t, cluster, startFastifyApp)
