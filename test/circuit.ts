import t from 'tap'
import { driverOptions, startTestCluster } from './helpers/cluster.js'
import { idWithOrderPrefix, startManager, storeState } from './helpers/manager.js'
import mysql from 'mysql2/promise'

const cluster = await startTestCluster(t, { stores: 3 })
const crashTest = cluster.canCrash ? t.test.bind(t) : t.skip.bind(t)

crashTest(
  'failThreshold consecutive failures open the circuit; then the store is skipped',
  async (t) => {
    const manager = await startManager(t, cluster, {
      copies: 1,
      failThreshold: 2,
      healthCheckIntervalMillis: 3_600_000, // only requests may open the circuit here
    })
    const hung = cluster.stores[1]!
    const id = idWithOrderPrefix(manager, [hung.id])
    await manager.writeSession(id, { v: 1 })
    const downEvents: { storeId: string; error: Error }[] = []
    manager.on('store-down', (event) => downEvents.push(event))
    await hung.pause()
    t.teardown(() => (hung.paused ? hung.resume() : undefined))
    const errorsBefore = manager.stats().stores.find((s) => s.id === hung.id)!.errors
    await manager.writeSession(id, { v: 2 })
    t.not(storeState(manager, hung.id), 'down', 'one timeout does not open it')
    await manager.writeSession(id, { v: 3 })
    t.equal(storeState(manager, hung.id), 'down', 'the second in a row opens it')
    t.equal(downEvents.length, 1)
    t.equal(downEvents[0]!.storeId, hung.id)
    t.notMatch(String(downEvents[0]!.error), hung.config.password)
    const opsWhenOpened = manager.stats().stores.find((s) => s.id === hung.id)!.operations
    for (let i = 0; i < 5; i++) await manager.writeSession(id, { v: 4 + i })
    const stats = manager.stats().stores.find((s) => s.id === hung.id)!
    t.equal(stats.operations, opsWhenOpened, 'no statement sent to an open circuit')
    t.ok(stats.errors >= errorsBefore + 2)
    t.same(await manager.readSession(id), { v: 8 })
    hung.resume()
  },
)

crashTest(
  'a refused connection opens the circuit at once: nothing but absence explains it',
  async (t) => {
    const manager = await startManager(t, cluster, {
      copies: 1,
      failThreshold: 3,
      healthCheckIntervalMillis: 3_600_000,
    })
    const dead = cluster.stores[1]!
    const id = idWithOrderPrefix(manager, [dead.id])
    await manager.writeSession(id, { v: 1 })
    await dead.kill()
    t.teardown(() => (dead.running ? undefined : dead.start()))
    await manager.writeSession(id, { v: 2 })
    t.equal(storeState(manager, dead.id), 'down', 'down after one refused connection')
    await dead.start()
  },
)

t.test('stats() reports state, counts and latency per store', async (t) => {
  const manager = await startManager(t, cluster, { copies: 2 })
  const id = await manager.createSession({})
  for (let i = 0; i < 20; i++) await manager.readSession(id)
  const stats = manager.stats()
  t.equal(stats.stores.length, 3)
  for (const store of stats.stores) {
    t.match(store, { id: String, state: 'up', behind: Boolean, operations: Number, errors: 0 })
  }
  const busiest = stats.stores.find((s) => s.id === manager.locate(id)[0])!
  t.ok(busiest.operations >= 21, `first store of the order: ${busiest.operations} statements`)
  const latency = busiest.latency!
  t.ok(
    latency.p50Millis > 0 && latency.p99Millis >= latency.p50Millis,
    `latency ${JSON.stringify(latency)}`,
  )
})

crashTest(
  'a broken pooled connection (the store restarted) is retried, not failed over',
  async (t) => {
    const manager = await startManager(t, cluster, {
      copies: 1,
      healthCheckIntervalMillis: 3_600_000,
    })
    const store = cluster.stores[2]!
    const id = idWithOrderPrefix(manager, [store.id])
    await manager.writeSession(id, { v: 1 })
    await store.kill()
    await store.start()
    const result = await manager.writeSession(id, { v: 2 })
    t.same(result.storeIds, [store.id], 'written on the same store after a retry')
    t.not(storeState(manager, store.id), 'down')
  },
)

t.test('a lock wait timeout is retried on the same store', async (t) => {
  const store = cluster.stores[0]!
  const manager = await startManager(t, cluster, { copies: 1, queryTimeoutMillis: 8000 })
  const id = idWithOrderPrefix(manager, [store.id])
  await manager.writeSession(id, { v: 1 })
  // Another client holds the row lock for 1.5 s; with a 1 s lock wait timeout the manager's
  // first attempt fails with ER_LOCK_WAIT_TIMEOUT and the retry succeeds.
  await store.query('SET GLOBAL innodb_lock_wait_timeout = 1')
  t.teardown(() => store.query('SET GLOBAL innodb_lock_wait_timeout = 50'))
  const holder = await mysql.createConnection(driverOptions(store.config))
  t.teardown(() => holder.end())
  await holder.query('BEGIN')
  await holder.query('SELECT * FROM sessions WHERE id = ? FOR UPDATE', [id])
  const release = new Promise((resolve) => setTimeout(resolve, 1500)).then(() =>
    holder.query('COMMIT'),
  )
  const fresh = await startManager(t, cluster, { copies: 1, queryTimeoutMillis: 8000 })
  const result = await fresh.writeSession(id, { v: 2 })
  await release
  t.same(result.storeIds, [store.id])
  t.same(await fresh.readSession(id), { v: 2 })
  t.equal(fresh.stats().stores.find((s) => s.id === store.id)!.errors, 0, 'retried, not failed')
})
