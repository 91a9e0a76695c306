import t from 'tap'
import type { Test } from 'tap'
import type { FaultProxy } from '../lib/local-cluster/index.js'
import type { SessionManager } from '../lib/index.js'
import { startTestCluster } from './helpers/cluster.js'
import type { TestCluster } from './helpers/cluster.js'
import { grayManagers, proxiesFor, throughProxies } from './helpers/gray.js'
import { idWithOrderPrefix, rowsOnStores, startManager, storeState } from './helpers/manager.js'
import { logoutMissedPastHintWindow } from './helpers/missed-logout.js'
import { sleep, waitFor } from './helpers/wait.js'

// Expiry under a gray fault: a newer copy that ends the session sooner (a short per-write TTL,
// a shortened session timeout) must supersede the older copy on a store that one app server
// could not reach, even once the newer copy has expired (and been swept): no app server may
// then serve the older copy, alone or by quorum.
const cluster: TestCluster = await startTestCluster(t, { stores: 3 })
const crashTest = cluster.canCrash ? t.test.bind(t) : t.skip.bind(t)
const [a, b, c] = [cluster.stores[0]!, cluster.stores[1]!, cluster.stores[2]!]

// Swept as soon as they expire (no grace): what holds a row back here is a hint or a marker.
const quick = {
  copies: 2,
  queryTimeoutMillis: 300,
  healthCheckIntervalMillis: 100,
  sweepGraceSeconds: 0,
}

/**
 * An app server that reaches `a` through a fault proxy, and no other (the healthy one of
 * grayManagers is closed: reaching `a`, it would replay the hints before the copy expired).
 */
async function faultyAlone(
  t: Test,
  settings: typeof quick & { readLeaseMillis?: number } = quick,
): Promise<{ faulty: SessionManager; proxy: FaultProxy }> {
  const { faulty, healthy, proxies } = await grayManagers(t, cluster, [a.id], settings)
  await healthy.close()
  return { faulty, proxy: proxies.get(a.id)! }
}

/** Waits until every copy of `id` at `version` has expired. */
async function untilExpired(id: string, version: number): Promise<void> {
  const rows = [...(await rowsOnStores(cluster, id)).values()]
  const copies = rows.filter((row) => Number(row?.version) === version)
  const last = Math.max(...copies.map((row) => Number(row?.expires_at)))
  await sleep(Math.max(0, last - Date.now()) + 50)
}

/** Waits until `manager` has `a` back in service, with no hint for it left anywhere. */
async function caughtUp(manager: SessionManager): Promise<void> {
  await waitFor('a to be caught up', async () => {
    const standing = manager.stats().stores.find((store) => store.id === a.id)!
    if (standing.state !== 'up' || standing.behind) return false
    const hints = await Promise.all(
      [b, c].map((store) =>
        store.query('SELECT id FROM sessions_hints WHERE target_store = ?', [a.id]),
      ),
    )
    return hints.flat().length === 0
  })
}

/** The versions of the live (not tombstone) copies of `id`, by store id; no row: absent. */
async function liveVersions(id: string): Promise<Record<string, number>> {
  const versions: Record<string, number> = {}
  for (const [storeId, row] of await rowsOnStores(cluster, id)) {
    if (row !== null && row.deleted === 0) versions[storeId] = Number(row.version)
  }
  return versions
}

crashTest('an expired newer copy is replayed over an older live one', async (t) => {
  const { faulty, proxy } = await faultyAlone(t)
  const id = idWithOrderPrefix(faulty, [a.id, b.id, c.id])
  const v1 = await faulty.writeSession(id, { v: 1 })
  t.same(v1.storeIds, [a.id, b.id])
  proxy.setFault({ kind: 'blackhole' })
  const v2 = await faulty.writeSession(id, { v: 2 }, { ttlSeconds: 1 })
  t.same(v2.storeIds, [b.id, c.id], 'v2 landed past the partition, a hinted')
  await untilExpired(id, v2.version)
  proxy.heal()
  await caughtUp(faulty)
  const versions = await liveVersions(id)
  t.equal(versions[a.id], v2.version, 'the replay put the expired v2 over a’s v1')
  const alone = await startManager(t, cluster, { ...quick, readQuorum: 1 })
  t.equal(await alone.readSession(id), null, 'a read of a alone finds no session')
  const onLease = await startManager(t, cluster, quick)
  t.equal(await onLease.readSession(id), null, 'nor does a read on the lease or by quorum')
})

