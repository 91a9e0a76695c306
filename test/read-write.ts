import t from 'tap'
import mysql from 'mysql2/promise'
import {
  InvalidSessionDataError,
  InvalidSessionIdError,
  SessionTooLargeError,
} from '../lib/index.js'
import { resolveOptions } from '../lib/options.js'
import { StoreConnection } from '../lib/store/connection.js'
import type { Statement } from '../lib/store/statements.js'
import { driverOptions, startTestCluster } from './helpers/cluster.js'
import {
  idWithOrderPrefix,
  rowsOnStores,
  startManager,
  storesWithLiveCopy,
} from './helpers/manager.js'
import { sleep, waitFor } from './helpers/wait.js'

const cluster = await startTestCluster(t, { stores: 4 })

t.test('round trip: create, read, overwrite, destroy', async (t) => {
  const manager = await startManager(t, cluster)
  const id = await manager.createSession({ user: 'ada', n: 1, nested: { list: [1, 'two'] } })
  t.match(id, /^[A-Za-z0-9_-]{32}$/, 'a 192-bit URL-safe id')
  t.same(await manager.readSession(id), { user: 'ada', n: 1, nested: { list: [1, 'two'] } })
  await manager.writeSession(id, { user: 'ada', n: 2 })
  t.same(await manager.readSession(id), { user: 'ada', n: 2 })
  await manager.destroySession(id)
  t.equal(await manager.readSession(id), null, 'destroyed')
  t.equal(await manager.readSession('never-written-session-id-0000000'), null, 'unknown id')
})

for (const copies of [1, 2, 3]) {
  t.test(`each write lands on the first ${copies} stores of locate(id)`, async (t) => {
    const manager = await startManager(t, cluster, { copies })
    // Where quorum reads look (routing.ts): a write to a store slower than its recent latency
    // allows is hedged to the next store, so on a loaded machine a copy may also land there,
    // and the slow store may take its copy late (or from a hint). Nowhere else, ever.
    const span = copies + copies - 1
    for (let i = 0; i < 12; i++) {
      const id = await manager.createSession({ i })
      const order = manager.locate(id)
      const first = order.slice(0, copies)
      const holders = await storesWithLiveCopy(cluster, id)
      t.ok(
        holders.every((store) => order.indexOf(store) < span),
        `session ${i}: on ${holders.join(', ')}, within the first ${span} of ${order.join(', ')}`,
      )
      await waitFor(`session ${i} on ${first.join(', ')}`, async () => {
        const now = await storesWithLiveCopy(cluster, id)
        return first.every((store) => now.includes(store))
      })
    }
  })
}

t.test('every copy carries a version that grows with each write, and an expiry', async (t) => {
  const manager = await startManager(t, cluster, { copies: 2, ttlSeconds: 600 })
  const id = await manager.createSession({ step: 1 })
  const first = await rowsOnStores(cluster, id)
  const result = await manager.writeSession(id, { step: 2 }, { ttlSeconds: 60 })
  const second = await rowsOnStores(cluster, id)
  for (const storeId of manager.locate(id).slice(0, 2)) {
    const before = first.get(storeId)!
    const after = second.get(storeId)!
    t.ok(after.version > before.version, `${storeId}: version grew`)
    t.equal(after.version, result.version, `${storeId}: version reported by the write`)
    t.ok(Math.abs(after.expires_at - (Date.now() + 60_000)) < 5_000, `${storeId}: per-call ttl`)
    t.ok(Math.abs(before.expires_at - (Date.now() + 600_000)) < 5_000, `${storeId}: default ttl`)
  }
})

t.test('an expired session reads as none', async (t) => {
  const manager = await startManager(t, cluster)
  const id = await manager.createSession({ short: true }, { ttlSeconds: 1 })
  t.same(await manager.readSession(id), { short: true })
  await new Promise((resolve) => setTimeout(resolve, 1100))
  t.equal(await manager.readSession(id), null)
})

