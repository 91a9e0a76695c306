import t from 'tap'
import type { Test } from 'tap'
import type { SessionManager } from '../lib/index.js'
import { startTestCluster } from './helpers/cluster.js'
import { proxiesFor, throughProxies } from './helpers/gray.js'
import { idWithOrderPrefix, rowsOnStores, startManager } from './helpers/manager.js'
import { configsOf } from './helpers/store-lists.js'
import { sleep, waitFor } from './helpers/wait.js'

// During a change of the store list (docs/operations.md: app servers on the new list, with the
// old one as `previousStores`, beside app servers not yet redeployed), a sweep by an app server
// still on the old list must not delete rows that a hint for a store the new list added holds
// back (docs/guarantees.md, Expiry: "a sweep deletes no row of a session that its store keeps a
// hint for"): it learns of that store from the other app servers' published configurations.
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
