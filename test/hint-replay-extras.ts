import t from 'tap'
import { generateSessionId } from '../lib/index.js'
import { classicOrder } from '../lib/placement.js'
import { startTestCluster } from './helpers/cluster.js'
import { grayManagers, proxiesFor, throughProxies } from './helpers/gray.js'
import { idWithOrderPrefix, startManager, storeState } from './helpers/manager.js'
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

t.test('hint replay during a change of the store list hints no retiring store', async (t) => {
  // Two stores stay, one retires: the retiring store comes third in every order, within the
  // first 2k - 1, but never takes a write, so it holds no copy to hand off. Cut off from the
  // replaying app server, it must get no hints (they would keep it behind and hold sweeps).
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
    'x caught up',
    () => app.stats().stores.find((s) => s.id === x.id)?.behind === false,
  )
  t.same(await app.readSession(id), { v: 2 })
  for (const store of [x, a]) {
    const [row] = await store.query<{ n: number }>(
      'SELECT COUNT(*) AS n FROM sessions_hints WHERE target_store = ?',
      [b.id],
    )
    t.equal(Number(row!.n), 0, `no hint for the retiring store on ${store.id}`)
  }
})
