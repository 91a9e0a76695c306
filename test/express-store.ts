import type { SessionData } from 'express-session'
import t from 'tap'
import { SessionShardsStore } from '../lib/adapters/express.js'
import { appScenarios } from './helpers/app-scenarios.js'
import { startTestCluster } from './helpers/cluster.js'
import { startExpressApp } from './helpers/express-app.js'
import { CookieClient } from './helpers/http-client.js'
import { rowsOnStores, startManager, storeState, storesWithLiveCopy } from './helpers/manager.js'
import { sleep, waitFor } from './helpers/wait.js'

// The express-session store contract (express-session README, "Session Store Implementation"),
// then real Express apps over real HTTP against 3 stores holding 2 copies of each session.
const cluster = await startTestCluster(t, { stores: 3 })
const crashTest = cluster.canCrash ? t.test.bind(t) : t.skip.bind(t)
const fast = { copies: 2, healthCheckIntervalMillis: 100 }
const secrets = ['manager-id-signing-secret-for-tests-0123456789']

/** A session as express-session hands it to a store: data plus the cookie with its expiry. */
function expressSession(maxAgeMillis: number, data: Record<string, unknown> = {}): SessionData {
  const cookie = {
    originalMaxAge: maxAgeMillis,
    expires: new Date(Date.now() + maxAgeMillis),
    httpOnly: true,
    path: '/',
  }
  return { ...data, cookie } as unknown as SessionData
}

t.test('get: an expired or unknown session is null', async (t) => {
  const manager = await startManager(t, cluster, { ...fast, table: 'express_get' })
  const store = new SessionShardsStore({ manager })
  const id = store.generateId()
  await store.set(id, expressSession(5, { user: 'ada' }))
  await sleep(10)
  t.equal(await store.get(id), null, 'maxAge 5 ms, 10 ms later: gone')

  const kept = store.generateId()
  await new Promise<void>((resolve, reject) =>
    store.set(kept, expressSession(60_000, { user: 'bob' }), (error) =>
      error ? reject(error) : resolve(),
    ),
  )
  const viaCallback = await new Promise<SessionData | null | undefined>((resolve, reject) =>
    store.get(kept, (error, session) => (error ? reject(error) : resolve(session))),
  )
  t.match(viaCallback, { user: 'bob', cookie: { originalMaxAge: 60_000 } }, 'callback style')
  t.match(await store.get(kept), { user: 'bob' }, 'promise style')

  t.equal(await store.get('not a session id!'), null, 'any id; this one was never stored')
  const viaCallbackUnknown = await new Promise((resolve) =>
    store.get('short', (error, session) => resolve({ error, session })),
  )
  t.same(viaCallbackUnknown, { error: null, session: null }, 'callback: (null, null)')

  const expired = expressSession(60_000, { user: 'cy' })
  expired.cookie.expires = new Date(Date.now() - 1)
  await store.set(kept, expired)
  t.equal(await store.get(kept), null, 'saving with an expired cookie destroys the session')
  t.same(await storesWithLiveCopy(cluster, kept, 'express_get'), [])
})

t.test('touch extends a live session, never creates a missing or destroyed one', async (t) => {
  const manager = await startManager(t, cluster, { ...fast, table: 'express_touch' })
  const store = new SessionShardsStore({ manager })
  const live = store.generateId()
  await store.set(live, expressSession(600, { user: 'ada' }))
  await store.touch(live, expressSession(60_000))
  await sleep(700)
  t.match(await store.get(live), { user: 'ada' }, 'extended past its first expiry')

  const missing = store.generateId()
  await new Promise<void>((resolve) =>
    store.touch(missing, expressSession(60_000), () => resolve()),
  )
  t.equal(await store.get(missing), null, 'missing: still missing')
  const rows = await rowsOnStores(cluster, missing, 'express_touch')
  t.same([...rows.values()], [null, null, null], 'no row on any store')

  const destroyed = store.generateId()
  await store.set(destroyed, expressSession(60_000, { user: 'bob' }))
  await store.destroy(destroyed)
  await store.touch(destroyed, expressSession(60_000))
  t.equal(await store.get(destroyed), null, 'destroyed: stays destroyed')
  t.same(await storesWithLiveCopy(cluster, destroyed, 'express_touch'), [])

  const untouched = new SessionShardsStore({ manager, disableTouch: true })
  const id = untouched.generateId()
  await untouched.set(id, expressSession(600, { user: 'cy' }))
  await untouched.touch(id, expressSession(60_000))
  await sleep(700)
  t.equal(await untouched.get(id), null, 'disableTouch: expires at its last save')
  t.throws(() => new SessionShardsStore({ manager, disableTouch: 'yes' as never }), {
    code: 'INVALID_OPTION',
    option: 'disableTouch',
  })
  t.throws(() => new SessionShardsStore({} as never), { code: 'INVALID_OPTION', option: 'manager' })
})