crashTest('a sweep leaves an expired copy while a store that missed it is hinted', async (t) => {
  const { faulty, proxy } = await faultyAlone(t)
  const id = idWithOrderPrefix(faulty, [a.id, b.id, c.id])
  await faulty.writeSession(id, { v: 1 })
  proxy.setFault({ kind: 'blackhole' })
  const v2 = await faulty.writeSession(id, { v: 2 }, { ttlSeconds: 1 })
  t.same(v2.storeIds, [b.id, c.id])
  await untilExpired(id, v2.version)
  // a is out of reach: only b and c are swept, and they keep v2 for a's replay.
  await faulty.sweep()
  const kept = await rowsOnStores(cluster, id)
  t.equal(Number(kept.get(b.id)?.version), v2.version, 'b keeps the expired v2')
  t.equal(Number(kept.get(c.id)?.version), v2.version, 'c keeps the expired v2')
  proxy.heal()
  await caughtUp(faulty)
  const reader = await startManager(t, cluster, quick)
  t.equal(await reader.readSession(id), null, 'no read brings v1 back')
  await sleep(200) // a read repair, if any, has run
  for (const [storeId, version] of Object.entries(await liveVersions(id))) {
    t.equal(version, v2.version, `${storeId} holds no copy older than v2`)
  }
  await faulty.sweep()
  t.same(await liveVersions(id), {}, 'once a caught up, the sweep removes every copy')
})

crashTest('a session timeout shortened past a partition holds for every app server', async (t) => {
  const { faulty, healthy, proxies } = await grayManagers(t, cluster, [a.id], quick)
  const id = idWithOrderPrefix(faulty, [a.id, b.id, c.id])
  await faulty.writeSession(id, { v: 1 })
  proxies.get(a.id)!.setFault({ kind: 'blackhole' })
  const started = Date.now()
  t.equal(await faulty.setSessionTimeout(id, 2), true)
  t.equal(await healthy.getSessionTimeout(id), 2, 'the other app server sees the new timeout')
  await sleep(Math.max(0, started + 2050 - Date.now()))
  t.equal(await healthy.readSession(id), null, 'expired for the other app server')
  t.equal(await faulty.readSession(id), null, 'and for the writer')
  const alone = await startManager(t, cluster, { ...quick, readQuorum: 1 })
  t.equal(await alone.readSession(id), null, 'a read of a alone finds no session either')
  t.equal(await healthy.getSessionTimeout(id), null)
  proxies.get(a.id)!.heal()
})

crashTest('a repair marker holds back the sweep of expired copies and of tombstones', async (t) => {
  const manager = await startManager(t, cluster, { ...quick, tombstoneTtlSeconds: 1 })
  const expiring = idWithOrderPrefix(manager, [b.id, c.id])
  const destroyed = idWithOrderPrefix(manager, [b.id, c.id])
  await manager.writeSession(expiring, { v: 1 }, { ttlSeconds: 1 })
  await manager.writeSession(destroyed, { v: 1 }, { ttlSeconds: 1 })
  await manager.destroySession(destroyed)
  // b keeps a marker for a, as when a missed writes past the hint window: until a repair has
  // put every session on a, b's expired copies are the newest ones it may need.
  const marker = 'DELETE FROM sessions_hints WHERE target_store = ? AND id = ?'
  t.teardown(() => b.query(marker, [a.id, '']))
  await b.query(
    "INSERT INTO sessions_hints (target_store, id, created_at, version) VALUES (?, '', 0, 1)",
    [a.id],
  )
  await untilExpired(destroyed, Number((await rowsOnStores(cluster, destroyed)).get(b.id)?.version))
  await untilExpired(expiring, Number((await rowsOnStores(cluster, expiring)).get(b.id)?.version))
  await manager.sweep()
  const onB = async (id: string): Promise<boolean> =>
    (await rowsOnStores(cluster, id)).get(b.id) !== null
  t.equal(await onB(expiring), true, 'b keeps the expired copy')
  t.equal(await onB(destroyed), true, 'and the tombstone whose time is up')
  t.equal((await rowsOnStores(cluster, expiring)).get(c.id), null, 'c, without a marker, sweeps')
  await b.query(marker, [a.id, ''])
  await manager.sweep()
  t.equal(await onB(expiring), false, 'once the marker is cleared, the sweep takes it')
  t.equal(await onB(destroyed), false, 'and the tombstone')
})

