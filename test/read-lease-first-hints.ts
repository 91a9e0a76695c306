import t from 'tap'
import type { Test } from 'tap'
import type { SessionManager } from '../lib/index.js'
import { startTestCluster } from './helpers/cluster.js'
import { proxiesFor, throughProxies } from './helpers/gray.js'
import { createManager, idWithOrderPrefix, startManager } from './helpers/manager.js'
import { sleep } from './helpers/wait.js'

// An app server started after another wrote past a store and stopped, while the hints that one
// left for the store remain (its announcement ran out a minute after it stopped). The new app
// server's reads wait for its first health round, but only for one query timeout: a store merely
// slow for it (d, not one of the session's stores) made that round (probe, then the hint query)
// outlast it while the first lease round already held, and reads asked the store that missed
// the writes (a) alone. The lease is not used until a round has heard every store's hints.
const cluster = await startTestCluster(t, { stores: 4 })
const [a, b, c, d] = [
  cluster.stores[0]!,
  cluster.stores[1]!,
  cluster.stores[2]!,
  cluster.stores[3]!,
]

async function clean(): Promise<void> {
  await Promise.all(
    cluster.stores.flatMap((store) =>
      ['sessions_stale', 'sessions_peers', 'sessions_hints'].map((table) =>
        store.query(`DELETE FROM ${table}`).catch(() => {}),
      ),
    ),
  )
}

/**
 * v1 on a and b by a writer that then loses a (blackhole) and does `missA` (a write or a
 * logout past a), then stops; its announcement has run out. Then a new app server, for which
 * d is slow, reads the session for 4 s: every answer.
 */
async function readByNewAppServer(
  t: Test,
  missA: (writer: SessionManager, id: string) => Promise<void>,
): Promise<unknown[]> {
  await clean()
  const proxies = await proxiesFor(t, cluster, [a.id, d.id])
  // Each manager reaches one store through its proxy: the writer a, the reader d.
  const via = (id: string) =>
    throughProxies(cluster.storeConfigs(), new Map([[id, proxies.get(id)!]]))
  const writer = await startManager(t, cluster, { copies: 2, stores: via(a.id) })
  const id = idWithOrderPrefix(writer, [a.id, b.id, c.id])
  await writer.writeSession(id, { v: 1 })
  proxies.get(a.id)!.setFault({ kind: 'blackhole' })
  await missA(writer, id)
  await writer.close()
  const hints = await b.query('SELECT id FROM sessions_hints WHERE target_store = ?', [a.id])
  t.equal(hints.length, 1, 'b keeps the hint that a missed it')
  // The writer's announcement runs out a minute after its last renewal (and is swept): as now.
  await Promise.all(cluster.stores.map((store) => store.query('DELETE FROM sessions_stale')))

  // d answers the new app server, only slowly (well within the query timeout).
  proxies.get(d.id)!.setFault({ kind: 'latency', toStoreMillis: 120, toClientMillis: 120 })
  const reader = createManager(t, cluster, {
    copies: 2,
    stores: via(d.id),
    readLeaseMillis: 10_000,
    queryTimeoutMillis: 1000,
    connectTimeoutMillis: 5000,
  })
  const seen: unknown[] = []
  const started = Date.now()
  while (Date.now() - started < 4000) {
    seen.push(await reader.readSession(id))
    await sleep(20)
  }
  proxies.get(d.id)!.heal()
  return seen
}

t.test('a new app server does not read alone a store that hints say missed a write', async (t) => {
  const seen = await readByNewAppServer(t, async (writer, id) => {
    const v2 = await writer.writeSession(id, { v: 2 })
    t.same(v2.storeIds, [b.id, c.id], 'v2 acknowledged on b and c')
  })
  const stale = seen.filter((data) => JSON.stringify(data) !== JSON.stringify({ v: 2 }))
  t.comment(`${seen.length} reads, ${stale.length} not v2: ${JSON.stringify(stale.slice(0, 2))}`)
  t.equal(stale.length, 0, 'every read returns the acknowledged v2')
})

t.test('a new app server does not bring back a logout a store missed', async (t) => {
  const seen = await readByNewAppServer(t, (writer, id) => writer.destroySession(id))
  const live = seen.filter((data) => data !== null)
  t.comment(`${seen.length} reads, ${live.length} live: ${JSON.stringify(live.slice(0, 2))}`)
  t.equal(live.length, 0, 'every read finds no session')
})
