// touchAfterSeconds: the store remembers a fingerprint of what it wrote, to skip saves of
// unchanged data. It was taken of the session object once the write resolved: a session changed
// while its save was in flight (express-session: `req.session.save(cb)`, then more changes in
// the same request) was remembered as stored, and the save of that change was skipped although
// acknowledged. The fingerprint is now of the data as the write encoded it. Likewise a touch in
// flight while a save lands must not put back what it remembered before (older data's print).
import type { AddressInfo } from 'node:net'
import t from 'tap'
import { SessionShardsStore as ExpressStore } from '../lib/adapters/express.js'
import { SessionShardsStore as FastifyStore } from '../lib/adapters/fastify.js'
import { startTestCluster } from './helpers/cluster.js'
import { appWithSessions } from './helpers/express-app.js'
import { CookieClient } from './helpers/http-client.js'
import { proxiesFor, throughProxies } from './helpers/gray.js'
import { startManager } from './helpers/manager.js'
import { sleep } from './helpers/wait.js'
import { sessionExpiringAt } from './helpers/express-sessions.js'

const cluster = await startTestCluster(t, { stores: 2 })

for (const [name, makeStore] of [
  ['express', (manager: never) => new ExpressStore({ manager, touchAfterSeconds: 60 })],
  ['fastify', (manager: never) => new FastifyStore({ manager, touchAfterSeconds: 60 })],
] as const) {
  t.test(`${name} store: a change made while a save is in flight is not lost`, async (t) => {
    const manager = await startManager(t, cluster, { copies: 2, table: `adapt_mut_${name}` })
    const store = makeStore(manager as never) as ExpressStore
    const id = manager.generateId()
    const expires = Date.now() + 600_000
    const sess = sessionExpiringAt(expires, { cart: 1 }) as unknown as Record<string, unknown>
    const first = store.set(id, sess as never) // stores cart: 1
    await new Promise((resolve) => setImmediate(resolve)) // the write is on its way
    sess.cart = 2 // the app goes on changing the session
    await first
    t.match(await manager.readSession(id), { cart: 1 }, 'the first save stored cart 1')
    await store.set(id, sess as never) // the save of cart: 2 (acknowledged)
    t.match(await manager.readSession(id), { cart: 2 }, 'the acknowledged change is stored')
  })
}

for (const touchAfterSeconds of [0, 60])
  t.test(
    `express app, touchAfterSeconds ${touchAfterSeconds}: req.session.save(cb) then a further change in the same request`,
    async (t) => {
      const manager = await startManager(t, cluster, { copies: 2, table: 'adapt_mut_app' })
      const store = new ExpressStore({ manager, touchAfterSeconds })
      const app = appWithSessions(store, { cookie: { maxAge: 600_000 }, rolling: false })
      app.post('/login', async (req, res) => {
        const s = req.session as unknown as Record<string, unknown>
        s.user = 'ada'
        // Save early, do other work meanwhile (an audit call), record one more thing, answer.
        const saved = new Promise((resolve) => req.session.save(resolve))
        await new Promise((resolve) => setImmediate(resolve))
        s.role = 'admin'
        await saved
        res.json({ id: req.sessionID })
      })
      app.get('/me', (req, res) => {
        const s = req.session as unknown as Record<string, unknown>
        res.json({ user: s.user ?? null, role: s.role ?? null })
      })
      const server = app.listen(0, '127.0.0.1')
      await new Promise((resolve) => server.once('listening', resolve))
      t.teardown(() => new Promise((resolve) => server.close(resolve)))
      t.teardown(() => store.close())
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
      const client = new CookieClient()
      const { id } = (await client.post(`${url}/login`)).body
      // express-session saves again at the end of the request (the hash changed).
      t.match(await manager.readSession(id), { user: 'ada', role: 'admin' }, 'stored')
      t.same((await client.get(`${url}/me`)).body, { user: 'ada', role: 'admin' }, 'read back')
    },
  )

t.test('a save that lands while a throttled touch is in flight is not forgotten', async (t) => {
  const ids = cluster.storeConfigs().map((config) => config.id)
  const proxies = await proxiesFor(t, cluster, ids)
  const stores = throughProxies(cluster.storeConfigs(), proxies)
  const manager = await startManager(t, cluster, {
    copies: 2,
    table: 'throttle_touch_race',
    stores,
    queryTimeoutMillis: 5000,
    healthCheckIntervalMillis: 60_000,
    sweepIntervalSeconds: 0,
  })
  const store = new ExpressStore({ manager, touchAfterSeconds: 60 })
  t.teardown(() => store.close())
  const id = manager.generateId()
  const e1 = Date.now() + 600_000

  await store.set(id, sessionExpiringAt(e1, { cart: 1 })) // stored cart 1, remembered
  // A request's touch (two minutes later expiry: due), its answers slowed by the network.
  for (const proxy of proxies.values()) {
    proxy.setFault({ kind: 'latency', toStoreMillis: 0, toClientMillis: 800 })
  }
  const touching = store.touch(id, sessionExpiringAt(e1 + 120_000, { cart: 1 }))
  await sleep(150) // the touch's statements have reached the stores
  for (const proxy of proxies.values()) proxy.setFault({ kind: 'none' })
  // Another request saves cart 2 meanwhile (on other pool connections: not delayed).
  await store.set(id, sessionExpiringAt(e1 + 120_000, { cart: 2 }))
  t.match(await manager.readSession(id), { cart: 2 }, 'cart 2 stored')
  await touching
  // A third request changes the cart back to 1 and saves: acknowledged.
  await store.set(id, sessionExpiringAt(e1 + 125_000, { cart: 1 }))
  t.match(
    await manager.readSession(id),
    { cart: 1 },
    'the acknowledged save of cart 1 is stored, not skipped as a touch',
  )
})