crashTest(
  'a logout a store missed past the hint window stays, however long the tombstones wait',
  async (t) => {
    const { writer, id } = await logoutMissedPastHintWindow(t, cluster, [a, b], {
      sweepGraceSeconds: 0,
    })
    await writer.sweep()
    const rows = [...(await rowsOnStores(cluster, id)).values()]
    t.ok(
      rows.some((row) => row?.deleted === 1),
      'a tombstone stays while a, which missed the logout, is not repaired',
    )
    await a.start()
    await waitFor('a to be up (behind: the marker)', () =>
      writer.stats().stores.some((store) => store.id === a.id && store.state === 'up'),
    )
    t.equal(await writer.readSession(id), null, 'the logged-out session reads as gone')
    t.ok((await writer.repair()).done, 'the repair finished')
    t.equal(await writer.readSession(id), null, 'and after the repair')
    t.same(await liveVersions(id), {}, 'no live copy anywhere')
  },
)

/**
 * Writes v3 with a 1 s TTL on a and b, lets it expire and sweeps it: a copy of an older version
 * left anywhere (c, past the first two) would then be the session again.
 */
async function expireAndSweep(t: Test, manager: SessionManager, id: string): Promise<void> {
  const v3 = await manager.writeSession(id, { v: 3 }, { ttlSeconds: 1 })
  t.same(v3.storeIds, [a.id, b.id], 'v3 on the first two stores')
  await untilExpired(id, v3.version)
  await manager.sweep()
  const reader = await startManager(t, cluster, quick)
  t.equal(await reader.readSession(id), null, 'no read brings an older copy back')
  t.equal(await manager.readSession(id), null, 'not for the writer either')
}

crashTest('a copy handed off by hint replay leaves the store that held it for a', async (t) => {
  const { faulty, proxy } = await faultyAlone(t)
  const id = idWithOrderPrefix(faulty, [a.id, b.id, c.id])
  await faulty.writeSession(id, { v: 1 })
  proxy.setFault({ kind: 'blackhole' })
  const v2 = await faulty.writeSession(id, { v: 2 })
  t.same(v2.storeIds, [b.id, c.id], 'v2 failed over to c, a hinted')
  proxy.heal()
  await caughtUp(faulty)
  t.same(
    await liveVersions(id),
    { [a.id]: v2.version, [b.id]: v2.version },
    'once a holds v2, c no longer does',
  )
  await expireAndSweep(t, faulty, id)
})

crashTest('a copy a hedged write left past a slow store that took it goes', async (t) => {
  // A lease of 2 s: the write waits up to 400 ms for a store it hedged around.
  const { faulty, proxy } = await faultyAlone(t, { ...quick, readLeaseMillis: 2000 })
  const id = idWithOrderPrefix(faulty, [a.id, b.id, c.id])
  await faulty.writeSession(id, { v: 1 })
  // Slower than any hedge delay (100 ms at most), within a fifth of the read lease: the write
  // hedges to c and a takes it a moment later, so no hint is kept for it.
  proxy.setFault({ kind: 'latency', toStoreMillis: 150, toClientMillis: 0 })
  const v2 = await faulty.writeSession(id, { v: 2 })
  t.same([...v2.storeIds].sort(), [a.id, b.id, c.id], 'v2 on a, b and c')
  proxy.heal()
  await waitFor(
    'the copy left on c to go',
    async () => (await liveVersions(id))[c.id] === undefined,
  )
  t.same(await liveVersions(id), { [a.id]: v2.version, [b.id]: v2.version }, 'a and b keep v2')
  await expireAndSweep(t, faulty, id)
})

crashTest(
  'a copy a hedged write left goes once its store is back, if the hand-off failed',
  async (t) => {
    const settings = { ...quick, readLeaseMillis: 2000 }
    const { faulty, healthy, proxies } = await grayManagers(t, cluster, [a.id, c.id], settings)
    await healthy.close()
    const [toA, toC] = [proxies.get(a.id)!, proxies.get(c.id)!]
    const id = idWithOrderPrefix(faulty, [a.id, b.id, c.id])
    await faulty.writeSession(id, { v: 1 })
    toA.setFault({ kind: 'latency', toStoreMillis: 150, toClientMillis: 0 })
    const v2 = await faulty.writeSession(id, { v: 2 })
    // The hand-off's removal of the copy on c leaves as the write returns: c is cut off just then.
    toC.setFault({ kind: 'reset' })
    t.same([...v2.storeIds].sort(), [a.id, b.id, c.id], 'v2 on a, b and c')
    toA.heal()
    await waitFor(
      'c to be down',
      () => faulty.stats().stores.find((s) => s.id === c.id)!.state === 'down',
    )
    await sleep(300) // the removal has failed
    t.equal((await liveVersions(id))[c.id], v2.version, 'the hand-off could not remove it')
    toC.heal()
    await waitFor(
      'the copy left on c to go',
      async () => (await liveVersions(id))[c.id] === undefined,
    )
    t.same(await liveVersions(id), { [a.id]: v2.version, [b.id]: v2.version }, 'a and b keep v2')
    await expireAndSweep(t, faulty, id)
  },
)

