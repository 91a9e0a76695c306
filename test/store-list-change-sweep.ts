import t from 'tap'
import type { Test } from 'tap'
import type { SessionData, SessionManager, SessionManagerOptions } from '../lib/index.js'
import type { FaultProxy } from '../lib/local-cluster/fault-proxy.js'
import { startTestCluster } from './helpers/cluster.js'
import { proxiesFor, throughProxies } from './helpers/gray.js'
import {
  createManager,
  idWithOrderPrefix,
  rowsOnStores,
  startManager,
  storesWithLiveCopy,
} from './helpers/manager.js'
import { configsOf, sessionOnRetiringStore } from './helpers/store-lists.js'
import { sleep, waitFor } from './helpers/wait.js'

// During a change of the store list (docs/operations.md: app servers on the new list, with the
// old one as `previousStores`, beside app servers not yet redeployed), a sweep by an app server
// still on the old list must not delete rows that a hint for a store the new list added holds
// back (docs/guarantees.md, Expiry: "a sweep deletes no row of a session that its store keeps a
// hint for"): it learns of that store from the other app servers' published configurations.
// And a destroy or write that could not clear the old placement hints the stores it missed, so
// that no sweep of the new placement's rows lets an old copy be the session again.
const cluster = await startTestCluster(t, {
  storeIds: ['store-a', 'store-b', 'store-c', 'store-d'],
})
const crashTest = cluster.canCrash ? t.test.bind(t) : t.skip.bind(t)
const configs = configsOf(cluster)
const fewer = ['store-a', 'store-b', 'store-c']
const more = [...fewer, 'store-d']

const quick = {
  copies: 2,
  queryTimeoutMillis: 400,
  healthCheckIntervalMillis: 100,
  sweepGraceSeconds: 0,
  sweepIntervalSeconds: 0,
  tombstoneTtlSeconds: 1,
}

async function managers(t: Test): Promise<{
  fresh: SessionManager
  old: SessionManager
  heal: () => void
  cut: () => void
}> {
  const proxies = await proxiesFor(t, cluster, ['store-d'])
  // The app server already on the new list reaches store-d through a proxy.
  const fresh = await startManager(t, cluster, {
    ...quick,
    stores: throughProxies(configs(more), proxies),
    previousStores: configs(fewer),
  })
  // An app server not yet redeployed: the old list, no store-d.
  const old = await startManager(t, cluster, { ...quick, stores: configs(fewer) })
  const proxy = proxies.get('store-d')!
  return {
    fresh,
    old,
    cut: () => proxy.setFault({ kind: 'blackhole' }),
    heal: () => proxy.heal(),
  }
}

async function caughtUp(manager: SessionManager): Promise<void> {
  await waitFor('store-d to be caught up', async () => {
    const standing = manager.stats().stores.find((store) => store.id === 'store-d')!
    if (standing.state !== 'up' || standing.behind) return false
    const hints = await Promise.all(
      fewer.map((id) =>
        cluster
          .store(id)
          .query('SELECT id FROM sessions_hints WHERE target_store = ?', ['store-d']),
      ),
    )
    return hints.flat().length === 0
  })
}

crashTest('old-list sweep vs a hint for the added store: a short-lived newer copy', async (t) => {
  const { fresh, old, cut, heal } = await managers(t)
  const id = idWithOrderPrefix(fresh, ['store-d'])
  const v1 = await fresh.writeSession(id, { v: 1 }) // long-lived, on store-d and one more
  t.ok(v1.storeIds.includes('store-d'), `v1 on ${v1.storeIds.join(',')}`)
  cut()
  const v2 = await fresh.writeSession(id, { v: 2 }, { ttlSeconds: 1 })
  t.notOk(v2.storeIds.includes('store-d'), `v2 past store-d: ${v2.storeIds.join(',')}`)
  await sleep(1200)
  t.equal(await fresh.readSession(id), null, 'v2 expired: no session')
  // The app server on the old list sweeps its stores (a, b, c): the hints for store-d are there.
  await old.sweep()
  const rows = await rowsOnStores(cluster, id)
  for (const storeId of v2.storeIds) {
    t.equal(
      Number(rows.get(storeId)?.version),
      v2.version,
      `${storeId} keeps the expired v2 while store-d is hinted`,
    )
  }
  heal()
  await caughtUp(fresh)
  t.same(await fresh.readSession(id), null, 'the writer reads no session (not v1)')
  const later = await startManager(t, cluster, {
    ...quick,
    stores: configs(more),
    previousStores: configs(fewer),
  })
  t.equal(await later.readSession(id), null, 'a new app server reads no session (not v1)')
  await sleep(300)
  const after = await rowsOnStores(cluster, id)
  const live = [...after].filter(
    ([, row]) => row !== null && row.deleted === 0 && Number(row.expires_at) > Date.now(),
  )
  t.same(
    live.map(([s]) => s),
    [],
    'no store holds a live copy',
  )
})

