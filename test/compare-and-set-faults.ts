import t from 'tap'
import mysql from 'mysql2/promise'
import type { Test } from 'tap'
import { VersionConflictError, WriteOutcomeUnknownError } from '../lib/index.js'
import type { SessionManagerOptions } from '../lib/index.js'
import type { FaultProxy } from '../lib/local-cluster/index.js'
import { driverOptions, startTestCluster } from './helpers/cluster.js'
import { grayManagers, proxiesFor } from './helpers/gray.js'
import {
  createManager,
  idWithOrderPrefix,
  rowsOnStores,
  startManager,
  statementsSent,
} from './helpers/manager.js'
import { sleep, waitFor } from './helpers/wait.js'

// Compare-and-set (docs/guarantees.md, section 5) under faults one app server sees: the check
// must neither report a write that applied as a conflict nor let an update based on an old
// version through.
const cluster = await startTestCluster(t, { stores: 3 })
const [a, b, c] = [cluster.stores[0]!, cluster.stores[1]!, cluster.stores[2]!]
const crashTest = cluster.canCrash ? t.test.bind(t) : t.skip.bind(t)

/** Announcements that stores missed writes, which tests leave: the lease trusts no such store alone. */
async function clearAnnouncements(): Promise<void> {
  await Promise.all(cluster.stores.map((store) => store.query('DELETE FROM sessions_stale')))
}

/** Two app servers; one reaches the session's first store (a) through a proxy, one connection. */
async function resetScene(t: Test) {
  const { faulty, healthy, proxies } = await grayManagers(t, cluster, [a.id], {
    connectionsPerStore: 1,
    queryTimeoutMillis: 3_000,
    healthCheckIntervalMillis: 3_600_000,
  })
  const id = idWithOrderPrefix(faulty, [a.id, b.id, c.id])
  return { faulty, healthy, proxy: proxies.get(a.id)!, id }
}

/**
 * The statement sent next reaches the store at once; its answer is held back, and the
 * connection reset while it is: the driver sends it again on a new connection, which finds it
 * applied.
 */
async function loseTheAnswer(proxy: FaultProxy): Promise<void> {
  proxy.setFault({ kind: 'latency', toStoreMillis: 0, toClientMillis: 600 })
  await sleep(200)
  proxy.setFault({ kind: 'reset' })
  proxy.setFault({ kind: 'none' })
}

t.test('a compare-and-set whose answer a reset lost, retried, is not a conflict', async (t) => {
  const { faulty, healthy, proxy, id } = await resetScene(t)
  const first = await faulty.writeSession(id, { n: 0 })
  // One compare-and-set first, so that the retried one below needs no prepare round trip.
  const second = await faulty.writeSession(id, { n: 1 }, { expectedVersion: first.version })
  const third = faulty.writeSession(id, { n: 2 }, { expectedVersion: second.version })
  await loseTheAnswer(proxy)
  const outcome = await third.then(
    (result) => result,
    (error: unknown) => error,
  )
  t.notOk(outcome instanceof VersionConflictError, 'not reported as a conflict')
  t.same(await healthy.readSession(id), { n: 2 }, 'the write is there, once')
  t.same(
    (await healthy.readSession(id, { withVersion: true }))?.version,
    (outcome as { version?: number }).version,
  )
})

t.test('updateSession applies its change once when a reset loses the answer', async (t) => {
  const { faulty, healthy, proxy, id } = await resetScene(t)
  await faulty.writeSession(id, { n: 0 })
  await faulty.increment(id, 'n')
  let changes = 0
  const updated = await faulty.updateSession(id, (data) => {
    // After the read: the compare-and-set that follows loses its answer to a reset.
    if (++changes === 1) void loseTheAnswer(proxy)
    return { n: (data!.n as number) + 1 }
  })
  t.equal(changes, 1, 'the change ran once')
  t.same(updated, { n: 2 }, 'updateSession resolves the data it wrote')
  t.same(await healthy.readSession(id), { n: 2 }, 'and the session holds 2, not 3')
})