crashTest('a copy a hedge left on a store slower than the one it stood in for goes', async (t) => {
  // The reverse of the test above: a slower than the hedge delay, c slower still (queries and
  // new connections alike, well within the timeouts). The write hedges from a to c, a answers
  // first, and c takes the write after the write returned: no hand-off was decided for it.
  const settings = { ...quick, queryTimeoutMillis: 5000, readLeaseMillis: 2000 }
  const { faulty, healthy, proxies } = await grayManagers(t, cluster, [a.id, c.id], settings)
  await healthy.close()
  const [toA, toC] = [proxies.get(a.id)!, proxies.get(c.id)!]
  const id = idWithOrderPrefix(faulty, [a.id, b.id, c.id])
  await faulty.writeSession(id, { v: 1 })
  toA.setFault({ kind: 'latency', toStoreMillis: 200, toClientMillis: 0 })
  toC.setFault({ kind: 'latency', toStoreMillis: 600, toClientMillis: 0 })
  const v2 = await faulty.writeSession(id, { v: 2 })
  t.same([...v2.storeIds].sort(), [a.id, b.id], 'v2 acknowledged on a and b')
  await sleep(2500) // c took the write long since (600 ms a trip, a new connection first)
  toA.heal()
  toC.heal()
  t.same(await liveVersions(id), { [a.id]: v2.version, [b.id]: v2.version }, 'a and b keep v2')
  // Left on c, v2 would be the session again once a shorter-lived v3 expired on a and b.
  await expireAndSweep(t, faulty, id)
})

crashTest('a session timeout holds on a copy that a write failed over to', async (t) => {
  const { faulty, proxy } = await faultyAlone(t)
  const id = idWithOrderPrefix(faulty, [a.id, b.id, c.id])
  await faulty.writeSession(id, { v: 1 })
  t.equal(await faulty.setSessionTimeout(id, 2), true)
  proxy.setFault({ kind: 'blackhole' })
  // c has no row of the session: the write's copy there cannot know the session's timeout.
  const started = Date.now()
  const v3 = await faulty.writeSession(id, { v: 3 })
  t.same(v3.storeIds, [b.id, c.id], 'v3 failed over to c')
  await sleep(Math.max(0, started + 2100 - Date.now()))
  const reader = await startManager(t, cluster, quick)
  t.equal(await reader.readSession(id), null, 'expired for another app server')
  t.equal(await faulty.readSession(id), null, 'and for the writer')
  proxy.heal()
  await caughtUp(faulty)
  t.equal(
    await startManager(t, cluster, quick).then((m) => m.readSession(id)),
    null,
    'after replay',
  )
  for (const [storeId, row] of await rowsOnStores(cluster, id)) {
    if (row !== null && row.deleted === 0) {
      t.equal(Number(row.ttl_seconds), 2, `${storeId} keeps the timeout`)
    }
  }
})

