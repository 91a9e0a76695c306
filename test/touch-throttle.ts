import t from 'tap'
import type { SessionData } from 'express-session'
import { SessionShardsStore as ExpressStore } from '../lib/adapters/express.js'
import { SessionShardsStore as FastifyStore } from '../lib/adapters/fastify.js'
import { dataFingerprint, SeenSessions, touchIsDue } from '../lib/adapters/touch-throttle.js'
import { startTestCluster } from './helpers/cluster.js'
import { startManager } from './helpers/manager.js'
import { statementsSent } from './helpers/session-server.js'

// touchAfterSeconds: a touch, or a save that changes nothing but the expiry, is written only
// when it moves the stored expiry by at least the throttle.
t.test('touchIsDue and dataFingerprint, from tables', async (t) => {
  const seen = { expiresAt: 100_000, fingerprint: 'f' }
  const cases: [typeof seen | undefined, number, number, boolean][] = [
    [undefined, 100_500, 60_000, true],
    [seen, 100_500, 60_000, false],
    [seen, 159_999, 60_000, false],
    [seen, 160_000, 60_000, true],
    [seen, 90_000, 60_000, false],
    [seen, 100_001, 0, true],
  ]
  for (const [known, wanted, after, due] of cases) {
    t.equal(
      touchIsDue(known, wanted, after),
      due,
      `${known?.expiresAt} → ${wanted}, after ${after}`,
    )
  }
  const base = { user: 'ada', cart: { cookie: 'a nested key named cookie counts' } }
  const print = dataFingerprint({ ...base, cookie: { expires: 'one' } })
  t.equal(dataFingerprint({ ...base, cookie: { expires: 'two' } }), print, 'cookie left out')
  t.not(dataFingerprint({ ...base, cart: { cookie: 'changed' } }), print, 'nested cookie counts')
  t.not(dataFingerprint({ ...base, user: 'bob' }), print)
  t.equal(dataFingerprint({ big: 1n }), null, 'not JSON: no fingerprint')

  const remembered = new SeenSessions()
  for (let i = 0; i <= 10_000; i++) remembered.remember(`k${i}`, seen)
  t.equal(remembered.get('k0'), undefined, 'bounded: the oldest is forgotten')
  t.same(remembered.get('k10000'), seen)
})

const cluster = await startTestCluster(t, { stores: 3 })

function expressSession(expiresAt: number, data: Record<string, unknown>): SessionData {
  const cookie = {
    originalMaxAge: 600_000,
    expires: new Date(expiresAt),
    httpOnly: true,
    path: '/',
  }
  return { ...data, cookie } as unknown as SessionData
}

t.test('express: touches within the throttle are not written, later ones are', async (t) => {
  const manager = await startManager(t, cluster, { copies: 2, table: 'throttle_touch' })
  const store = new ExpressStore({ manager, touchAfterSeconds: 60 })
  const plain = new ExpressStore({ manager })
  const id = manager.generateId()
  const start = Date.now() + 600_000
  await store.set(id, expressSession(start, { user: 'ada' }))
  await store.get(id)
  let before = statementsSent(manager)
  await store.touch(id, expressSession(start + 30_000, { user: 'ada' }))
  t.equal(statementsSent(manager), before, 'a touch 30 s later than stored: no statement')
  t.equal((await manager.readSession(id, { withVersion: true }))?.expiresAt, start)

  await store.touch(id, expressSession(start + 61_000, { user: 'ada' }))
  t.equal(
    (await manager.readSession(id, { withVersion: true }))?.expiresAt,
    start + 61_000,
    'a touch past the throttle is written',
  )
  before = statementsSent(manager)
  await store.touch(id, expressSession(start + 90_000, { user: 'ada' }))
  t.equal(statementsSent(manager), before, 'measured from the last written touch')

  await plain.get(id)
  before = statementsSent(manager)
  await plain.touch(id, expressSession(start + 62_000, { user: 'ada' }))
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
    await store.set(id, expressSession(start, { user: 'ada' }))
    const first = await manager.readSession(id, { withVersion: true })
    const loaded = (await store.get(id)) as unknown as Record<string, unknown>

    let before = statementsSent(manager)
    await store.set(id, expressSession(start + 30_000, { ...loaded, cookie: undefined }))
    t.equal(statementsSent(manager), before, 'unchanged, 30 s later: not written')

    await store.set(id, expressSession(start + 120_000, { user: 'ada' }))
    const touched = await manager.readSession(id, { withVersion: true })
    t.equal(touched?.version, first?.version, 'unchanged, 2 min later: the data is not rewritten')
    t.equal(touched?.expiresAt, start + 120_000, 'but the expiry moved')

    await store.set(id, expressSession(start + 121_000, { user: 'bob' }))
    const changed = await manager.readSession(id, { withVersion: true })
    t.ok(changed!.version > first!.version, 'a changed session is always written')
    t.match(changed?.data, { user: 'bob' })

    // A request that loaded "bob" before another app server wrote "cy" saves "bob" unchanged:
    // skipped, so it does not overwrite the newer data with what it loaded.
    await manager.writeSession(id, { user: 'cy' }, { expiresAt: start + 121_000 })
    await store.set(id, expressSession(start + 122_000, { user: 'bob' }))
    t.match(await manager.readSession(id), { user: 'cy' }, 'the change made elsewhere stays')
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
