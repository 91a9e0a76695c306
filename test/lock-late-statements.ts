import t from 'tap'
import type { Test } from 'tap'
import { connect, createServer } from 'node:net'
import type { AddressInfo, Socket } from 'node:net'
import { LockExpiredError, SessionLock } from '../lib/index.js'
import type { SessionManager } from '../lib/index.js'
import { startTestCluster } from './helpers/cluster.js'
import { throughProxies } from './helpers/gray.js'
import { idWithOrderPrefix, startManager } from './helpers/manager.js'
import { closeAtEnd } from './helpers/teardown.js'
import { sleep } from './helpers/wait.js'

// Lock statements that time out on their way to the store (a slow network path on one
// connection) and land after the library gave them up (an aborted or abandoned wait, a retry
// round's first statement, a renewal in flight at the release) must not take the lock back:
// a release leaves its row as a release, which the late statement finds (docs/guarantees.md §5).
const cluster = await startTestCluster(t, { stores: 3 })
const [first, second] = [cluster.stores[0]!, cluster.stores[1]!]

/**
 * A TCP proxy whose client-to-store bytes may be slow (a congested path, retransmissions): as
 * TCP does, bytes a client sent before it closed its socket still reach the store, in order,
 * followed by the close.
 */
async function slowPathProxy(t: Test, host: string, port: number) {
  const state = { delayMillis: 0 }
  const sockets = new Set<Socket>()
  const server = createServer((client) => {
    const store = connect(port, host)
    sockets.add(client).add(store)
    let due = 0
    const later = (action: () => void): void => {
      due = Math.max(due, Date.now() + state.delayMillis)
      setTimeout(action, Math.max(0, due - Date.now()))
    }
    client.on('data', (chunk) => later(() => store.destroyed || store.write(chunk)))
    client.on('close', () => later(() => store.end()))
    client.on('error', () => {})
    store.on('data', (chunk) => client.destroyed || client.write(chunk))
    store.on('close', () => client.destroy())
    store.on('error', () => {})
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  closeAtEnd(t, 'the slow-path proxy', async () => {
    for (const socket of sockets) socket.destroy()
    await new Promise((resolve) => server.close(resolve))
  })
  return { port: (server.address() as AddressInfo).port, state }
}

/** Two app servers, `faulty` reaching the first store through a slow-path proxy, and a session. */
async function scene(t: Test, queryTimeoutMillis = 200) {
  const proxy = await slowPathProxy(t, first.host, first.port)
  const options = {
    copies: 2,
    queryTimeoutMillis,
    failThreshold: 50,
    healthCheckIntervalMillis: 3_600_000,
  }
  const stores = throughProxies(cluster.storeConfigs(), new Map([[first.id, proxy as never]]))
  const faulty = await startManager(t, cluster, { ...options, stores })
  const healthy = await startManager(t, cluster, options)
  const slow = (millis: number): void => void (proxy.state.delayMillis = millis)
  // Warm the pool: the lock statement prepared on each connection, as after any use.
  for (let round = 0; round < 3; round++) {
    const locks = await Promise.all(
      [0, 1, 2, 3].map(() =>
        faulty.lockSession(idWithOrderPrefix(faulty, [first.id]), { waitMillis: 1000 }),
      ),
    )
    await Promise.all(locks.map((lock) => lock.release()))
  }
  // The session under test: its first store is the one the faulty app server reaches slowly.
  const id = idWithOrderPrefix(healthy, [first.id, second.id])
  await healthy.writeSession(id, { n: 0 })
  return { faulty, healthy, slow, id }
}

/** Rows of `id` on the first store that hold its lock (a release's row holds nothing). */
async function lockRows(id: string): Promise<unknown[]> {
  return first.query<{ token: string }>(
    "SELECT token FROM sessions_locks WHERE id = ? AND LEFT(token, 1) <> '~' AND expires_at > ?",
    [id, Date.now()],
  )
}

/** How a lock wait ended: 'locked' (then released at once), or its error. */
function outcome(waiting: Promise<SessionLock>): Promise<unknown> {
  return waiting.then(
    async (lock) => {
      await lock.release()
      return 'locked'
    },
    (e: unknown) => e,
  )
}

/** Once the late statement had time to land: no lock row holds `id`, and `other` takes it. */
async function lockIsFree(t: Test, other: SessionManager, id: string, whose: string) {
  await sleep(1_200)
  t.same(await lockRows(id), [], `no lock row of ${whose}`)
  const next = await other.lockSession(id, { waitMillis: 0 }).catch((e: unknown) => e)
  t.ok(next instanceof SessionLock, `another app server takes the lock (got ${String(next)})`)
  if (next instanceof SessionLock) await next.release()
}

/**
 * What the session's lock row holds when the waiter comes: none; another holder's release; a
 * lease whose holder died. The waiter's give-back must leave a row its own late statement will
 * not take in each case: the last two are free rows, which the late statement would take.
 */
const HISTORIES: [string, (other: SessionManager, id: string) => Promise<void>][] = [
  ['never locked', async () => {}],
  [
    'released by another holder',
    async (other, id) => {
      await (await other.lockSession(id)).release()
      await sleep(5)
    },
  ],
  [
    'left by a holder that died',
    async (other, id) => {
      await other.lockSession(id, { leaseMillis: 50 })
      await sleep(100)
    },
  ],
]

for (const [history, before] of HISTORIES) {
  t.test(
    `an aborted lock wait whose statement lands late leaves no lock held (${history})`,
    async (t) => {
      const { faulty, healthy, slow, id } = await scene(t)
      await before(healthy, id)
      // The lock statement is slow to reach the store (past queryTimeoutMillis); the abort comes
      // while it is on its way, and the give-back goes out on a connection that is not slow.
      slow(700)
      const controller = new AbortController()
      const waiting = outcome(
        faulty.lockSession(id, {
          leaseMillis: 30_000,
          waitMillis: 10_000,
          signal: controller.signal,
        }),
      )
      await sleep(100)
      controller.abort(new Error('client went away'))
      slow(0)
      t.match(await waiting, { code: 'LOCK_ABORTED' })
      await lockIsFree(t, healthy, id, 'the aborted waiter')
    },
  )
}

t.test('an abort ends a lock wait at once, while its statement is still on its way', async (t) => {
  const { faulty, healthy, slow, id } = await scene(t, 5_000)
  // The statement takes 1.5 s to reach the store, well within queryTimeoutMillis: the abort
  // comes first, and the lock the statement then takes is given back.
  slow(1_500)
  const controller = new AbortController()
  const waiting = outcome(
    faulty.lockSession(id, { leaseMillis: 30_000, waitMillis: 10_000, signal: controller.signal }),
  )
  await sleep(100)
  const abortedAt = Date.now()
  controller.abort(new Error('client went away'))
  t.match(await waiting, { code: 'LOCK_ABORTED' })
  t.ok(Date.now() - abortedAt < 1_000, 'the wait ended at the abort, not at the answer')
  slow(0)
  await sleep(1_500)
  await lockIsFree(t, healthy, id, 'the aborted waiter')
})

for (const [history, before] of HISTORIES) {
  t.test(
    `a lock wait that gives up on a slow store leaves no lock held (${history})`,
    async (t) => {
      const { faulty, healthy, slow, id } = await scene(t)
      await before(healthy, id)
      slow(700)
      const waiting = outcome(faulty.lockSession(id, { leaseMillis: 30_000, waitMillis: 250 }))
      await sleep(300)
      slow(0)
      t.match(await waiting, { code: 'LOCK_TIMEOUT' })
      await lockIsFree(t, healthy, id, 'the waiter that gave up')
    },
  )
}

t.test('a lock taken on a retry, then released, leaves no lock held', async (t) => {
  const { faulty, healthy, slow, id } = await scene(t)
  // The first lock statement times out on its slow way; the retry, on a connection that is
  // not slow, takes the lock; the holder works and releases it. Then the first one lands.
  slow(700)
  setTimeout(() => slow(0), 100)
  const lock = await faulty.lockSession(id, { leaseMillis: 30_000, waitMillis: 5_000 })
  t.equal(lock.storeId, first.id)
  await lock.read()
  await lock.write({ n: 1 })
  await lock.release()
  await lockIsFree(t, healthy, id, 'the holder that released it')
})

t.test(
  'a renewal that timed out and lands after the release does not take the lock back',
  async (t) => {
    const { faulty, healthy, slow, id } = await scene(t)
    const lock = await faulty.lockSession(id, { leaseMillis: 30_000 })
    t.equal(lock.storeId, first.id)
    slow(700)
    const renewing = lock.renew().catch((e: unknown) => e)
    await sleep(50)
    slow(0)
    await lock.release()
    const renewed = await renewing
    t.ok(renewed instanceof Error, `the renewal failed (${String(renewed)})`)
    await lockIsFree(t, healthy, id, 'the released holder')
    t.ok(lock.expired, 'the released lock counts itself expired')
    await t.rejects(lock.write({ n: 1 }), LockExpiredError)
  },
)

t.test(
  "a waiter's late lock statement does not take the lock after another holder released it",
  async (t) => {
    const { faulty, healthy, slow, id } = await scene(t)
    // The waiter's statement is on its way for 1.5 s; it gives up after 250 ms. Meanwhile
    // another app server takes the lock and releases it: the row is that holder's release,
    // not the waiter's own, when the late statement lands.
    slow(1_500)
    setTimeout(() => slow(0), 300)
    const waiting = outcome(faulty.lockSession(id, { leaseMillis: 30_000, waitMillis: 250 }))
    t.match(await waiting, { code: 'LOCK_TIMEOUT' })
    await sleep(200)
    const other = await healthy.lockSession(id, { waitMillis: 1_000 })
    await other.release()
    await sleep(1_300)
    await lockIsFree(t, healthy, id, 'the waiter that gave up')
  },
)

t.test('an abort in the pause after a timed-out round leaves no lock held', async (t) => {
  const { faulty, healthy, slow, id } = await scene(t)
  slow(700)
  const controller = new AbortController()
  const signal = controller.signal
  // The wait listens on the signal during its round, then during the pause after the round
  // timed out: the abort comes as that pause begins, the round's statement still on its way.
  const listen = signal.addEventListener.bind(signal)
  let listens = 0
  signal.addEventListener = ((...args: Parameters<typeof listen>) => {
    listen(...args)
    if (++listens === 2) controller.abort(new Error('client went away'))
  }) as typeof signal.addEventListener
  const waiting = outcome(
    faulty.lockSession(id, { leaseMillis: 30_000, waitMillis: 10_000, signal }),
  )
  t.match(await waiting, { code: 'LOCK_ABORTED' })
  t.equal(listens, 2, 'aborted in the pause after the first round')
  slow(0)
  await lockIsFree(t, healthy, id, 'the aborted waiter')
})

for (const sweepBetween of [false, true]) {
  t.test(
    `a waiter's late statement, sent while another lease held the lock, does not take it once that lease ran out (${sweepBetween ? 'a sweep' : 'no sweep'} in between)`,
    async (t) => {
      const { faulty, healthy, slow, id } = await scene(t)
      // A holder (that then dies: never releases) has the lock for 600 ms more.
      await healthy.lockSession(id, { leaseMillis: 600 })
      // The waiter's statement is on its way for 1.5 s; the waiter gives up after 250 ms, and
      // its give-back goes out on a path no longer slow: it lands while the lease still holds.
      slow(1_500)
      setTimeout(() => slow(0), 150)
      const waited = await outcome(faulty.lockSession(id, { leaseMillis: 30_000, waitMillis: 250 }))
      t.match(waited, { code: 'LOCK_TIMEOUT' })
      // The dead holder's lease runs out; a sweep (any app server's) deletes lapsed lease rows
      // only long after, so the late statement still finds this one, and takes nothing.
      await sleep(600)
      if (sweepBetween) await healthy.sweep()
      await lockIsFree(t, healthy, id, 'the waiter that gave up')
    },
  )
}