for (const [ending, expiry] of [
  ['a 1 s TTL', () => ({ ttlSeconds: 1 })],
  // An expiry further back than the grace (300 s): the grace counts from the write, not from it.
  ['an expiresAt ten minutes ago', () => ({ expiresAt: Date.now() - 600_000 })],
] as const) {
  crashTest(
    `a sweep right after a write (${ending}) expired leaves it for the hint still on its way`,
    async (t) => {
      // The writer cannot reach a, and c's answers reach it 2.5 s late: v2 lands on b and c, and
      // its hint for a is stored only once c's answer is back, past v2's expiry.
      const settings = {
        copies: 2,
        queryTimeoutMillis: 20_000,
        failThreshold: 1,
        healthCheckIntervalMillis: 100,
      }
      const grays = await grayManagers(t, cluster, [a.id, c.id], settings)
      const { faulty: writer, healthy: sweeper, proxies } = grays
      const id = idWithOrderPrefix(writer, [a.id, b.id, c.id])
      await writer.writeSession(id, { v: 1 })
      proxies.get(a.id)!.setFault({ kind: 'reset' })
      await waitFor('a down for the writer', () => storeState(writer, a.id) === 'down')
      proxies.get(c.id)!.setFault({ kind: 'latency', toStoreMillis: 0, toClientMillis: 2500 })
      const writing = writer.writeSession(id, { v: 2 }, expiry())
      let v2 = 0
      await waitFor('v2 on b and c', async () => {
        const rows = await rowsOnStores(cluster, id)
        v2 = Number(rows.get(c.id)?.version ?? 0)
        return v2 > 0 && Number(rows.get(b.id)?.version) === v2
      })
      await untilExpired(id, v2)
      // Another app server sweeps while the hint is on its way: v2's copies must stay.
      await sweeper.sweep()
      proxies.get(c.id)!.heal() // c's answer still comes 2.5 s late; what follows does not
      t.equal((await writing).version, v2, 'v2 acknowledged')
      const v1Back = 'v1, older than the write that ended it, is not back'
      t.equal(await sweeper.readSession(id), null, v1Back)
      proxies.get(a.id)!.heal()
      await caughtUp(writer)
      const alone = await startManager(t, cluster, { ...settings, readQuorum: 1 })
      t.equal(
        await alone.readSession(id),
        null,
        'once a is caught up, a read of a alone finds none',
      )
      t.equal(await writer.readSession(id), null, 'nor does the writer')
    },
  )
}

// A setSessionTimeout whose compare-and-set was decided on a while its copy to b was slow, and
// a plain write from another app server that landed on b first: the plain write keeps each
// store's timeout, so its copy on b lacks the new one. The setSessionTimeout is acknowledged
// with a copy on a alone (degraded), and b, which missed it, is hinted: caught up, it gets the
// timeout too, and an app server that can reach b alone sees it (only a and b, copies 2). An
// updateSession overtaken the same way sets no timeout: the plain write replaced its data,
// and nothing is missing from b.
for (const call of ['setSessionTimeout', 'updateSession'] as const)
  t.test(`${call} overtaken on one store by a plain write: what that store lacks`, async (t) => {
    const stores = cluster.storeConfigs().slice(0, 2)
    const table = `overtaken_${call}`
    const options = { copies: 2, table, healthCheckIntervalMillis: 100 }
    const slowB = await proxiesFor(t, cluster, [b.id])
    const noA = await proxiesFor(t, cluster, [a.id])
    const setter = await startManager(t, cluster, {
      ...options,
      stores: throughProxies(stores, slowB),
    })
    const writer = await startManager(t, cluster, { ...options, stores })
    const reader = await startManager(t, cluster, {
      ...options,
      stores: throughProxies(stores, noA),
    })
    const id = idWithOrderPrefix(setter, [a.id, b.id])
    await writer.writeSession(id, { v: 1 })
    const versionOnA = async () =>
      (await a.query<{ version: number }>(`SELECT version FROM ${table} WHERE id = ?`, [id]))[0]
        ?.version
    const v1 = await versionOnA()
    const degraded: string[] = []
    setter.on('degraded-write', (event) => degraded.push(event.sessionId))
    slowB.get(b.id)!.setFault({ kind: 'latency', toStoreMillis: 400, toClientMillis: 0 })
    const done =
      call === 'setSessionTimeout'
        ? setter.setSessionTimeout(id, 60)
        : setter.updateSession(id, (data) => ({ ...data, note: 'set' }))
    await waitFor('a to decide the compare-and-set', async () => (await versionOnA()) !== v1, 5000)
    await writer.writeSession(id, { v: 2 })
    t.ok(await done, `${call} acknowledged`)
    slowB.get(b.id)!.heal()
    if (call === 'updateSession') {
      t.same(degraded, [], 'not degraded')
      noA.get(a.id)!.setFault({ kind: 'reset' })
      t.same(await reader.readSession(id), { v: 2 }, 'b holds the later write')
      return
    }
    t.same(degraded, [id], 'degraded: one copy')
    noA.get(a.id)!.setFault({ kind: 'reset' })
    await waitFor(
      'the app server that reaches b alone to see the timeout',
      async () => (await reader.getSessionTimeout(id)) === 60,
    )
  })