/**
 * During a 4 → 3 change: a session on store-d's old pair, written before the change with the
 * old list, and two app servers on the new list (the old one as `previousStores`): `cutOff`
 * reaches the old pair through fault proxies, `healthy` directly.
 */
async function oldPairSetup(
  t: Test,
  settings: Partial<SessionManagerOptions>,
  data: SessionData,
): Promise<{
  id: string
  cutOff: SessionManager
  healthy: SessionManager
  proxies: Map<string, FaultProxy>
  onNewList: () => Promise<SessionManager>
}> {
  const { id, oldPair } = sessionOnRetiringStore(more, fewer, 'store-d')
  const writer = await startManager(t, cluster, { ...settings, stores: configs(more) })
  await writer.writeSession(id, data)
  await writer.close()
  const proxies = await proxiesFor(t, cluster, oldPair)
  const cutOff = await startManager(t, cluster, {
    ...settings,
    stores: throughProxies(configs(fewer), proxies),
    previousStores: throughProxies(configs(more), proxies),
  })
  const onNewList = () =>
    startManager(t, cluster, { ...settings, stores: configs(fewer), previousStores: configs(more) })
  return { id, cutOff, healthy: await onNewList(), proxies, onNewList }
}

t.test(
  'a destroy that could not clear the old placement: hinted, so no sweep brings the session back',
  async (t) => {
    // The destroying app server cannot reach the session's old pair (blackholed for it alone);
    // the other, which can, touches the session after the logout (a request that started
    // before it), which would extend the old copies past the new placement's tombstones. Once
    // those are swept, a read falls back to the old placement.
    // Sessions and tombstones live 4 s: the touch, 2 s after the destroy, extends the old copies
    // to 2 s past the tombstones. Tombstones go to the first two stores alone (maxReadStores),
    // not to the old pair's store that the new list keeps (whose hint would have its replay
    // bury the old copies anyway).
    const settings = { ...quick, ttlSeconds: 4, maxReadStores: 2, healthCheckIntervalMillis: 250 }
    const { id, cutOff, healthy, proxies, onNewList } = await oldPairSetup(t, settings, {
      user: 'u1',
    })
    for (const proxy of proxies.values()) proxy.setFault({ kind: 'blackhole' })
    await cutOff.destroySession(id)
    t.equal(await healthy.readSession(id), null, 'destroyed, as the other app server reads it')
    await sleep(2000)
    t.equal(await healthy.touch(id), false, 'the touch finds no live session')
    await sleep(2600) // past the tombstones' time
    for (const proxy of proxies.values()) proxy.heal()
    await healthy.sweep()
    t.same(await storesWithLiveCopy(cluster, id), [], 'no store holds a live copy')
    t.equal(await healthy.readSession(id), null, 'the destroyed session does not come back')
    const later = await onNewList()
    t.equal(await later.readSession(id), null, 'nor for an app server started afterwards')
  },
)

