import t from 'tap'
import { LockExpiredError, SessionLock } from '../lib/index.js'
import { startTestCluster } from './helpers/cluster.js'
import { idWithOrderPrefix, rowsOnStores, startManager, statementsSent } from './helpers/manager.js'
import { sleep } from './helpers/wait.js'

// Expiry decisions on a fake clock: every one reads the `clock` option, so time is moved by
// the test, never waited for.
const cluster = await startTestCluster(t, { stores: 3 })

function fakeClock(): { now(): number; advance(millis: number): void } {
  let now = Date.now()
  return { now: () => now, advance: (millis) => void (now += millis) }
}

t.test('reads, touches and session timeouts follow the fake clock', async (t) => {
  const clock = fakeClock()
  const manager = await startManager(t, cluster, { copies: 2, clock, ttlSeconds: 60 })
  const id = await manager.createSession({ n: 1 })
  clock.advance(59_999)
  t.same(await manager.readSession(id), { n: 1 }, '1 ms before its expiry: live')
  clock.advance(1)
  t.equal(await manager.readSession(id), null, 'at its expiry: over')
  t.equal(await manager.touch(id), false, 'an expired session is not touched back to life')

  const touched = await manager.createSession({ n: 2 })
  clock.advance(30_000)
  t.equal(await manager.touch(touched), true)
  clock.advance(89_999 - 30_000)
  t.same(await manager.readSession(touched), { n: 2 }, 'touched at 30 s: live at 89.999 s')
  clock.advance(1)
  t.equal(await manager.readSession(touched), null, 'over at 90 s')

  const timed = await manager.createSession({ n: 3 })
  t.equal(await manager.setSessionTimeout(timed, 5), true)
  await manager.writeSession(timed, { n: 4 })
  clock.advance(4_999)
  t.same(await manager.readSession(timed), { n: 4 }, 'the session timeout (5 s) kept by a write')
  clock.advance(1)
  t.equal(await manager.readSession(timed), null, 'over after its own timeout')
})

t.test('sweeps delete what the fake clock says has expired, tombstones included', async (t) => {
  const clock = fakeClock()
  const table = 'fake_clock_sweep'
  const manager = await startManager(t, cluster, {
    copies: 2,
    clock,
    table,
    ttlSeconds: 60,
    tombstoneTtlSeconds: 120,
    sweepIntervalSeconds: 0,
  })
  const expiring = await manager.createSession({})
  const destroyed = await manager.createSession({})
  await manager.destroySession(destroyed)
  t.equal((await manager.sweep()).deleted, 0, 'nothing expired yet')
  clock.advance(60_000)
  t.equal(await manager.readSession(expiring), null, 'expired at 60 s')
  t.equal((await manager.sweep()).deleted, 0, 'but not swept within the grace (300 s)')
  clock.advance(299_999)
  t.equal((await manager.sweep()).deleted, 0, 'nor a millisecond before its end')
  clock.advance(1)
  // Two copies, or three when a hedge around a slow store left one more: every one is swept.
  const copies = [...(await rowsOnStores(cluster, expiring, table)).values()].filter(Boolean).length
  t.ok(copies >= 2, 'the expiring session has its two copies')
  t.equal((await manager.sweep()).deleted, copies, 'the expired session: every copy')
  // Tombstones on every store a read may ask (maxReadStores: 3), expired at 120 s.
  t.same([...(await rowsOnStores(cluster, destroyed, table)).values()].filter(Boolean).length, 3)
  clock.advance(60_000)
  t.equal((await manager.sweep()).deleted, 3, 'the tombstones, once their grace is up too')
  t.equal(await manager.readSession(expiring), null)
})

t.test('a long sweep renews its lease on each store once half of it has passed', async (t) => {
  const clock = fakeClock()
  const table = 'fake_clock_sweep_lease'
  const manager = await startManager(t, cluster, {
    copies: 3,
    clock,
    table,
    ttlSeconds: 60,
    sweepIntervalSeconds: 0,
    sweepGraceSeconds: 0,
  })
  await Promise.all(Array.from({ length: 12 }, (_, i) => manager.createSession({ i })))
  clock.advance(60_000)
  // 12 rows in batches of 5: three batches on every store. The leases (60 s) are taken at the
  // start; after the first batch anywhere, 31 s pass: every store's next batch renews its
  // lease (not yet at half of it), and the renewed one lasts past the third.
  let advanced = false
  const result = await manager.sweep({
    batchSize: 5,
    onProgress: () => {
      if (!advanced) clock.advance(31_000)
      advanced = true
    },
  })
  t.equal(result.deleted, 36, 'every copy swept')
  for (const store of cluster.stores) {
    t.equal(statementsSent(manager, store.id, 'sweep'), 3, `${store.id}: three batches`)
    t.equal(statementsSent(manager, store.id, 'lock'), 2, `${store.id}: taken, then renewed once`)
    t.equal(statementsSent(manager, store.id, 'unlock'), 1, `${store.id}: released at the end`)
  }
  // Without the 31 s, the lease taken at the start covers the whole sweep.
  await Promise.all(Array.from({ length: 12 }, (_, i) => manager.createSession({ i })))
  clock.advance(60_000)
  t.equal((await manager.sweep({ batchSize: 5 })).deleted, 36)
  for (const store of cluster.stores) {
    t.equal(statementsSent(manager, store.id, 'lock'), 3, `${store.id}: one lease, no renewal`)
  }
})

