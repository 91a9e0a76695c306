import t from 'tap'
import type { Test } from 'tap'
import type { SessionManager } from '../lib/index.js'
import type { ReadLease } from '../lib/failure/read-lease.js'
import { startTestCluster } from './helpers/cluster.js'
import { grayManagers } from './helpers/gray.js'
import { idWithOrderPrefix, startManager } from './helpers/manager.js'
import { sleep, waitFor } from './helpers/wait.js'

// The read lease (docs/guarantees.md, section 9): in the default setting a read asks one store
// while nobody announced it stale, and a write that missed a store announces it before it is
// acknowledged. These tests count the statements each store was sent.
const cluster = await startTestCluster(t, { stores: 4 })
const crashTest = cluster.canCrash ? t.test.bind(t) : t.skip.bind(t)
const [a, b, c, d] = [
  cluster.stores[0]!,
  cluster.stores[1]!,
  cluster.stores[2]!,
  cluster.stores[3]!,
]
const LEASE = 400
/** An app server that replays its hints soon after a store is back (a health round each 100 ms). */
const QUICK_REPLAY = {
  copies: 2,
  readLeaseMillis: LEASE,
  healthCheckIntervalMillis: 100,
  queryTimeoutMillis: 500,
}

/** Statements `manager` sent to each store since `before` (from `stats()`), by store id. */
function sent(manager: SessionManager, before?: Map<string, number>): Map<string, number> {
  return new Map(
    manager
      .stats()
      .stores.map((store) => [store.id, store.operations - (before?.get(store.id) ?? 0)]),
  )
}

function total(counts: Map<string, number>): number {
  return [...counts.values()].reduce((sum, count) => sum + count, 0)
}

/** A session id that no test writes: reading it wakes the lease of an idle manager. */
const UNWRITTEN_ID = 'never-written-session-id'

async function leaseHolds(manager: SessionManager, stale: string[] = []): Promise<void> {
  await waitFor(`the read lease to hold with [${stale.join(', ')}] stale`, async () => {
    const lease = manager.stats().readLease
    if (lease !== null && lease.readsAlone && lease.staleStoreIds.join() === stale.join())
      return true
    // The rounds pause on a manager that no read asked for the lease for ten leases.
    await manager.readSession(UNWRITTEN_ID)
    return false
  })
}

/**
 * A session whose order starts a, b, c, written as v1 by an app server that reaches a through
 * a fault proxy (no fault yet), on a lease that outlasts the faults' round trips.
 */
async function sessionBehindProxy(t: Test) {
  await noAnnouncements()
  const { faulty, proxies } = await grayManagers(t, cluster, [a.id], {
    copies: 2,
    readLeaseMillis: 2000,
  })
  const id = idWithOrderPrefix(faulty, [a.id, b.id, c.id])
  await faulty.writeSession(id, { v: 1 })
  return { faulty, proxy: proxies.get(a.id)!, proxies, id }
}

/** {@link sessionBehindProxy}, then the app server reaches a `millis` late (the others on time). */
async function sessionBehindSlowStore(t: Test, millis: number) {
  const session = await sessionBehindProxy(t)
  session.proxy.setFault({ kind: 'latency', toStoreMillis: millis, toClientMillis: 0 })
  return session
}

/**
 * Empties the stale table and the peers table: announcements of managers of earlier tests that
 * closed early, and the configurations of managers that could not withdraw theirs (a store cut
 * off by a fault proxy keeps the row for its 30 s): a peer with other read settings stops lone
 * reads (test/gray-failures.ts), and the tests here use several lease lengths.
 */
async function noAnnouncements(): Promise<void> {
  await Promise.all(
    cluster.stores.flatMap((store) =>
      ['sessions_stale', 'sessions_peers'].map((table) =>
        store.query(`DELETE FROM ${table}`).catch((error: { code?: string }) => {
          if (error.code !== 'ER_NO_SUCH_TABLE') throw error
        }),
      ),
    ),
  )
}

