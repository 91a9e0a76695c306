import t from 'tap'
import { generateSessionId } from '../lib/index.js'
import { classicOrder } from '../lib/placement.js'
import { startTestCluster } from './helpers/cluster.js'
import { grayManagers, proxiesFor, throughProxies } from './helpers/gray.js'
import {
  createManager,
  idWithOrderPrefix,
  rowsOnStores,
  startManager,
  storeState,
} from './helpers/manager.js'
import { sleep, waitFor } from './helpers/wait.js'

// Hint replay while a store that may hold an extra copy is out of reach (docs/guarantees.md,
// section 4): the replay must not count the session done and delete the hints that spare the
// newer copies from sweeps, or the older extra copy outlives a newer write with a short life.
const cluster = await startTestCluster(t, { stores: 3 })
const [x, a, b] = [cluster.stores[0]!, cluster.stores[1]!, cluster.stores[2]!]
const quick = {
  copies: 2,
  queryTimeoutMillis: 300,
  healthCheckIntervalMillis: 100,
  sweepGraceSeconds: 0,
  sweepIntervalSeconds: 0,
}

t.test(
  'an extra copy out of reach during hint replay does not outlive a newer write',
  async (t) => {
    const { faulty, healthy, proxies } = await grayManagers(t, cluster, [x.id, b.id], quick)
    await healthy.close() // reaching every store, it would hand the extra copy off at once
    const id = idWithOrderPrefix(faulty, [x.id, a.id, b.id])
    await faulty.writeSession(id, { v: 1 })
    // v2 misses x and fails over to b, past the session's first two stores.
    proxies.get(x.id)!.setFault({ kind: 'blackhole' })
    const v2 = await faulty.writeSession(id, { v: 2 })
    t.same([...v2.storeIds].sort(), [a.id, b.id].sort(), 'v2 failed over past x to b')
    // b is cut off while x comes back and its hints are replayed.
    proxies.get(b.id)!.setFault({ kind: 'blackhole' })
    proxies.get(x.id)!.heal()
    await waitFor(
      'b down, x caught up',
      () => storeState(faulty, b.id) === 'down' && storeState(faulty, x.id) === 'up',
    )
    // v3, one second of life, on the first two stores; it expires and is swept.
    const v3 = await faulty.writeSession(id, { v: 3 }, { ttlSeconds: 1 })
    t.same([...v3.storeIds].sort(), [a.id, x.id].sort(), 'v3 on the first two stores')
    await sleep(1200)
    t.equal(await faulty.readSession(id), null, 'v3 expired: no session')
    await faulty.sweep()
    // b is back: its copy of v2 (a day to live) must not be the session again.
    proxies.get(b.id)!.heal()
    await waitFor('b back in service', () => storeState(faulty, b.id) === 'up')
    await faulty.repair()
    t.equal(await faulty.readSession(id), null, 'v2 does not come back')
    const fresh = await startManager(t, cluster, quick)
    t.equal(await fresh.readSession(id), null, 'for another app server either')
  },
)