t.test(
  'a compare-and-set whose answer a reset lost, written over meanwhile, is not run again',
  async (t) => {
    const { faulty, healthy, proxy, id } = await resetScene(t)
    await faulty.writeSession(id, { n: 0 })
    await faulty.increment(id, 'n')
    let changes = 0
    let other: Promise<number> | undefined
    const mine = faulty.updateSession(id, (data) => {
      if (++changes === 1) {
        // The compare-and-set that follows reaches a; its answer is held back while another
        // app server increments over it, then the connection resets and the driver sends the
        // statement again, which finds the other increment's version.
        proxy.setFault({ kind: 'latency', toStoreMillis: 0, toClientMillis: 1500 })
        other = (async () => {
          await sleep(300)
          const n = await healthy.increment(id, 'n')
          proxy.setFault({ kind: 'reset' })
          proxy.setFault({ kind: 'none' })
          return n
        })()
      }
      return { n: (data!.n as number) + 1 }
    })
    const outcome = await mine.catch((error: unknown) => error)
    t.equal(await other, 3, 'the other increment went over this one')
    t.equal(changes, 1, 'the change ran once')
    t.ok(outcome instanceof WriteOutcomeUnknownError, 'reported as an outcome unknown')
    t.equal((outcome as WriteOutcomeUnknownError).code, 'WRITE_OUTCOME_UNKNOWN')
    t.same(await healthy.readSession(id), { n: 3 }, '1 and two increments: 3')
  },
)

/**
 * Two app servers read the same version; the first cannot reach the session's first store and
 * writes over that version past it. The second, which still reaches that store (it missed the
 * write), must find the version moved on.
 */
async function staleFirstStore(t: Test, options: Partial<SessionManagerOptions>): Promise<void> {
  const { faulty, healthy, proxies } = await grayManagers(t, cluster, [a.id], {
    copies: 2,
    queryTimeoutMillis: 500,
    // No health round replays the hint for a before the second write: a stays behind.
    healthCheckIntervalMillis: 3_600_000,
    ...options,
  })
  const id = idWithOrderPrefix(faulty, [a.id, b.id, c.id])
  const first = await faulty.writeSession(id, { by: ['first'] })
  t.same(await healthy.readSession(id), { by: ['first'] })
  proxies.get(a.id)!.setFault({ kind: 'blackhole' })
  const second = await faulty.writeSession(
    id,
    { by: ['first', 'faulty'] },
    { expectedVersion: first.version },
  )
  t.same(second.storeIds, [b.id, c.id], 'written past the store the faulty app server misses')
  const third = await healthy
    .writeSession(id, { by: ['first', 'healthy'] }, { expectedVersion: first.version })
    .catch((error: unknown) => error)
  t.ok(third instanceof VersionConflictError, 'the same version again: a conflict')
  t.same(await healthy.readSession(id), { by: ['first', 'faulty'] }, 'the first update stands')
  const updated = await healthy.updateSession(id, (data) => ({
    by: [...(data!.by as string[]), 'healthy'],
  }))
  t.same(updated, { by: ['first', 'faulty', 'healthy'] }, 'an update over the newest version')
  t.same(await faulty.readSession(id), updated, 'seen by the faulty app server too')
  proxies.get(a.id)!.heal()
}

t.test('a compare-and-set is not decided by a store that missed a write (lease)', (t) =>
  staleFirstStore(t, {}),
)

t.test('a compare-and-set is not decided by a store that missed a write (no lease)', (t) =>
  staleFirstStore(t, { readLeaseMillis: 0 }),
)

crashTest(
  'a compare-and-set is acknowledged only by copies that hold it (a follower missed a write)',
  async (t) => {
    const { faulty, healthy, proxies } = await grayManagers(t, cluster, [a.id], {
      copies: 2,
      queryTimeoutMillis: 500,
      healthCheckIntervalMillis: 3_600_000,
    })
    const id = idWithOrderPrefix(faulty, [a.id, b.id, c.id])
    await faulty.writeSession(id, { v: 1 })
    // The faulty app server cannot reach a: its next write lands on b and c (a is hinted and
    // announced stale).
    proxies.get(a.id)!.setFault({ kind: 'blackhole' })
    t.same((await faulty.writeSession(id, { v: 2 })).storeIds, [b.id, c.id])
    // The healthy app server, which reaches every store, updates over the newest version: b
    // decides, and a, still at v1, follows.
    const read = (await healthy.readSession(id, { withVersion: true }))!
    t.same(read.data, { v: 2 })
    const third = await healthy.writeSession(id, { v: 3 }, { expectedVersion: read.version })
    const rows = await rowsOnStores(cluster, id)
    const holders = [...rows].filter(([, row]) => Number(row?.version) === third.version)
    t.same(
      holders.map(([store]) => store).sort(),
      [...third.storeIds].sort(),
      'every store the write was acknowledged by holds it',
    )
    t.ok(third.degraded || holders.length >= 2, 'two copies, or reported degraded')
    proxies.get(a.id)!.heal()
    // Losing one store (copies - 1) loses no acknowledged write.
    await b.kill()
    try {
      const late = createManager(t, cluster, { copies: 2 })
      await late.ready()
      t.same(await late.readSession(id), { v: 3 }, 'the write survives losing b')
    } finally {
      await b.start()
    }
  },
)