t.test(
  'a short-lived write that could not clear the old placement: its older copy stays superseded',
  async (t) => {
    // As above, with a write that ends the session sooner instead of a destroy, and only
    // store-d cut off: once the new placement's expired copies are swept, store-d's older,
    // longer-lived copy (the default lifetime) must not be the session again.
    const settings = { ...quick, maxReadStores: 2, healthCheckIntervalMillis: 250 }
    const { id, cutOff, healthy, proxies } = await oldPairSetup(t, settings, { v: 1 })
    // store-d alone: its pair-mate answers the write's check for a tombstone, and is cleared.
    proxies.get('store-d')!.setFault({ kind: 'blackhole' })
    await cutOff.writeSession(id, { v: 2 }, { ttlSeconds: 1 })
    await sleep(1500)
    for (const proxy of proxies.values()) proxy.heal()
    await healthy.sweep()
    t.equal(await healthy.readSession(id), null, 'v2 ended the session; v1 does not come back')
    t.same(await storesWithLiveCopy(cluster, id), [], 'no store holds a live copy')
  },
)

/**
 * The options of an app server on the new list (`settings` beside), which reaches store-d
 * through a fault proxy (`proxy`), closed at the end of the test.
 */
async function newListOptions<S extends object>(t: Test, settings: S) {
  const proxies = await proxiesFor(t, cluster, ['store-d'])
  const newList = {
    ...settings,
    stores: throughProxies(configs(more), proxies),
    previousStores: configs(fewer),
  }
  return { newList, proxy: proxies.get('store-d')! }
}

/** Hint rows kept for `target` over every store, in `table` (each test has one of its own). */
async function hintsFor(target: string, table = 'retired_hints'): Promise<number> {
  let count = 0
  for (const store of cluster.stores) {
    const rows = await store.query<{ n: number }>(
      `SELECT COUNT(*) AS n FROM \`${table}_hints\` WHERE target_store = ?`,
      [target],
    )
    count += Number(rows[0]?.n ?? 0)
  }
  return count
}

t.test(
  'hints for a store the change was finished without go once no app server has it',
  async (t) => {
    const table = 'retired_hints'
    // Sessions store-d held; store-d retiring, out of reach of the app server that destroys them.
    const before = await startManager(t, cluster, { ...quick, table, stores: configs(more) })
    const ids = Array.from({ length: 5 }, () => sessionOnRetiringStore(more, fewer, 'store-d').id)
    for (const id of ids) await before.writeSession(id, { v: 1 })
    await before.close()
    const proxies = await proxiesFor(t, cluster, ['store-d'])
    const changing = await startManager(t, cluster, {
      ...quick,
      table,
      stores: configs(fewer),
      previousStores: throughProxies(configs(more), proxies),
    })
    proxies.get('store-d')!.setFault({ kind: 'blackhole' })
    for (const id of ids) await changing.destroySession(id)
    const hinted = await hintsFor('store-d')
    t.ok(hinted > 0, 'store-d was hinted')
    await changing.close()

    // store-d is lost for good: the change is finished without it (docs/operations.md).
    const hintWindowMillis = 1500
    const after = await startManager(t, cluster, {
      ...quick,
      table,
      stores: configs(fewer),
      hintWindowMillis,
    })
    await after.repair()
    await after.sweep()
    t.equal(await hintsFor('store-d'), hinted, 'kept while younger than the hint window')
    await sleep(hintWindowMillis + 100)
    // An app server that still has store-d keeps them (it may be one just added).
    // (It cannot reach store-d either: a replay there would delete them rightly.)
    const stillOld = createManager(t, cluster, {
      ...quick,
      table,
      stores: throughProxies(configs(more), proxies),
    })
    await stillOld.ready()
    await after.sweep()
    t.equal(await hintsFor('store-d'), hinted, 'kept while an app server has store-d')
    await stillOld.close()
    await after.sweep()
    t.equal(await hintsFor('store-d'), hinted, 'and until no app server has had it a while')
    await sleep(hintWindowMillis + 100)
    await after.sweep()
    t.equal(await hintsFor('store-d'), 0, 'then deleted')
  },
)