t.test('while the lease holds, a read asks one store; without it, a quorum', async (t) => {
  await noAnnouncements()
  // A lease a stalled round cannot lapse: counting statements needs it to hold for every read
  // (a loaded machine delayed the rounds past 400 ms, and three reads then asked a quorum).
  const leased = await startManager(t, cluster, { copies: 2, readLeaseMillis: 4000 })
  const ids = await Promise.all(Array.from({ length: 20 }, (_, i) => leased.createSession({ i })))
  await leaseHolds(leased)
  const perRead = async (manager: SessionManager, expected: number, what: string) => {
    const before = sent(manager)
    for (const [i, id] of ids.entries()) t.same(await manager.readSession(id), { i })
    // Counted with what runs beside the reads: a lease round or a hedge on a loaded machine
    // adds a statement or three (a CI run counted 41 for 40), never one per read.
    const count = total(sent(manager, before))
    const wanted = ids.length * expected
    t.ok(count >= wanted && count <= wanted + 3, `${what} (${count} for ${ids.length} reads)`)
  }
  await perRead(leased, 1, 'on the lease: one statement per read')
  // An app server without the lease does not announce what its writes miss: while it runs,
  // the others read by quorum too.
  const quorum = await startManager(t, cluster, { copies: 2, readLeaseMillis: 0 })
  t.equal(quorum.stats().readLease, null, 'no lease when it is off')
  await perRead(quorum, 2, 'without the lease: two statements per read')
  await waitFor('the other manager to be seen', () => leased.stats().configMismatches.length > 0)
  await perRead(leased, 2, 'beside an app server without the lease: two statements per read')
})

t.test(
  'an idle app server stops its rounds; its next read asks a quorum and restarts them',
  async (t) => {
    await noAnnouncements()
    const lease = 40
    const manager = await startManager(t, cluster, { copies: 2, readLeaseMillis: lease })
    const id = await manager.createSession({ v: 1 })
    await leaseHolds(manager)
    await waitFor('the idle manager to lose its lease', () => !manager.stats().readLease!.holds)
    // Rounds every 10 ms would hold the lease again within one: none ran.
    await sleep(20 * lease)
    t.notOk(manager.stats().readLease!.holds, 'no round ran while nothing was read')

    let before = sent(manager)
    t.same(await manager.readSession(id), { v: 1 }, 'the next read finds the session')
    t.equal(total(sent(manager, before)), 2, 'asking a quorum: the manager held no lease')
    await waitFor('the rounds to renew the lease', () => manager.stats().readLease!.holds)
    before = sent(manager)
    t.same(await manager.readSession(id), { v: 1 })
    t.equal(total(sent(manager, before)), 1, 'and then one store alone again')
  },
)

crashTest(
  'an app server with an announcement standing keeps renewing it, reads or not',
  async (t) => {
    await noAnnouncements()
    const lease = 40
    // A timeout long enough that a loaded machine stores the announcement in time (a write
    // whose announcement timed out is degraded, and its manager has nothing standing to renew).
    const { faulty, proxies } = await grayManagers(t, cluster, [a.id], {
      copies: 2,
      readLeaseMillis: lease,
      queryTimeoutMillis: 1000,
    })
    const id = idWithOrderPrefix(faulty, [a.id, b.id, c.id])
    // An app server that read nothing for ten leases has paused its rounds: the announcement
    // has to start them again (a round resumed before the announcement was recorded found
    // nothing of this manager's standing, paused again at once and never renewed it).
    await waitFor('the idle manager to lose its lease', () => !faulty.stats().readLease!.holds)
    await sleep(20 * lease)
    proxies.get(a.id)!.setFault({ kind: 'blackhole' })
    t.notOk((await faulty.writeSession(id, { v: 1 })).degraded, 'announced in time')
    const expiry = async (): Promise<number> => {
      const rows = await b.query('SELECT expires_at FROM sessions_stale')
      t.equal(rows.length, 1, 'one announcement, on b')
      return Number(rows[0]!.expires_at)
    }
    const announcedUntil = await expiry()
    // Idle for ten times the rounds' idle pause (ten leases): only the announcement keeps them
    // going (a round waits for a's query timeout, 1 s, so at least three rounds in 4 s).
    await sleep(100 * lease)
    const renewedUntil = await expiry()
    t.ok(
      renewedUntil >= announcedUntil + 40 * lease,
      `renewed while nothing was read (${renewedUntil - announcedUntil} ms later)`,
    )
    proxies.get(a.id)!.heal()
  },
)