t.test(
  'a compare-and-set retried after a lock wait timeout that finds another version is a conflict',
  async (t) => {
    const admin = await mysql.createConnection(driverOptions(a.config))
    t.teardown(() => admin.end())
    const stores = cluster.storeConfigs().filter((config) => config.id === a.id)
    const first = await startManager(t, cluster, { stores, copies: 1 })
    const id = `cas-lock-wait-${process.pid}-${Date.now()}`
    const { version } = await first.writeSession(id, { v: 1 })

    // Connections opened from now on wait 1 s for a row lock.
    await admin.query('SET GLOBAL innodb_lock_wait_timeout = 1')
    t.teardown(() => admin.query('SET GLOBAL innodb_lock_wait_timeout = 50'))
    const manager = await startManager(t, cluster, {
      stores,
      copies: 1,
      queryTimeoutMillis: 8000,
    })
    // Another writer holds the row past the first attempt's lock wait, and writes over the
    // expected version before it commits: the first attempt failed (1205) and applied nothing.
    const holder = await mysql.createConnection(driverOptions(a.config))
    t.teardown(() => holder.end())
    await holder.query('BEGIN')
    await holder.query('SELECT * FROM sessions WHERE id = ? FOR UPDATE', [id])
    const other = sleep(1300).then(async () => {
      await holder.query('UPDATE sessions SET version = version + 1 WHERE id = ?', [id])
      await holder.query('COMMIT')
    })
    const outcome = await manager.writeSession(id, { v: 2 }, { expectedVersion: version }).then(
      () => 'written',
      (error: Error) => error,
    )
    await other
    t.type(
      outcome,
      VersionConflictError,
      `nothing was written and the session moved on: a conflict (got ${String(outcome)})`,
    )
  },
)

/** The version `store` holds for `id` (0: no row). */
async function versionOn(store: typeof a, id: string): Promise<number> {
  const rows = await store.query<{ version: number }>('SELECT version FROM sessions WHERE id = ?', [
    id,
  ])
  return Number(rows[0]?.version ?? 0)
}

// A decider that timed out may still apply the write; a quorum read elsewhere then copies that
// write (its own version, its own data) to the next decider before the compare-and-set gets
// there: that is this write, not another one that proposed the same version.
t.test(
  'updateSession applies its change once when its decider timed out and a read repair copied the write on',
  async (t) => {
    const proxy = (await proxiesFor(t, cluster, [b.id])).get(b.id)!
    const base = { copies: 2, ttlSeconds: 86_400, readLeaseMillis: 0 }
    const healthy = await startManager(t, cluster, base)
    const faulty = await startManager(t, cluster, {
      ...base,
      queryTimeoutMillis: 2000,
      stores: cluster
        .storeConfigs()
        .map((config) => (config.id === b.id ? { ...config, port: proxy.port } : config)),
    })
    const id = idWithOrderPrefix(healthy, [a.id, b.id, c.id])
    await healthy.writeSession(id, { n: 0 })
    const locker = await mysql.createConnection(
      driverOptions(cluster.storeConfigs().find((config) => config.id === a.id)!),
    )
    t.teardown(() => locker.end())

    let changes = 0
    let before = 0
    const updating = faulty
      .updateSession(id, async (data) => {
        if (++changes === 1) {
          before = await versionOn(a, id)
          // a's row is locked: the decision there waits, and times out; b answers slowly.
          await locker.query('BEGIN')
          await locker.query('SELECT id FROM sessions WHERE id = ? FOR UPDATE', [id])
          proxy.setFault({ kind: 'latency', toStoreMillis: 800, toClientMillis: 0 })
        } else proxy.heal()
        return { n: (data!.n as number) + 1 }
      })
      .catch((error: unknown) => error)
    await waitFor(
      'the decision at a to time out',
      () => statementsSent(faulty, a.id, 'compareAndSet', 'unreachable') > 0,
    )
    await locker.query('ROLLBACK') // the timed-out statement applies now
    await waitFor('a to hold the write', async () => (await versionOn(a, id)) > before)
    t.same(await healthy.readSession(id), { n: 1 }, 'a quorum read sees the write (and repairs b)')
    const applied = await versionOn(a, id)
    await waitFor('b to be repaired', async () => (await versionOn(b, id)) === applied)
    const updated = await updating
    t.equal(changes, 1, 'the change ran once')
    t.same(updated, { n: 1 }, 'updateSession resolves the data it wrote')
    t.same(await healthy.readSession(id), { n: 1 }, 'and the session holds 1, not 2')
  },
)

