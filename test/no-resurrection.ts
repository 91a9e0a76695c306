import t from 'tap'
import { createSessionManager } from '../lib/index.js'
import { startTestCluster } from './helpers/cluster.js'
import { proxiesFor } from './helpers/gray.js'
import {
  idWithOrderPrefix,
  rowsOnStores,
  startManager,
  storeState,
  storesWithLiveCopy,
} from './helpers/manager.js'
import { waitFor } from './helpers/wait.js'

// Guarantee 2 (docs/guarantees.md): a destroyed session never comes back, even when a store
// that missed the destroy returns with its old copy.
const cluster = await startTestCluster(t, { stores: 3 })
const crashTest = cluster.canCrash ? t.test.bind(t) : t.skip.bind(t)
const fast = { copies: 2, healthCheckIntervalMillis: 100 }

crashTest(
  'destroyed while a store was down, the returning store does not bring it back',
  async (t) => {
    const [a, b] = [cluster.stores[0]!, cluster.stores[1]!]
    const sawOutage = await startManager(t, cluster, fast)
    const otherServer = await startManager(t, cluster, fast)
    const id = idWithOrderPrefix(sawOutage, [a.id, b.id])
    await sawOutage.writeSession(id, { user: 'ada', loggedIn: true })
    t.same(await otherServer.readSession(id), { user: 'ada', loggedIn: true })

    await a.kill()
    await sawOutage.destroySession(id) // logout: tombstones on b and c, a hint for a
    await waitFor(
      'the other app server to see the outage',
      () => storeState(otherServer, a.id) === 'down',
    )
    await a.start()
    // a came back with its old live copy; the managers' hint replay may already have buried it.
    const rows = await a.query('SELECT deleted FROM sessions WHERE id = ?', [id])
    t.equal(rows.length, 1, 'the returning store kept its copy of the session')

    t.equal(await sawOutage.readSession(id), null, 'manager that saw the outage: gone')
    t.equal(await otherServer.readSession(id), null, 'second manager: gone')
    await waitFor('both managers to mark the store up', () =>
      [sawOutage, otherServer].every((m) => storeState(m, a.id) === 'up'),
    )
    t.equal(await sawOutage.readSession(id), null, 'after the store is back in service: gone')
    t.equal(await otherServer.readSession(id), null, 'second manager after the store is back: gone')
    const late = createSessionManager({ stores: cluster.storeConfigs(), copies: 2 })
    t.teardown(() => late.close())
    t.equal(await late.readSession(id), null, 'a manager started after the outage: gone')

    const result = await sawOutage.repair()
    t.ok(result.scanned > 0)
    for (const manager of [sawOutage, otherServer, late])
      t.equal(await manager.readSession(id), null, 'after repair')
    const after = await a.query<{ deleted: number }>('SELECT deleted FROM sessions WHERE id = ?', [
      id,
    ])
    t.same(after, [{ deleted: 1 }], 'the returning store now holds the tombstone')
  },
)

crashTest('a late write after the destroy does not resurrect it either', async (t) => {
  const [a, b] = [cluster.stores[0]!, cluster.stores[1]!]
  const manager = await startManager(t, cluster, fast)
  const id = idWithOrderPrefix(manager, [b.id, a.id])
  await manager.writeSession(id, { v: 1 })
  await b.kill()
  await manager.destroySession(id)
  await manager.writeSession(id, { v: 'late request' })
  await b.start()
  t.equal(await manager.readSession(id), null)
  await waitFor('the store to be back in service', () => storeState(manager, b.id) === 'up')
  t.equal(await manager.readSession(id), null)
  await manager.repair()
  t.equal(await manager.readSession(id), null)
})

t.test(
  'a store past the first copies that missed the destroy gets the tombstone once it is back',
  async (t) => {
    const [a, b, c] = cluster.stores.map((store) => store.id) as [string, string, string]
    // The app server reaches `c` through a proxy: its faults are seen by it alone.
    const proxies = await proxiesFor(t, cluster, [c])
    const proxy = proxies.get(c)!
    const manager = await startManager(t, cluster, {
      ...fast,
      stores: cluster
        .storeConfigs()
        .map((config) => (config.id === c ? { ...config, port: proxy.port } : config)),
    })
    const id = idWithOrderPrefix(manager, [a, b, c])
    await manager.writeSession(id, { user: 'ada', loggedIn: true })
    // The copy a write hedged to `c` leaves there when its hand-off fails (the store cut off
    // just then), made here directly: nothing hints `c`, and only a full repair would remove it.
    const row = (await rowsOnStores(cluster, id)).get(b)!
    await cluster
      .store(c)
      .query(
        'INSERT INTO sessions (id, version, expires_at, deleted, data) VALUES (?, ?, ?, 0, ?)',
        [id, row.version, row.expires_at, row.data],
      )
    t.same(await storesWithLiveCopy(cluster, id), [a, b, c])

    // Logout while `c` is unreachable: tombstones on `a` and `b` only.
    proxy.setFault({ kind: 'reset' })
    await waitFor('c to be down', () => storeState(manager, c) === 'down')
    await manager.destroySession(id)
    t.same(await storesWithLiveCopy(cluster, id), [c])
    proxy.setFault({ kind: 'none' })
    await waitFor('c to be caught up', () => storeState(manager, c) === 'up')
    t.same(await storesWithLiveCopy(cluster, id), [], 'c no longer holds a live copy')

    // An app server that reaches `c` alone (its first two stores unreachable) reads it as gone.
    const cut = await proxiesFor(t, cluster, [a, b])
    const reader = await startManager(t, cluster, {
      ...fast,
      stores: cluster
        .storeConfigs()
        .map((config) =>
          cut.has(config.id) ? { ...config, port: cut.get(config.id)!.port } : config,
        ),
    })
    for (const cutOff of cut.values()) cutOff.setFault({ kind: 'reset' })
    await waitFor('the reader to see a and b down', () =>
      [a, b].every((store) => storeState(reader, store) === 'down'),
    )
    t.equal(await reader.readSession(id), null, 'the logged-out session does not come back')
  },
)
