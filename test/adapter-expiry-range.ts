import type { SessionData } from 'express-session'
import t from 'tap'
import { SessionShardsStore as ExpressStore } from '../lib/adapters/express.js'
import { SessionShardsStore as FastifyStore } from '../lib/adapters/fastify.js'
import { startTestCluster } from './helpers/cluster.js'
import { startManager, storesWithLiveCopy } from './helpers/manager.js'

// An expiry past what a JavaScript Date can hold (8.64e15 ms) never reaches the stores, and
// one already stored there (written by other software, or before the check) does not make
// every read of the session throw an untyped RangeError.
const cluster = await startTestCluster(t, { stores: 2 })
const table = 'expiry_range'
const manager = await startManager(t, cluster, { copies: 2, table })

function cookie(maxAge: number): SessionData['cookie'] {
  return {
    originalMaxAge: maxAge,
    expires: new Date(Date.now() + 60_000),
    httpOnly: true,
    path: '/',
  } as SessionData['cookie']
}

t.test('the manager refuses such an expiry before any statement', async (t) => {
  const id = await manager.createSession({ user: 'ada' })
  const before = manager.stats().stores.reduce((sum, store) => sum + store.operations, 0)
  await t.rejects(manager.writeSession(id, { user: 'bob' }, { expiresAt: 8.7e15 }), {
    code: 'INVALID_OPTION',
    option: 'expiresAt',
  })
  await t.rejects(manager.touch(id, { expiresAt: 8.7e15 }), { code: 'INVALID_OPTION' })
  const after = manager.stats().stores.reduce((sum, store) => sum + store.operations, 0)
  t.equal(after, before, 'no statement')
  t.same(await manager.readSession(id), { user: 'ada' }, 'the session is as it was')
})

t.test('express: a cookie whose maxAge reaches past the Date range is refused', async (t) => {
  const store = new ExpressStore({ manager })
  const id = store.generateId()
  const session = { user: 'ada', cookie: { ...cookie(8.7e15), expires: undefined } }
  ;(session.cookie as { maxAge?: number }).maxAge = 8.7e15
  await t.rejects(store.set(id, session as unknown as SessionData), { code: 'INVALID_OPTION' })
  t.same(await storesWithLiveCopy(cluster, id, table), [], 'nothing stored')
  t.equal(await store.get(id), null, 'and reading it is no error')
})

for (const [name, makeStore] of [
  ['express', () => new ExpressStore({ manager })],
  ['fastify', () => new FastifyStore({ manager })],
] as const) {
  t.test(`${name}: a stored expiry past the Date range still reads`, async (t) => {
    const store = makeStore()
    const id = store.generateId()
    await store.set(id, { user: 'ada', cookie: cookie(60_000) } as never)
    for (const server of cluster.stores) {
      await server.query(`UPDATE \`${table}\` SET expires_at = ? WHERE id = ?`, [8.7e15, id])
    }
    const read = (await store.get(id)) as unknown as { user: string; cookie: { expires: unknown } }
    t.equal(read?.user, 'ada', 'the session reads')
    t.ok(
      read !== null && !Number.isNaN(new Date(read.cookie.expires as string).getTime()),
      'with a cookie expiry a Date can hold',
    )
  })
}
