import t from 'tap'
import { staleStatements } from '../lib/store/stale-statements.js'
import { startTestCluster } from './helpers/cluster.js'
import { proxiesFor } from './helpers/gray.js'
import { idWithOrderPrefix, startManager, storeState } from './helpers/manager.js'
import { sleep, waitFor } from './helpers/wait.js'

// An app server that misses a store announces it stale on the other stores, and keeps the
// announcement standing round after round (docs/guarantees.md, section 3): other app servers
// then read that store alone no longer. The stores that took it first may become unreachable
// for the announcer later; the announcement must then still stand somewhere.
const cluster = await startTestCluster(t, { stores: 5 })
const crashTest = cluster.canCrash ? t.test.bind(t) : t.skip.bind(t)
const [a, b, c, d, e] = cluster.stores.map((store) => store.id) as [
  string,
  string,
  string,
  string,
  string,
]

crashTest(
  'an announcement is kept on the stores that are up now, not only its first ones',
  async (t) => {
    const LEASE = 400
    const proxies = await proxiesFor(t, cluster, [a, b, c, d, e])
    const stores = cluster
      .storeConfigs()
      .map((config) => ({ ...config, port: proxies.get(config.id)!.port }))
    const common = { copies: 2, readLeaseMillis: LEASE, queryTimeoutMillis: 1000 }
    const writer = await startManager(t, cluster, {
      ...common,
      stores,
      healthCheckIntervalMillis: 100,
    })
    // Health rounds (which also learn of other managers' hints) far apart, as the guarantees
    // allow: the lease alone must keep this app server's lone reads fresh.
    const reader = await startManager(t, cluster, { ...common, healthCheckIntervalMillis: 30_000 })
    const announced = idWithOrderPrefix(writer, [a, b, c])
    const victim = idWithOrderPrefix(writer, [a, d, e])
    await writer.writeSession(announced, { v: 1 })
    await writer.writeSession(victim, { v: 1 })
    const announcementsOf = async (store: (typeof cluster.stores)[number]): Promise<string[]> =>
      (await store.query('SELECT target_store FROM sessions_stale')).map((row) =>
        String(row.target_store),
      )
    const cutOff = async (ids: string[]) => {
      for (const id of ids) proxies.get(id)!.setFault({ kind: 'reset' })
      await waitFor(`${ids.join(', ')} down for the writer`, () =>
        ids.every((id) => storeState(writer, id) === 'down'),
      )
    }
    const heal = async (ids: string[]) => {
      for (const id of ids) proxies.get(id)!.heal()
      await waitFor(`${ids.join(', ')} serving the writer again`, () =>
        ids.every((id) => storeState(writer, id) === 'up'),
      )
    }

    // a misses a write while d and e are down for the writer: announced on b and c.
    await cutOff([d, e])
    await cutOff([a])
    const first = await writer.writeSession(announced, { v: 2 })
    t.same(first.storeIds, [b, c], 'the first write landed past a')
    for (const store of cluster.stores) {
      const holds = store.id === b || store.id === c
      t.same(await announcementsOf(store), holds ? [a] : [], `${store.id}: ${holds ? 'a' : 'none'}`)
    }

    // d and e come back for the writer, b and c go; a stays cut off.
    await heal([d, e])
    await cutOff([b, c])
    const [storeD, storeE] = [cluster.store(d), cluster.store(e)]
    await waitFor('the announcement kept on d and e', async () =>
      (await Promise.all([storeD, storeE].map(announcementsOf))).every((ids) => ids.includes(a)),
    )
    // b's and c's rows run out a minute after their last renewal, which never comes: as now.
    for (const id of [b, c]) await cluster.store(id).query('DELETE FROM sessions_stale')
    await sleep(3 * LEASE)

    // A write of a session whose first stores are a, d, e misses a: the reader must see it.
    const second = await writer.writeSession(victim, { v: 2 })
    t.same(second.storeIds, [d, e], 'the second write landed past a')
    t.same(await reader.readSession(victim), { v: 2 }, 'the reader sees the acknowledged write')
  },
)

t.test('an announcement sent late never replaces a newer one, nor shortens one', async (t) => {
  // The statements as a store runs them, in the orders a network can deliver them.
  await startManager(t, cluster)
  const store = cluster.store(a)
  const { announceStale, withdrawStale } = staleStatements('sessions')
  const target = `late-${Date.now()}`
  const announce = (generation: number, expiresAtMillis: number) =>
    store.query(
      announceStale.text(),
      announceStale.params({ target, manager: 'm', generation, expiresAtMillis }),
    )
  const withdraw = (generation: number) =>
    store.query(withdrawStale.text(), withdrawStale.params({ target, manager: 'm', generation }))
  const row = async () =>
    (
      await store.query<{ generation: number; expires_at: number }>(
        'SELECT generation, expires_at FROM sessions_stale WHERE target_store = ?',
        [target],
      )
    ).map((found) => ({
      generation: Number(found.generation),
      expiresAt: Number(found.expires_at),
    }))
  const later = Date.now() + 60_000
  await announce(2, later)
  await announce(1, later + 30_000)
  t.same(await row(), [{ generation: 2, expiresAt: later }], 'an older generation sent late')
  await announce(2, later + 10_000)
  await announce(2, later + 5_000)
  t.same(await row(), [{ generation: 2, expiresAt: later + 10_000 }], 'a renewal sent late')
  await announce(3, later + 1_000)
  t.same(
    await row(),
    [{ generation: 3, expiresAt: later + 10_000 }],
    'a newer one keeps the expiry',
  )
  await withdraw(2)
  t.same((await row()).length, 1, 'withdrawing an older generation leaves the newer one')
  await withdraw(3)
  t.same(await row(), [], 'withdrawing its own generation removes it')
})