// The same hints while the change runs: the app servers on the new list are the only ones that
// list store-d, and when they restart, an app server still on the old list sees none of them
// for a moment. A sweep then must keep the hints that say store-d missed writes, or the
// new-list app server that comes back serves store-d's older copy (an acknowledged write lost).
for (const oldSweeps of [false, true])
  t.test(
    `a new-list app server's restart during a change keeps store-d's hints (old-list sweep in the gap: ${oldSweeps})`,
    async (t) => {
      const table = oldSweeps ? 'restart_gap' : 'restart_no_gap'
      const { newList, proxy } = await newListOptions(t, {
        ...quick,
        table,
        tombstoneTtlSeconds: 4,
      })
      const fresh = await startManager(t, cluster, newList)
      // The app server not yet redeployed, with a short hint window to keep the test quick.
      const hintWindowMillis = 1500
      const old = await startManager(t, cluster, {
        ...quick,
        table,
        tombstoneTtlSeconds: 4,
        stores: configs(fewer),
        hintWindowMillis,
      })
      const id = idWithOrderPrefix(fresh, ['store-d'])
      const v1 = await fresh.writeSession(id, { v: 1 })
      t.ok(v1.storeIds.includes('store-d'), `v1 on ${v1.storeIds.join(',')}`)
      proxy.setFault({ kind: 'blackhole' })
      const v2 = await fresh.writeSession(id, { v: 2 }, { ttlSeconds: 1 })
      t.notOk(v2.storeIds.includes('store-d'), `v2 past store-d: ${v2.storeIds.join(',')}`)
      t.ok((await hintsFor('store-d', table)) > 0, 'store-d is hinted')
      await sleep(hintWindowMillis + 100) // v2 has expired, and the hints are a window old

      // The new-list app server restarts; the old-list one sweeps meanwhile.
      await fresh.close()
      if (oldSweeps) await old.sweep()
      t.ok((await hintsFor('store-d', table)) > 0, 'the hints for store-d are kept')
      const rows = await rowsOnStores(cluster, id, table)
      for (const storeId of v2.storeIds) {
        const kept = Number(rows.get(storeId)?.version)
        t.equal(kept, v2.version, `${storeId} keeps the expired v2 while store-d is hinted`)
      }
      // It comes back, and store-d with it.
      proxy.heal()
      const again = await startManager(t, cluster, newList)
      await again.sweep()
      t.equal(await again.readSession(id), null, 'v2 expired: no session (not v1)')
    },
  )

// The same with the old-list app server's clock 31 s ahead, within what the sweep's grace
// allows (half of sweepGraceSeconds, docs/guarantees.md, Expiry): the new-list app server's
// published configuration lives 30 s on its own clock, and judged on the sweeper's alone it
// had expired, so store-d counted as never listed, and its hints held nothing back.
t.test(
  'an old-list app server whose clock runs ahead still spares what hints hold back',
  async (t) => {
    const table = 'skewed_sweeper'
    const skewed = { ...quick, table, sweepGraceSeconds: 62, hintWindowMillis: 500 }
    const { newList, proxy } = await newListOptions(t, skewed)
    const fresh = await startManager(t, cluster, newList)
    const old = await startManager(t, cluster, {
      ...skewed,
      stores: configs(fewer),
      clock: { now: () => Date.now() + 31_000 },
    })
    const id = idWithOrderPrefix(fresh, ['store-d'])
    const v1 = await fresh.writeSession(id, { v: 1 })
    t.ok(v1.storeIds.includes('store-d'), `v1 on ${v1.storeIds.join(',')}`)
    proxy.setFault({ kind: 'blackhole' })
    // Ended at once: stored as expired half the grace before the write, so a full grace ago on
    // the sweeper's clock, which sweeps it unless a hint holds it back.
    const v2 = await fresh.writeSession(id, { v: 2 }, { expiresAt: Date.now() - 60_000 })
    t.notOk(v2.storeIds.includes('store-d'), `v2 past store-d: ${v2.storeIds.join(',')}`)
    await sleep(700) // past the sweeper's hint window of watching
    await old.sweep()
    const rows = await rowsOnStores(cluster, id, table)
    for (const storeId of v2.storeIds) {
      t.equal(Number(rows.get(storeId)?.version), v2.version, `${storeId} keeps the expired v2`)
    }
    proxy.heal()
    await waitFor('store-d to be caught up', () =>
      fresh.stats().stores.every((store) => store.state === 'up' && !store.behind),
    )
    t.equal(await fresh.readSession(id), null, 'the writer reads no session (not v1)')
  },
)