crashTest(
  'a store one app server missed: its write waits one lease, then reads go around the store until it caught up',
  async (t) => {
    await noAnnouncements()
    const { faulty, healthy, proxies } = await grayManagers(t, cluster, [a.id], QUICK_REPLAY)
    const id = idWithOrderPrefix(faulty, [a.id, b.id, c.id])
    await faulty.writeSession(id, { v: 1 })
    await leaseHolds(healthy)
    let before = sent(healthy)
    t.same(await healthy.readSession(id), { v: 1 })
    t.same(sent(healthy, before).get(a.id), 1, 'the healthy app server reads a alone')

    proxies.get(a.id)!.setFault({ kind: 'blackhole' })
    const started = performance.now()
    const v2 = await faulty.writeSession(id, { v: 2 })
    const took = performance.now() - started
    t.same(v2.storeIds, [b.id, c.id], 'v2 landed past the partition')
    t.ok(took >= LEASE, `acknowledged a lease after the announcement (${Math.round(took)} ms)`)
    const announced = await b.query('SELECT target_store FROM sessions_stale')
    t.same(
      announced.map((row) => String(row.target_store)),
      [a.id],
      'b holds the announcement that a missed writes',
    )

    before = sent(healthy)
    t.same(await healthy.readSession(id), { v: 2 }, 'the healthy app server reads v2 at once')
    t.equal(sent(healthy, before).get(a.id), 0, 'and does not read a alone any more')
    await leaseHolds(healthy, [a.id])
    before = sent(healthy)
    t.same(await healthy.readSession(id), { v: 2 })
    t.same(
      [...sent(healthy, before)],
      [...sent(healthy, before)].map(([store]) => [store, store === b.id ? 1 : 0]),
      'one statement, to b: the store after a that nobody announced',
    )

    // More writes that miss a: the announcement stands, made once.
    for (let i = 0; i < 3; i++) await faulty.writeSession(id, { v: 3 + i })
    const generations = await c.query('SELECT generation FROM sessions_stale')
    t.same(generations.length, 1, 'one announcement per app server and store')

    proxies.get(a.id)!.heal()
    // The faulty app server replays its hints to a, then withdraws its announcement.
    await waitFor('the announcement to be withdrawn', async () => {
      const rows = await Promise.all(
        [b, c, d].map((store) => store.query('SELECT 1 FROM sessions_stale')),
      )
      return rows.every((found) => found.length === 0)
    })
    await leaseHolds(healthy)
    before = sent(healthy)
    t.same(await healthy.readSession(id), { v: 5 }, 'a caught up: it has the last write')
    t.equal(sent(healthy, before).get(a.id), 1, 'and is read alone again')
  },
)

crashTest('an app server that cannot hear every store reads by quorum', async (t) => {
  await noAnnouncements()
  const { faulty, proxies } = await grayManagers(t, cluster, [d.id], {
    copies: 2,
    readLeaseMillis: LEASE,
    queryTimeoutMillis: 300,
  })
  const id = idWithOrderPrefix(faulty, [a.id, b.id, c.id])
  await faulty.writeSession(id, { v: 1 })
  await leaseHolds(faulty)
  // d holds nothing of this session, but an announcement about a could be kept there alone.
  proxies.get(d.id)!.setFault({ kind: 'blackhole' })
  await waitFor('the lease to lapse', () => faulty.stats().readLease?.holds === false)
  const before = sent(faulty)
  t.same(await faulty.readSession(id), { v: 1 })
  const counts = sent(faulty, before)
  t.same([counts.get(a.id), counts.get(b.id)], [1, 1], 'a and b were both asked')
  proxies.get(d.id)!.heal()
})

crashTest(
  'on the lease, a slow store is hedged around, only to a store the lease trusts',
  async (t) => {
    const { faulty, proxies, id } = await sessionBehindSlowStore(t, 300)
    await leaseHolds(faulty)
    let before = sent(faulty)
    t.same(await faulty.readSession(id), { v: 1 })
    let counts = sent(faulty, before)
    t.same([counts.get(a.id), counts.get(b.id)], [1, 1], 'a was slow: b was asked too')

    // b announced stale (by an app server that missed a write there): no hedge goes to it.
    await d.query(
      'INSERT INTO sessions_stale (target_store, manager, generation, expires_at) VALUES (?, ?, 1, ?)',
      [b.id, 'another-app-server', Date.now() + 60_000],
    )
    await leaseHolds(faulty, [b.id])
    before = sent(faulty)
    t.same(await faulty.readSession(id), { v: 1 })
    counts = sent(faulty, before)
    t.same(
      [counts.get(a.id), counts.get(b.id), counts.get(c.id)],
      [1, 0, 0],
      'a alone, however slow',
    )
    proxies.get(a.id)!.heal()
    await noAnnouncements()
  },
)

crashTest(
  'on the lease, a read whose store fails is answered by the next store the lease trusts',
  async (t) => {
    const { faulty, proxy, id } = await sessionBehindProxy(t)
    await leaseHolds(faulty)
    // a now resets every connection of this app server, which has not noticed yet: the read
    // still goes to a alone first, fails there, and must not fail or miss the session.
    proxy.setFault({ kind: 'reset' })
    const standing = (): string | undefined =>
      faulty.stats().stores.find((store) => store.id === a.id)?.state
    t.equal(standing(), 'up', 'a is still in service for this app server')
    const before = sent(faulty)
    t.same(await faulty.readSession(id), { v: 1 }, 'read from b')
    const counts = sent(faulty, before)
    t.same(
      [counts.get(a.id), counts.get(b.id), counts.get(c.id)],
      [1, 1, 0],
      'a failed, then b alone was asked',
    )
    proxy.heal()
    await noAnnouncements()
  },
)