t.test(
  'hint replay during a change waits for a retiring store it cannot read, and hints it not',
  async (t) => {
    // Two stores stay, one retires: the retiring store comes last in every order and takes no
    // write during the change, but may hold a copy a write before it left there: the replay
    // reads it, and while it cannot (cut off from the replaying app server), the store being
    // replayed stays behind; the retiring store gets no hints (nothing replays to it once gone).
    const proxies = await proxiesFor(t, cluster, [x.id, b.id])
    const stores = throughProxies(cluster.storeConfigs(), proxies)
    const app = await startManager(t, cluster, {
      ...quick,
      queryTimeoutMillis: 1000,
      minCopies: 1,
      stores: stores.filter((store) => store.id !== b.id),
      previousStores: stores,
    })
    // a and b first under the old list: the tombstone check a write makes there does not need x.
    let id: string
    do id = generateSessionId()
    while (
      classicOrder([x.id, a.id, b.id], id).slice(0, 2).sort().join() !== [a.id, b.id].sort().join()
    )
    await app.writeSession(id, { v: 1 })
    proxies.get(x.id)!.setFault({ kind: 'blackhole' })
    const v2 = await app.writeSession(id, { v: 2 })
    t.same(v2.storeIds, [a.id], 'v2 missed x')
    proxies.get(b.id)!.setFault({ kind: 'blackhole' })
    proxies.get(x.id)!.heal()
    await waitFor(
      'x back, b down',
      () => storeState(app, x.id) !== 'down' && storeState(app, b.id) === 'down',
    )
    await sleep(1000) // health rounds every 100 ms: ten replays of x
    t.equal(storeState(app, x.id), 'behind', 'x waits for b')
    t.same(await app.readSession(id), { v: 2 })
    for (const store of [x, a]) {
      const [row] = await store.query<{ n: number }>(
        'SELECT COUNT(*) AS n FROM sessions_hints WHERE target_store = ?',
        [b.id],
      )
      t.equal(Number(row!.n), 0, `no hint for the retiring store on ${store.id}`)
    }
    proxies.get(b.id)!.heal()
    await waitFor('x caught up once b answers', () => storeState(app, x.id) === 'up')
  },
)

t.test('a pre-change extra copy on a retiring store does not outlive a newer write', async (t) => {
  const proxies = await proxiesFor(t, cluster, [x.id, b.id])
  const stores = throughProxies(cluster.storeConfigs(), proxies)
  // Before the change: three stores, no change under way.
  const before = await startManager(t, cluster, { ...quick, stores })
  const id = idWithOrderPrefix(before, [x.id, a.id, b.id])
  await before.writeSession(id, { v: 1 })
  // v2 misses x and fails over to b, past the session's first two stores (hint for x on a, b).
  proxies.get(x.id)!.setFault({ kind: 'blackhole' })
  const v2 = await before.writeSession(id, { v: 2 })
  t.same([...v2.storeIds].sort(), [a.id, b.id].sort(), 'v2 failed over past x to b')
  await before.close()

  // The change starts: b retires. The app server on the new list cannot reach b for now,
  // while x is back and its hints are replayed.
  proxies.get(b.id)!.setFault({ kind: 'blackhole' })
  proxies.get(x.id)!.heal()
  const app = createManager(t, cluster, {
    ...quick,
    stores: stores.filter((store) => store.id !== b.id),
    previousStores: stores,
  })
  await app.ready()
  // x's replay cannot read b, which may hold a copy (it does): x waits, its hints kept.
  await waitFor(
    'b down, x back but behind',
    () => storeState(app, b.id) === 'down' && storeState(app, x.id) === 'behind',
    20_000,
  )
  t.same(await app.readSession(id), { v: 2 }, 'v2 read meanwhile')

  // v3, one second of life, on the new placement; it expires and is swept.
  const v3 = await app.writeSession(id, { v: 3 }, { ttlSeconds: 1 })
  t.same([...v3.storeIds].sort(), [a.id, x.id].sort(), 'v3 on the new placement')
  await sleep(1200)
  t.equal(await app.readSession(id), null, 'v3 expired: no session')
  await app.sweep()

  // b is back (still retiring): its copy of v2 (a day to live) must not be the session again.
  proxies.get(b.id)!.heal()
  await waitFor(
    'b back in service',
    () => storeState(app, b.id) === 'up' && storeState(app, x.id) === 'up',
    20_000,
  )
  await sleep(500)
  t.equal(await app.readSession(id), null, 'v2 does not come back (after b returned)')
  await app.repair()
  t.equal(await app.readSession(id), null, 'v2 does not come back (after the rebalance)')
  const rows = await rowsOnStores(cluster, id)
  const live = [...rows].filter(
    ([, row]) => row !== null && row.deleted === 0 && row.expires_at > Date.now(),
  )
  t.same(
    live.map(([store, row]) => `${store}:v${row!.version}`),
    [],
    'no live copy left anywhere',
  )
})