t.test('all, length and ids: live sessions only, each once; clear destroys them', async (t) => {
  const manager = await startManager(t, cluster, {
    ...fast,
    table: 'express_listing',
    sweepIntervalSeconds: 0,
  })
  const store = new SessionShardsStore({ manager })
  const ids = Array.from({ length: 6 }, () => store.generateId())
  await Promise.all(ids.map((id, i) => store.set(id, expressSession(60_000, { user: `u${i}` }))))
  await store.destroy(ids[0]!)
  const expiring = store.generateId()
  await store.set(expiring, expressSession(200, { user: 'short' }))
  t.match(await store.get(expiring), { user: 'short' }, 'live at first')
  await sleep(250)
  const live = ids.slice(1).sort()
  // At least two: a batch hedged around a store that was slow for a moment also lands on a third.
  for (const id of live) {
    t.ok((await storesWithLiveCopy(cluster, id, 'express_listing')).length >= 2, 'two copies')
  }

  const all = await store.all()
  t.same(all.map((session) => session.id).sort(), live, 'all: every live session once')
  t.ok(all.every((session) => /^u[1-5]$/.test(String(session.user))))
  t.equal(await store.length(), 5, 'length')
  t.same(await store.ids(), live, 'ids, in id order')
  const viaCallback = await new Promise((resolve) =>
    store.length((error, n) => resolve([error, n])),
  )
  t.same(viaCallback, [null, 5], 'length by callback')

  const events: unknown[] = []
  store.on('write-after-destroy', (event) => events.push(event))
  await store.clear()
  t.equal(await store.length(), 0, 'clear: nothing left')
  await store.set(live[0]!, expressSession(60_000, { user: 'late' }))
  t.equal(await store.get(live[0]!), null, 'a save after clear does not bring a session back')
  t.same(events, [{ sessionId: live[0] }])
})

t.test('all shows a session as get does: its stored expiry, after a touch too', async (t) => {
  const manager = await startManager(t, cluster, { ...fast, table: 'express_listing_touch' })
  const store = new SessionShardsStore({ manager })
  const id = store.generateId()
  const session = expressSession(600_000, { user: 'ada' })
  await store.set(id, session)
  const later = new Date(Date.now() + 720_000)
  await store.touch(id, { ...session, cookie: { ...session.cookie, expires: later } } as never)
  const got = (await store.get(id)) as unknown as { cookie: { expires: string } }
  t.equal(new Date(got.cookie.expires).getTime(), later.getTime(), 'get shows the touch')
  const listed = (await store.all()).find((each) => each.id === id) as unknown as {
    cookie: { expires: string }
  }
  t.equal(new Date(listed.cookie.expires).getTime(), later.getTime(), 'all shows it too')
})

t.test('secrets turned on: all and clear pass over sessions stored under older ids', async (t) => {
  const table = 'express_listing_secrets'
  const before = new SessionShardsStore({
    manager: await startManager(t, cluster, { ...fast, table }),
  })
  await before.set('legacy-session-id-0123456789', expressSession(600_000, { user: 'old' }))
  const store = new SessionShardsStore({
    manager: await startManager(t, cluster, { ...fast, table, secrets }),
  })
  const id = store.generateId()
  await store.set(id, expressSession(600_000, { user: 'new' }))
  t.same(
    (await store.all()).map((session) => session.id),
    [id],
    'all lists the sessions the manager reads (the older id no request can read)',
  )
  t.same(await store.ids(), [id], 'so does ids')
  t.equal(await store.length(), 1, 'and length counts them alone')
  await store.clear()
  t.equal(await store.get(id), null, 'clear destroys those, and does not fail on the older one')
})