// A sweep run alone (from cron) has watched the published configurations for no time: a
// store it never saw listed counts as retired once its newest hint or marker is a hint window
// old. Otherwise a retired store's repair marker, which holds back every expired row, would
// keep them all from such sweeps for good.
t.test('a sweep run alone is not held back by the repair marker of a retired store', async (t) => {
  const table = 'marker_of_retired'
  // The tables on every store, store-d included (the app server that made them is gone).
  await (await startManager(t, cluster, { ...quick, table, stores: configs(more) })).close()
  const writer = await startManager(t, cluster, { ...quick, table, stores: configs(fewer) })
  const ended = writer.generateId()
  await writer.writeSession(ended, { v: 1 }, { expiresAt: Date.now() - 60_000 })
  // Left by app servers that had store-d, retired since past the hint window.
  for (const store of cluster.stores) {
    await store.query(
      `INSERT INTO \`${table}_hints\` (target_store, id, created_at, version) VALUES (?, '', ?, 1)`,
      ['store-d', Date.now() - 86_400_000],
    )
  }
  const alone = await startManager(t, cluster, { ...quick, table, stores: configs(fewer) })
  await alone.sweep()
  const rows = await rowsOnStores(cluster, ended, table)
  t.same(
    [...rows].filter(([, row]) => row !== null).map(([storeId]) => storeId),
    [],
    'the ended session is swept',
  )
  // From the stores it swept (store-d, which it does not have, keeps the one it holds).
  t.equal(await hintsFor('store-d', table), 1, 'and the markers go')
})

// The same restart, with store-d missing writes past the new-list app server's hint window:
// its misses leave a repair marker, which holds back every expired row, instead of hints. The
// old-list sweep in the gap must keep them too, or store-d's older v1 is the session again once
// the repair the marker asks for has run.
t.test(
  "a new-list app server's restart during a change keeps rows store-d's repair marker holds back",
  async (t) => {
    const table = 'marker_gap'
    const { newList, proxy } = await newListOptions(t, { ...quick, table, hintWindowMillis: 500 })
    const fresh = await startManager(t, cluster, newList)
    // The app server not yet redeployed (default hint window: an hour).
    const old = await startManager(t, cluster, { ...quick, table, stores: configs(fewer) })
    const id = idWithOrderPrefix(fresh, ['store-d'])
    const v1 = await fresh.writeSession(id, { v: 1 })
    t.ok(v1.storeIds.includes('store-d'), `v1 on ${v1.storeIds.join(',')}`)
    proxy.setFault({ kind: 'blackhole' })
    // A first miss starts store-d's clock; past the hint window, the next miss leaves a marker.
    const repairNeeded: string[] = []
    fresh.on('repair-needed', (event) => repairNeeded.push(event.storeId))
    await fresh.writeSession(idWithOrderPrefix(fresh, ['store-d']), { other: 1 })
    await sleep(700)
    const v2 = await fresh.writeSession(id, { v: 2 }, { ttlSeconds: 1 })
    t.notOk(v2.storeIds.includes('store-d'), `v2 past store-d: ${v2.storeIds.join(',')}`)
    t.same(repairNeeded, ['store-d'], 'store-d is past the hint window: repair markers')
    const markers = await Promise.all(
      v2.storeIds.map((storeId) =>
        cluster
          .store(storeId)
          .query(`SELECT version FROM \`${table}_hints\` WHERE target_store = ? AND id = ''`, [
            'store-d',
          ]),
      ),
    )
    t.ok(
      markers.every((rows) => rows.length === 1),
      'a repair marker for store-d on the stores v2 took',
    )
    await sleep(1200) // v2 has expired

    // The new-list app server restarts; the old-list one sweeps in the gap.
    await fresh.close()
    await old.sweep()
    const rows = await rowsOnStores(cluster, id, table)
    for (const storeId of v2.storeIds) {
      t.equal(
        Number(rows.get(storeId)?.version),
        v2.version,
        `${storeId} keeps the expired v2 while store-d's repair marker stands`,
      )
    }
    // It comes back, and store-d with it; store-d is caught up by the repair the marker asks.
    proxy.heal()
    const again = createManager(t, cluster, newList)
    await again.ready()
    await again.repair()
    t.equal(await again.readSession(id), null, 'v2 expired: no session (not v1)')
  },
)