t.test('a lock lease runs out on the fake clock', async (t) => {
  const clock = fakeClock()
  const manager = await startManager(t, cluster, { copies: 2, clock })
  const id = await manager.createSession({ holder: 'none' })
  const lock = await manager.lockSession(id, { leaseMillis: 1000 })
  await lock.read()
  clock.advance(999)
  t.equal(lock.expired, false)
  clock.advance(1)
  t.equal(lock.expired, true, 'expired at its lease')
  await t.rejects(lock.write({ holder: 'late' }), LockExpiredError, 'and fenced')
  const next = await manager.lockSession(id, { waitMillis: 0 })
  t.pass('another holder takes it at once: the store compares leases with the same clock')
  await next.release()
})

t.test('a released lock is free at once, on a clock that does not move', async (t) => {
  // A release is stamped with its time; a lock statement sent at that same time takes it.
  const clock = fakeClock()
  const manager = await startManager(t, cluster, { copies: 2, clock, sweepIntervalSeconds: 0 })
  const id = await manager.createSession({ n: 1 })
  for (let round = 0; round < 3; round++) {
    const lock = await manager.lockSession(id, { waitMillis: 0 })
    await lock.release()
  }
  t.pass('taken, released and taken again three times at one instant')
  const count = (data: Record<string, unknown> | null) => ({ n: Number(data?.n) + 1 })
  await manager.withSessionLock(id, count, { waitMillis: 0 })
  t.same(await manager.withSessionLock(id, count, { waitMillis: 0 }), { n: 3 }, 'twice in a row')
  // The sweep's own lease on each store is a lock too: released, the next sweep takes it.
  await manager.sweep()
  const again = await manager.sweep()
  t.same(
    again.stores.filter((store) => store.sweptElsewhere === true).map((store) => store.storeId),
    [],
    'a second sweep at the same instant is not taken for another app server sweeping',
  )
})

t.test('a lock released by an app server whose clock runs ahead', async (t) => {
  // Its release is stamped 100 ms ahead: for another app server it has ended once that one's
  // clock reaches it (leases already assume the app servers' clocks agree).
  const ahead = { now: () => Date.now() + 100 }
  const early = await startManager(t, cluster, { copies: 2, clock: ahead })
  const other = await startManager(t, cluster, { copies: 2 })
  const id = await other.createSession({ n: 1 })
  const lock = await early.lockSession(id, { waitMillis: 0 })
  await lock.release()
  const next = await other.lockSession(id, { waitMillis: 1_000 })
  t.pass('taken within a wait longer than the clocks differ')
  await next.release()
  const back = await early.lockSession(id, { waitMillis: 0 })
  t.pass('and the app server ahead takes the other one released at once')
  await back.release()
})

t.test(
  'a sweep by an app server whose clock runs 2 s ahead does not let a third take a held lock',
  async (t) => {
    const options = { copies: 2, sweepIntervalSeconds: 0, healthCheckIntervalMillis: 3_600_000 }
    const ahead = { now: () => Date.now() + 2_000 }
    const holderManager = await startManager(t, cluster, options)
    const otherManager = await startManager(t, cluster, options)
    const sweeper = await startManager(t, cluster, { ...options, clock: ahead })
    const id = idWithOrderPrefix(holderManager, [cluster.stores[0]!.id, cluster.stores[1]!.id])
    await holderManager.writeSession(id, { n: 0 })
    // Holder and asker agree on the time; the holder has 3 s of lease.
    const lock = await holderManager.lockSession(id, { leaseMillis: 3_000 })
    await sleep(1_500)
    t.equal(lock.expired, false, 'the holder still counts 1.5 s of lease')
    await sweeper.sweep()
    const other = await otherManager.lockSession(id, { waitMillis: 0 }).catch((e: unknown) => e)
    const both = other instanceof SessionLock && !lock.expired
    t.notOk(both, 'no second holder while the first still counts the lock as its own')
    if (other instanceof SessionLock) await other.release()
    await lock.release()
  },
)

t.test('a lock wait ends at waitMillis on a fake clock that does not move', async (t) => {
  let now = Date.now()
  const clock = { now: () => now }
  const manager = await startManager(t, cluster, { copies: 2, clock, sweepIntervalSeconds: 0 })
  const id = await manager.createSession({ n: 1 })
  const held = await manager.lockSession(id, { leaseMillis: 60_000 })
  const started = performance.now()
  const waiting = manager.lockSession(id, { waitMillis: 200 }).then(
    () => 'locked',
    (e: unknown) => e,
  )
  const result = await Promise.race([waiting, sleep(5_000).then(() => 'still waiting')])
  t.match(result, { code: 'LOCK_TIMEOUT' }, 'LockTimeoutError within 5 s of a 200 ms wait')
  t.ok(performance.now() - started < 5_000, 'the wait was bounded')
  now += 120_000 // let the wait end, whatever happened
  await waiting
  await held.release()
})

t.test('a lock wait ends at waitMillis when the wall clock steps back', async (t) => {
  let offset = 0
  const clock = { now: () => Date.now() - offset }
  const waiterManager = await startManager(t, cluster, {
    copies: 2,
    clock,
    sweepIntervalSeconds: 0,
  })
  const holderManager = await startManager(t, cluster, { copies: 2, sweepIntervalSeconds: 0 })
  const id = await holderManager.createSession({ n: 1 })
  const held = await holderManager.lockSession(id, { leaseMillis: 60_000 })
  const waiting = waiterManager.lockSession(id, { waitMillis: 500 }).then(
    () => 'locked',
    (e: unknown) => e,
  )
  await sleep(100)
  offset = 3_600_000 // NTP steps the waiter's clock back an hour
  const result = await Promise.race([waiting, sleep(5_000).then(() => 'still waiting')])
  t.match(result, { code: 'LOCK_TIMEOUT' }, 'LockTimeoutError within 5 s of a 500 ms wait')
  offset = -120_000
  await waiting
  await held.release()
})