crashTest('disconnect only when every store is down; connect when one is back', async (t) => {
  const manager = await startManager(t, cluster, fast)
  const app = await startExpressApp(t, manager)
  const events: string[] = []
  app.store.on('disconnect', () => events.push('disconnect'))
  app.store.on('connect', () => events.push('connect'))
  const [a, b, c] = cluster.stores as [
    (typeof cluster.stores)[0],
    (typeof cluster.stores)[0],
    (typeof cluster.stores)[0],
  ]
  t.teardown(async () => {
    for (const store of cluster.stores) if (!store.running) await store.start()
  })

  await a.kill()
  await waitFor('the manager to see one store down', () => storeState(manager, a.id) === 'down')
  await sleep(300)
  t.same(events, [], 'one store down is no disconnect')
  const client = new CookieClient()
  t.match((await client.post(`${app.url}/login`, { user: 'ada' })).body, { user: 'ada' })

  await Promise.all([b.kill(), c.kill()])
  await waitFor('disconnect', () => events.length > 0)
  t.same(events, ['disconnect'], 'every store down: disconnect')
  const cutOff = await client.get(`${app.url}/me`)
  t.same(
    [cutOff.status, cutOff.body.user],
    [200, null],
    'express-session answers without a session while disconnected',
  )

  await b.start()
  await waitFor('connect', () => events.length > 1)
  t.same(events, ['disconnect', 'connect'], 'one store back: connect')
  await Promise.all([a.start(), c.start()])
  await waitFor('every store back in service', () =>
    cluster.stores.every((store) => storeState(manager, store.id) === 'up'),
  )
  t.same(events, ['disconnect', 'connect'], 'no more events as the others return')
  t.match((await client.get(`${app.url}/me`)).body, { user: 'ada' }, 'still logged in')
})

t.test('express app: log in, read, write, regenerate, log out', async (t) => {
  const manager = await startManager(t, cluster, { ...fast, secrets })
  const app = await startExpressApp(t, manager)
  const client = new CookieClient()
  const login = await client.post(`${app.url}/login`, { user: 'ada' })
  t.equal(login.status, 200)
  const firstId: string = login.body.sessionId
  t.match(firstId, /^[A-Za-z0-9_-]{32}\.[A-Za-z0-9_-]{43}$/, 'a manager-signed id (genid)')
  t.match((await client.get(`${app.url}/me`)).body, { sessionId: firstId, user: 'ada' })
  await client.post(`${app.url}/note`, { note: 'hello' })
  t.match((await client.get(`${app.url}/me`)).body, { user: 'ada', note: 'hello' })

  const beforeRegenerate = client.copy()
  const regenerated = await client.post(`${app.url}/regenerate`)
  const secondId: string = regenerated.body.sessionId
  t.not(secondId, firstId, 'a new id')
  t.match((await client.get(`${app.url}/me`)).body, { sessionId: secondId, user: 'ada' })
  const oldRows = await rowsOnStores(cluster, firstId)
  t.same(await storesWithLiveCopy(cluster, firstId), [], 'old id: no live copy on any store')
  // Tombstones on every store a read may ask (maxReadStores: all 3 here).
  t.equal([...oldRows.values()].filter((row) => row?.deleted === 1).length, 3, 'three tombstones')
  t.match((await beforeRegenerate.get(`${app.url}/me`)).body, { user: null }, 'old cookie: out')

  const beforeLogout = client.copy()
  t.same((await client.post(`${app.url}/logout`)).body, { loggedOut: true })
  t.match((await client.get(`${app.url}/me`)).body, { user: null }, 'logged out')
  t.match((await beforeLogout.get(`${app.url}/me`)).body, { user: null }, 'old cookie: out')
  t.same(await storesWithLiveCopy(cluster, secondId), [], 'no live copy after logout')
})

appScenarios(t, cluster, startExpressApp)