crashTest(
  'a write hedged around a store that is only slow waits for it there, and announces nothing',
  async (t) => {
    // Slower than the hedge (at most 100 ms), well within the lease.
    const { faulty, proxies, id } = await sessionBehindSlowStore(t, 250)
    const v2 = await faulty.writeSession(id, { v: 2 })
    proxies.get(a.id)!.heal()
    t.ok(v2.storeIds.includes(c.id), `hedged to c: ${v2.storeIds.join(', ')}`)
    t.ok(v2.storeIds.includes(a.id), 'and a took it a moment later')
    t.equal(v2.degraded, false)
    const announced = await Promise.all(
      [b, c, d].map((store) => store.query('SELECT 1 FROM sessions_stale')),
    )
    t.same(announced.flat(), [], 'no store announced stale')
    t.same(faulty.stats().readLease?.staleStoreIds, [])
  },
)

t.test(
  'without the stale table (schema not applied since an upgrade), reads compare copies',
  async (t) => {
    const table = 'lease_upgrade'
    const manager = await startManager(t, cluster, { copies: 2, readLeaseMillis: LEASE, table })
    const id = await manager.createSession({ v: 1 })
    await leaseHolds(manager)
    await Promise.all(cluster.stores.map((store) => store.query(`DROP TABLE ${table}_stale`)))
    await waitFor('the lease to lapse', () => manager.stats().readLease?.holds === false)
    const before = sent(manager)
    t.same(await manager.readSession(id), { v: 1 })
    // The copy and a digest (and a hedge, when a loaded machine made the first store slow).
    t.ok(total(sent(manager, before)) >= 2, 'a quorum read: the copy and a digest')
    await manager.applySchema()
    await leaseHolds(manager)
    const after = sent(manager)
    t.same(await manager.readSession(id), { v: 1 })
    t.equal(total(sent(manager, after)), 1, 'schema applied again: one store alone')
  },
)

t.test('a sweep deletes expired announcements and keeps the others', async (t) => {
  await noAnnouncements()
  const manager = await startManager(t, cluster, { copies: 2, sweepIntervalSeconds: 0 })
  const insert =
    'INSERT INTO sessions_stale (target_store, manager, generation, expires_at) VALUES (?, ?, 1, ?)'
  await d.query(insert, [a.id, 'stopped-long-ago', Date.now() - 1000])
  await d.query(insert, [b.id, 'still-running', Date.now() + 60_000])
  await manager.sweep()
  const left = await d.query('SELECT manager FROM sessions_stale')
  t.same(
    left.map((row) => String(row.manager)),
    ['still-running'],
  )
  await noAnnouncements()
})

crashTest(
  'an announcement made once its store had already caught up is withdrawn all the same',
  async (t) => {
    await noAnnouncements()
    const { faulty, proxies } = await grayManagers(t, cluster, [a.id], QUICK_REPLAY)
    const id = idWithOrderPrefix(faulty, [a.id, b.id, c.id])
    await faulty.writeSession(id, { v: 1 })
    // The replay of a finishes between the write's hint and its announcement (a health round
    // that lands in that gap): the announcement comes after the store caught up.
    const lease = (faulty as unknown as { cluster: { readLease: ReadLease } }).cluster.readLease
    const announce = lease.announce.bind(lease)
    lease.announce = async (targets) => {
      proxies.get(a.id)!.heal()
      await waitFor('a to catch up before the announcement', () =>
        faulty
          .stats()
          .stores.some((store) => store.id === a.id && !store.behind && store.state === 'up'),
      )
      return announce(targets)
    }
    proxies.get(a.id)!.setFault({ kind: 'blackhole' })
    const v2 = await faulty.writeSession(id, { v: 2 })
    t.same(v2.storeIds, [b.id, c.id], 'v2 missed a')
    // Ten leases after a caught up, the announcement goes, as any other.
    await waitFor(
      'the announcement to be withdrawn',
      async () => {
        const rows = await Promise.all(
          [b, c, d].map((store) => store.query('SELECT 1 FROM sessions_stale')),
        )
        return rows.every((found) => found.length === 0)
      },
      30 * LEASE,
    )
    t.pass('withdrawn')
  },
)