t.test(
  'updateSession whose deciding store timed out after applying, written over meanwhile, runs its change once',
  async (t) => {
    // The deciding store's answer is lost to a timeout (a slow return path for one app server):
    // the statement applied, another app server updated over it, and the next store the lease
    // trusts shows that newer version. A conflict would make updateSession apply the change
    // again; the outcome is unknown.
    await clearAnnouncements()
    const { faulty, healthy, proxies } = await grayManagers(t, cluster, [a.id], {
      copies: 2,
      queryTimeoutMillis: 800,
      connectionsPerStore: 1,
      healthCheckIntervalMillis: 3_600_000,
    })
    const proxy = proxies.get(a.id)!
    const id = idWithOrderPrefix(faulty, [a.id, b.id, c.id])
    await faulty.writeSession(id, { n: 0 })
    await faulty.increment(id, 'n')
    await healthy.increment(id, 'n') // n = 2, both warmed up (statements prepared)
    // The lease trusts a alone: a decides.
    await waitFor('the lease to hold', () => faulty.stats().readLease?.holds === true)
    let changes = 0
    let other: Promise<number> | undefined
    const outcome = await faulty
      .updateSession(id, (data) => {
        if (++changes === 1) {
          // The compare-and-set reaches a at once and applies; its answer comes back only
          // after the query timeout. Meanwhile the other app server increments over it.
          proxy.setFault({ kind: 'latency', toStoreMillis: 0, toClientMillis: 2000 })
          other = sleep(200).then(() => healthy.increment(id, 'n'))
        }
        return { n: (data!.n as number) + 1 }
      })
      .catch((error: unknown) => error)
    proxy.setFault({ kind: 'none' })
    t.equal(await other, 4, 'the other increment went over this one (2 + 1 + 1)')
    t.ok(outcome instanceof WriteOutcomeUnknownError, 'the outcome is unknown')
    t.equal(changes, 1, 'the change ran once')
    t.same(await healthy.readSession(id), { n: 4 }, 'two increments over 2: 4')
  },
)

for (const readLeaseMillis of [undefined, 0]) {
  t.test(
    `a create-if-absent is a conflict over a live session whose first copy a touch missed (lease ${readLeaseMillis ?? 'default'})`,
    async (t) => {
      // Copies of one version that differ in expiry (a touch missed one: a gray fault between
      // the touching app server and that store). Once the missed copy has expired a read still
      // finds the session live, from the touched copy: expectedVersion 0 ("no session") must
      // not overwrite it, though the store the lease trusts alone holds only the expired copy.
      await clearAnnouncements()
      const { faulty, healthy, proxies } = await grayManagers(t, cluster, [a.id], {
        copies: 2,
        queryTimeoutMillis: 300,
        healthCheckIntervalMillis: 100,
        ...(readLeaseMillis === undefined ? {} : { readLeaseMillis }),
      })
      const id = idWithOrderPrefix(healthy, [a.id, b.id, c.id])
      const written = await healthy.writeSession(id, { user: 'alice' }, { ttlSeconds: 2 })
      t.same(written.storeIds, [a.id, b.id])
      proxies.get(a.id)!.setFault({ kind: 'blackhole' })
      t.equal(await faulty.touch(id, { ttlSeconds: 600 }), true, 'touched (b only)')
      proxies.get(a.id)!.heal()
      await sleep(2500)
      await waitFor('a in service for the healthy app server', () =>
        healthy.stats().stores.every((store) => store.state === 'up'),
      )
      if (readLeaseMillis === undefined) {
        await waitFor('the lease to hold', () => healthy.stats().readLease?.holds === true)
      }
      t.same(await healthy.readSession(id), { user: 'alice' }, 'the session reads as live')
      const created = await healthy
        .writeSession(id, { user: 'mallory' }, { expectedVersion: 0 })
        .catch((error: unknown) => error)
      t.ok(created instanceof VersionConflictError, 'a compare-and-set on "no session" conflicts')
      t.same(await healthy.readSession(id), { user: 'alice' }, 'the live session stays')
    },
  )
}