t.test('a write to a destroyed session is dropped: the tombstone wins', async (t) => {
  const manager = await startManager(t, cluster)
  const id = await manager.createSession({ v: 1 })
  await manager.destroySession(id)
  const events: unknown[] = []
  manager.on('write-after-destroy', (event) => events.push(event))
  await manager.writeSession(id, { v: 'late' })
  t.equal(await manager.readSession(id), null)
  t.same(events, [{ sessionId: id }])
  t.same(await storesWithLiveCopy(cluster, id), [], 'no live copy anywhere')
})

t.test('bad input is refused before any statement', async (t) => {
  const manager = await startManager(t, cluster)
  const before = manager.stats().stores.reduce((sum, s) => sum + s.operations, 0)
  const id = await manager.createSession({ ok: 1 })
  const afterCreate = manager.stats().stores.reduce((sum, s) => sum + s.operations, 0)
  for (const bad of ['short', 'x'.repeat(129), "' OR 1=1 --------", 42, null, {}]) {
    await t.rejects(manager.readSession(bad as string), InvalidSessionIdError)
    await t.rejects(manager.writeSession(bad as string, {}), InvalidSessionIdError)
    await t.rejects(manager.destroySession(bad as string), InvalidSessionIdError)
  }
  const cycle: Record<string, unknown> = {}
  cycle.self = cycle
  for (const data of [null, [1, 2], 'text', cycle, { big: 10n }]) {
    await t.rejects(manager.writeSession(id, data as never), InvalidSessionDataError)
  }
  await t.rejects(manager.writeSession(id, { blob: 'x'.repeat(2 << 20) }), SessionTooLargeError)
  await t.rejects(manager.writeSession(id, {}, { ttlSeconds: 0 }), { code: 'INVALID_OPTION' })
  const after = manager.stats().stores.reduce((sum, s) => sum + s.operations, 0)
  t.equal(after, afterCreate, 'no statement sent for bad input')
  t.ok(afterCreate > before)
  t.same(await manager.readSession(id), { ok: 1 }, 'stored session unchanged')
})

t.test('a write that waits out a row lock is retried on its store, not moved on', async (t) => {
  const first = cluster.stores[0]!
  // Row lock waits end after 1 s on this store, for connections opened from now on.
  await first.query('SET GLOBAL innodb_lock_wait_timeout = 1')
  t.teardown(() => first.query('SET GLOBAL innodb_lock_wait_timeout = DEFAULT'))
  const manager = await startManager(t, cluster, { copies: 1, queryTimeoutMillis: 5000 })
  const id = idWithOrderPrefix(manager, [first.id])
  await manager.writeSession(id, { n: 1 })
  const holder = await mysql.createConnection(driverOptions(first.config))
  t.teardown(() => holder.end())
  await holder.query('START TRANSACTION')
  await holder.query('SELECT id FROM sessions WHERE id = ? FOR UPDATE', [id])
  const started = performance.now()
  const write = manager.writeSession(id, { n: 2 })
  // Held past the write's first lock wait (ER_LOCK_WAIT_TIMEOUT, a transient error), released
  // before a retry's wait could end.
  await sleep(1300)
  await holder.query('COMMIT')
  const result = await write
  t.ok(performance.now() - started >= 1000, 'the write waited for the lock')
  t.same(result.storeIds, [first.id], 'and was made again on the same store, not the next one')
  t.same(await manager.readSession(id), { n: 2 })
})

t.test(
  'a statement the driver refuses before sending fails its call and frees its connection',
  async (t) => {
    const options = resolveOptions({
      stores: cluster.storeConfigs().slice(0, 1),
      connectionsPerStore: 1,
    })
    const connection = new StoreConnection(options.stores[0]!, options)
    t.teardown(() => connection.close())
    const select = (sql: string, params: unknown[]): Statement<null, unknown, unknown> => ({
      text: () => sql,
      params: () => params,
      decode: (rows) => rows,
    })
    // mysql2 throws at once on an undefined parameter, from inside the pool's callback.
    await t.rejects(connection.run(select('SELECT ? AS v', [undefined]), null), TypeError)
    // One connection in the pool: had the refused statement kept it, this would wait for it.
    t.same(await connection.run(select('SELECT 1 AS one', []), null), [{ one: 1 }])
  },
)
