import { inspect } from 'node:util'
import t from 'tap'
import type { Test } from 'tap'
import {
  LockAbortedError,
  LockExpiredError,
  LockTimeoutError,
  SessionLock,
  VersionConflictError,
} from '../lib/index.js'
import type { SessionManager } from '../lib/index.js'
import { startTestCluster } from './helpers/cluster.js'
import { grayManagers } from './helpers/gray.js'
import {
  idWithOrderPrefix,
  rowsOnStores,
  startManager,
  storeState,
  storesWithLiveCopy,
} from './helpers/manager.js'
import { sleep, waitFor } from './helpers/wait.js'

// Guarantee 5 in docs/guarantees.md (4 of the design brief): two requests that read then write the same
// session can be made safe, with an optimistic check and with a lease lock.
const cluster = await startTestCluster(t, { stores: 3 })
const ROUNDS = 300
const crashTest = cluster.canCrash ? t.test.bind(t) : t.skip.bind(t)

/** Two app servers, each adding 1 to `n` ROUNDS times with `add`, concurrently. */
async function twoServers(
  t: Test,
  add: (manager: SessionManager, id: string) => Promise<unknown>,
): Promise<number> {
  const a = await startManager(t, cluster, { copies: 2 })
  const b = await startManager(t, cluster, { copies: 2 })
  const id = await a.createSession({ n: 0 })
  const run = async (manager: SessionManager): Promise<void> => {
    for (let i = 0; i < ROUNDS; i++) await add(manager, id)
  }
  await Promise.all([run(a), run(b)])
  return (await a.readSession(id))!.n as number
}

t.test('plain read-then-write loses updates (which is why the safe paths matter)', async (t) => {
  const n = await twoServers(t, async (manager, id) => {
    const data = (await manager.readSession(id))!
    await sleep(0)
    await manager.writeSession(id, { n: (data.n as number) + 1 })
  })
  t.ok(n < 2 * ROUNDS, `final count ${n} < ${2 * ROUNDS}: updates were lost`)
})

t.test('updateSession: no update lost', async (t) => {
  const n = await twoServers(t, (manager, id) =>
    manager.updateSession(id, (data) => ({ n: (data!.n as number) + 1 })),
  )
  t.equal(n, 2 * ROUNDS)
})

t.test('withSessionLock: no update lost', async (t) => {
  const n = await twoServers(t, (manager, id) =>
    manager.withSessionLock(id, (data) => ({ n: (data!.n as number) + 1 })),
  )
  t.equal(n, 2 * ROUNDS)
})

t.test(
  'expectedVersion: a write after the session moved on is refused and writes nothing',
  async (t) => {
    const manager = await startManager(t, cluster, { copies: 2 })
    const id = await manager.createSession({ v: 1 })
    const read = (await manager.readSession(id, { withVersion: true }))!
    t.same(read.data, { v: 1 })
    t.type(read.version, 'number')
    const moved = await manager.writeSession(id, { v: 2 }, { expectedVersion: read.version })
    t.ok(moved.version > read.version)
    const error = await manager
      .writeSession(id, { v: 'stale' }, { expectedVersion: read.version })
      .catch((e: unknown) => e)
    t.ok(error instanceof VersionConflictError)
    t.match(error, {
      code: 'VERSION_CONFLICT',
      expectedVersion: read.version,
      actualVersion: moved.version,
    })
    t.same(await manager.readSession(id), { v: 2 }, 'nothing written')
    const created = manager.generateId()
    await manager.writeSession(created, { fresh: true }, { expectedVersion: 0 })
    await t.rejects(
      manager.writeSession(created, { again: true }, { expectedVersion: 0 }),
      VersionConflictError,
    )
    t.same(await storesWithLiveCopy(cluster, created), manager.locate(created).slice(0, 2).sort())
  },
)

t.test('expectedVersion of a session no store holds live: refused, nothing written', async (t) => {
  const first = cluster.stores[0]!
  const versionFound = (write: Promise<unknown>): Promise<unknown> =>
    write.then(
      () => 'written',
      (error: unknown) => (error instanceof VersionConflictError ? error.actualVersion : error),
    )
  const deleteEverywhere = (id: string): Promise<unknown> =>
    Promise.all(
      cluster.stores.map((store) => store.query('DELETE FROM sessions WHERE id = ?', [id])),
    )
  // With the read lease (the default), without it, and with single-store reads.
  for (const options of [{}, { readLeaseMillis: 0 }, { readQuorum: 1 }]) {
    const how = JSON.stringify(options)
    const manager = await startManager(t, cluster, { copies: 2, ...options })
    const never = manager.generateId()
    t.equal(
      await versionFound(manager.writeSession(never, { v: 1 }, { expectedVersion: 1_234_567 })),
      0,
      `${how}: a version never issued is a conflict with no session (version 0)`,
    )
    t.same(await storesWithLiveCopy(cluster, never), [], `${how}: no session created`)

    const expired = manager.generateId()
    const { version } = await manager.writeSession(
      expired,
      { v: 1 },
      { expiresAt: Date.now() + 300 },
    )
    const before = await rowsOnStores(cluster, expired)
    await sleep(400)
    t.equal(
      await versionFound(manager.writeSession(expired, { v: 2 }, { expectedVersion: version })),
      0,
      `${how}: the version of a session that expired is a conflict with no session`,
    )
    t.same(await rowsOnStores(cluster, expired), before, `${how}: the expired copies untouched`)
    t.equal(await manager.readSession(expired), null, `${how}: not brought back`)
    await deleteEverywhere(expired)
    t.equal(
      await versionFound(manager.writeSession(expired, { v: 2 }, { expectedVersion: version })),
      0,
      `${how}: and once swept`,
    )
    t.same(await storesWithLiveCopy(cluster, expired), [], `${how}: nothing created`)
    t.same(
      await manager.updateSession(expired, (data) => ({ ...data, again: true })),
      { again: true },
      `${how}: updateSession starts it afresh (a session that is gone is version 0)`,
    )

    // The store that decides alone lost its copy: the check looks further, as a read does.
    const lost = idWithOrderPrefix(manager, [first.id])
    const written = await manager.writeSession(lost, { v: 1 })
    await first.query('DELETE FROM sessions WHERE id = ?', [lost])
    const moved = await manager.writeSession(lost, { v: 2 }, { expectedVersion: written.version })
    t.same(await manager.readSession(lost), { v: 2 }, `${how}: updated where a read finds it`)
    t.same(
      [...(await rowsOnStores(cluster, lost)).values()].flatMap((row) =>
        row === null ? [] : [Number(row.version)],
      ),
      [moved.version, moved.version],
      `${how}: on two stores`,
    )
  }
})

crashTest(
  'a session that reads as live can be updated after a touch missed one copy',
  async (t) => {
    // Copies of one version then differ in expiry; the one that expired must not decide.
    const [a, b] = [cluster.stores[0]!, cluster.stores[1]!]
    const manager = await startManager(t, cluster, { copies: 2, healthCheckIntervalMillis: 100 })
    const id = idWithOrderPrefix(manager, [a.id, b.id])
    await manager.writeSession(id, { n: 1 }, { ttlSeconds: 3 })

    // a is down during a touch: the touch extends b's copy (and finds none on the third store).
    await a.stop()
    await waitFor('the manager to see a down', () => storeState(manager, a.id) === 'down')
    t.equal(await manager.touch(id, { ttlSeconds: 120 }), true, 'touched')
    await a.start()
    await waitFor('a back in service', () => storeState(manager, a.id) === 'up')

    // a's copy (same version) runs out; b's is live for two more minutes.
    await sleep(3500)
    const read = await manager.readSession(id, { withVersion: true })
    t.same(read?.data, { n: 1 }, 'the session reads as live')

    const updated = await manager
      .updateSession(id, (data) => ({ n: (data!.n as number) + 1 }))
      .catch((error: unknown) => error)
    t.same(updated, { n: 2 }, 'updateSession applies (it failed with a conflict at version 0)')
  },
)

t.test('lease locks: expiry, fencing, readers never blocked, waiting', async (t) => {
  const a = await startManager(t, cluster, { copies: 2 })
  const b = await startManager(t, cluster, { copies: 2 })
  const id = await a.createSession({ owner: 'nobody' })
  const held = await a.lockSession(id, { leaseMillis: 300 })
  t.equal(held.storeId, a.locate(id)[0], 'the lock lives on the first store of the order')
  t.same(await b.readSession(id), { owner: 'nobody' }, 'a reader is not blocked')
  await t.rejects(b.lockSession(id, { waitMillis: 50 }), LockTimeoutError)
  // The holder "dies" (never releases): the lease runs out and another holder takes it.
  await sleep(320)
  const next = await b.lockSession(id, { leaseMillis: 5000, waitMillis: 1000 })
  await t.rejects(
    held.write({ owner: 'stale holder' }),
    LockExpiredError,
    'a stale holder is fenced off',
  )
  await next.read()
  await next.write({ owner: 'b' })
  await next.release()
  t.same(await a.readSession(id), { owner: 'b' })
  const waiter = a.lockSession(id, { waitMillis: 2000 })
  const third = await waiter
  await third.release()
  t.pass('a waiter gets the lock once it is free')
})

t.test(
  'a holder whose lock was taken over after its lease cannot overwrite the newer write',
  async (t) => {
    const a = await startManager(t, cluster, { copies: 2 })
    const id = await a.createSession({ step: 0 })
    const first = await a.lockSession(id, { leaseMillis: 200 })
    await first.read()
    await sleep(220)
    const second = await a.lockSession(id)
    await second.read()
    await second.write({ step: 2 })
    // first's lease has run out: refused before any statement; even with a fresh lease the
    // version it read is behind, so the write would conflict.
    await t.rejects(first.write({ step: 1 }), LockExpiredError)
    t.same(await a.readSession(id), { step: 2 })
    await second.release()
  },
)

t.test('a lock stays on the first store while that store is in service', async (t) => {
  const [first, second] = cluster.storeConfigs().map((config) => config.id) as [string, string]
  // healthy reaches every store directly; faulty reaches the first store through a proxy.
  // Timeouts of one store count toward its circuit: a high failThreshold keeps it in service.
  const gray = (failThreshold: number) =>
    grayManagers(t, cluster, [first], {
      copies: 2,
      queryTimeoutMillis: 200,
      failThreshold,
    })
  const slow = { kind: 'latency', toStoreMillis: 400, toClientMillis: 0 } as const

  t.test('a statement timeout waits for the holder: no second lock', async (t) => {
    const { faulty, healthy, proxies } = await gray(20)
    const id = idWithOrderPrefix(healthy, [first, second])
    const held = await healthy.lockSession(id, { leaseMillis: 30_000 })
    t.equal(held.storeId, first)
    proxies.get(first)!.setFault(slow)
    const error = await faulty.lockSession(id, { waitMillis: 600 }).then(
      async (lock) => {
        await lock.release()
        return lock.storeId
      },
      (e: unknown) => e,
    )
    t.ok(
      error instanceof LockTimeoutError,
      `rejected with LockTimeoutError, not locked on ${String(error)}`,
    )
    t.match(error, { code: 'LOCK_TIMEOUT', cause: { code: 'STORE_TIMEOUT' } })
    t.equal(storeState(faulty, first), 'up', 'the first store stayed in service')
    proxies.get(first)!.setFault({ kind: 'none' })
    await held.release()
  })

  t.test('a lock statement whose answer was late is taken by the same holder', async (t) => {
    const { faulty, healthy, proxies } = await gray(20)
    const id = idWithOrderPrefix(healthy, [first, second])
    proxies.get(first)!.setFault(slow)
    // The first statements commit on the store but answer too late; then the fault ends.
    setTimeout(() => proxies.get(first)!.setFault({ kind: 'none' }), 500)
    const lock = await faulty.lockSession(id, { waitMillis: 5000 })
    t.equal(lock.storeId, first, 'locked on the first store, not the next')
    await t.rejects(healthy.lockSession(id, { waitMillis: 0 }), LockTimeoutError, 'and held')
    await lock.release()
    const next = await healthy.lockSession(id, { waitMillis: 0 })
    t.equal(next.storeId, first, 'released: no stray lock row left behind')
    await next.release()
  })

  t.test('a store taken out of service passes the lock to the next store', async (t) => {
    const { faulty, healthy, proxies } = await gray(2)
    const id = idWithOrderPrefix(healthy, [first, second])
    proxies.get(first)!.setFault({ kind: 'blackhole' })
    const lock = await faulty.lockSession(id, { waitMillis: 5000 })
    t.equal(storeState(faulty, first), 'down', 'after failThreshold timeouts')
    t.equal(lock.storeId, second, 'the lock is on the next store')
    await lock.release()
    proxies.get(first)!.setFault({ kind: 'none' })
  })
})

t.test('a lock released while its renewal is in flight is free afterwards', async (t) => {
  // The renewal's upsert and the release's DELETE go out on two pooled connections; an upsert
  // that reached the store after the DELETE took the released holder's lock back for a lease.
  const first = cluster.stores[0]!
  const { faulty, healthy, proxies } = await grayManagers(t, cluster, [first.id], {
    copies: 2,
    queryTimeoutMillis: 3_000,
    healthCheckIntervalMillis: 3_600_000,
  })
  const proxy = proxies.get(first.id)!
  const id = idWithOrderPrefix(faulty, [first.id])
  await faulty.writeSession(id, { n: 0 })
  const lock = await faulty.lockSession(id, { leaseMillis: 4_000 })
  t.equal(lock.storeId, first.id)
  // The renewal's packets are slow on their connection; the release's are not.
  proxy.setFault({ kind: 'latency', toStoreMillis: 300, toClientMillis: 0 })
  const renewing = lock.renew().catch((error: unknown) => error)
  await sleep(30)
  proxy.setFault({ kind: 'none' })
  await lock.release()
  await renewing
  await sleep(400)
  const rows = await first.query<{ token: string }>(
    "SELECT token FROM sessions_locks WHERE id = ? AND LEFT(token, 1) <> '~'",
    [id],
  )
  t.same(rows, [], 'no lock row of the released holder is left (only its release)')
  const next = await healthy.lockSession(id, { waitMillis: 1_000 }).catch((e: unknown) => e)
  t.notOk(next instanceof LockTimeoutError, 'another holder takes the released lock')
  if (next instanceof SessionLock) await next.release()
})

t.test(
  'two renewals answered out of order: the holder counts on the lease the store keeps',
  async (t) => {
    const [a] = cluster.stores as [(typeof cluster.stores)[number]]
    const { faulty, healthy, proxies } = await grayManagers(t, cluster, [a.id], {
      copies: 2,
      queryTimeoutMillis: 5_000,
      healthCheckIntervalMillis: 3_600_000,
    })
    const proxy = proxies.get(a.id)!
    const id = idWithOrderPrefix(faulty, [a.id])
    await faulty.writeSession(id, { n: 0 })
    const lock = await faulty.lockSession(id, { leaseMillis: 3_000 })
    // Several connections open, so the two renewals below go out on different ones.
    await Promise.all([lock.renew(), lock.renew(), lock.renew(), lock.renew()])
    // The first renewal is slow to reach the store; the second reaches it at once, and its
    // answer is slow: the first lands after the second, and its answer comes back first.
    proxy.setFault({ kind: 'latency', toStoreMillis: 800, toClientMillis: 0 })
    const first = lock.renew()
    await sleep(400)
    proxy.setFault({ kind: 'latency', toStoreMillis: 0, toClientMillis: 1_500 })
    const second = lock.renew()
    await sleep(200)
    proxy.setFault({ kind: 'none' })
    await Promise.all([first, second])
    const rows = await a.query<{ expires_at: number | string }>(
      'SELECT expires_at FROM sessions_locks WHERE id = ?',
      [id],
    )
    const onStore = Number(rows[0]!.expires_at)
    t.ok(
      onStore >= lock.expiresAt,
      `the store's lease lasts at least as long as the holder's (off by ${lock.expiresAt - onStore} ms)`,
    )
    // Between the two expiries another app server would take the lock the holder counts as its own.
    await sleep(Math.max(0, Math.min(onStore, lock.expiresAt) + 50 - Date.now()))
    const other = await healthy.lockSession(id, { waitMillis: 0 }).catch((e: unknown) => e)
    if (other instanceof SessionLock) await other.release()
    t.ok(
      !(other instanceof SessionLock) || lock.expired,
      'no second holder while the first counts the lock as its own',
    )
    await lock.release().catch(() => {})
  },
)

t.test('a change that returns a thenable is awaited, not stored', async (t) => {
  const manager = await startManager(t, cluster, { copies: 2 })
  // A promise of another library (Bluebird, a query builder): not a native Promise.
  const thenable = (data: object) => ({
    then(resolve: (value: object) => void) {
      resolve(data)
    },
  })
  const id = await manager.createSession({ n: 1 })
  t.same(await manager.updateSession(id, () => thenable({ n: 2 }) as never), { n: 2 })
  t.same(await manager.readSession(id), { n: 2 }, 'updateSession')
  await manager.withSessionLock(id, () => thenable(thenable({ n: 3 })) as never)
  t.same(await manager.readSession(id), { n: 3 }, 'withSessionLock, a thenable of a thenable')
  const { proxy: revoked, revoke } = Proxy.revocable({}, {})
  revoke()
  await t.rejects(
    manager.updateSession(id, () => revoked as never),
    { code: 'INVALID_SESSION_DATA' },
    'a revoked Proxy: a typed error',
  )
  await t.rejects(
    manager.updateSession(
      id,
      () =>
        ({ then: (_: unknown, reject: (e: Error) => void) => reject(new Error('no')) }) as never,
    ),
    { message: 'no' },
    "a thenable's failure is the update's",
  )
  t.same(await manager.readSession(id), { n: 3 }, 'nothing else written')
  const endless: { then?: unknown } = {}
  endless.then = (resolve: (value: unknown) => void) => resolve(endless)
  await t.rejects(
    manager.updateSession(id, () => endless as never),
    { code: 'INVALID_SESSION_DATA', message: /nested more than 100 deep/ },
    'a thenable that resolves to itself: a typed error, not a stack overflow',
  )
  t.same(await manager.readSession(id), { n: 3 }, 'nothing written')
})

t.test('updateSession refuses a bad expiry before it reads or runs the change', async (t) => {
  const manager = await startManager(t, cluster, { copies: 2 })
  const id = await manager.createSession({ n: 0 })
  for (const options of [
    { ttlSeconds: -5 },
    { ttlSeconds: Number.NaN },
    { expiresAt: Number.POSITIVE_INFINITY },
    { ttlSeconds: 60, expiresAt: Date.now() + 60_000 },
  ]) {
    let calls = 0
    const change = () => ({ n: ++calls })
    await t.rejects(manager.updateSession(id, change, options), { code: 'INVALID_OPTION' })
    t.equal(calls, 0, `the change did not run for ${JSON.stringify(options)}`)
  }
})

t.test('updateSession uses the expiry it checked, read once', async (t) => {
  const manager = await startManager(t, cluster, { copies: 2 })
  const id = await manager.createSession({ n: 0 })
  let reads = 0
  const options = {
    get ttlSeconds(): unknown {
      return reads++ === 0 ? 30 : 'not-a-number'
    },
  }
  let calls = 0
  const written = await manager.updateSession(id, () => ({ n: ++calls }), options as never)
  t.same(written, { n: 1 }, 'written, with the change run once')
  const copies = (await manager.inspectSession(id)).stores.flatMap((store) => store.copy ?? [])
  t.ok(copies.length > 0, 'stored')
  for (const { expiresAt } of copies) {
    t.ok(expiresAt > Date.now() + 20_000 && expiresAt <= Date.now() + 30_000, 'the ttl checked')
  }
})

t.test('a lock keeps its token out of util.inspect and JSON', async (t) => {
  const manager = await startManager(t, cluster, { copies: 2 })
  const id = await manager.createSession({ n: 0 })
  const lock = await manager.lockSession(id)
  t.teardown(() => lock.release())
  const tokens: string[] = []
  for (const store of cluster.stores) {
    const rows = await store.query<{ token: string }>(
      'SELECT token FROM sessions_locks WHERE id = ?',
      [id],
    )
    tokens.push(...rows.map((row) => String(row.token)))
  }
  t.equal(tokens.length, 1, 'one store holds the lock and its token')
  for (const shown of [inspect(lock, { showHidden: true, depth: 5 }), JSON.stringify(lock)]) {
    t.notMatch(shown, tokens[0]!, `not shown: ${shown.slice(0, 60)}`)
  }
})

t.test('closing ends a lock wait', async (t) => {
  const holder = await startManager(t, cluster, { copies: 2 })
  const waiter = await startManager(t, cluster, { copies: 2 })
  const id = await holder.createSession({ n: 0 })
  const held = await holder.lockSession(id, { leaseMillis: 60_000 })
  const waiting = waiter.lockSession(id, { waitMillis: 60_000 }).catch((e: unknown) => e)
  await sleep(200)
  const closed = waiter.close().then(() => 'closed')
  let timer: NodeJS.Timeout | undefined
  const late = new Promise((resolve) => (timer = setTimeout(resolve, 15_000, 'still waiting')))
  const first = await Promise.race([closed, late]).finally(() => clearTimeout(timer))
  t.equal(first, 'closed', 'close() did not wait for the lock wait')
  t.match(await waiting, { code: 'MANAGER_CLOSED' }, 'the wait rejects')
  await held.release()
  const next = await holder.lockSession(id, { waitMillis: 0 })
  t.pass('the lock is free once its holder released it')
  await next.release()
})

t.test('a signal ends a lock wait: LOCK_ABORTED, and no lock is left held', async (t) => {
  const holder = await startManager(t, cluster, { copies: 2 })
  const waiter = await startManager(t, cluster, { copies: 2 })
  const id = await holder.createSession({ n: 0 })
  const held = await holder.lockSession(id, { leaseMillis: 60_000 })
  const controller = new AbortController()
  const started = Date.now()
  const waiting = waiter
    .lockSession(id, { waitMillis: 60_000, signal: controller.signal })
    .catch((e: unknown) => e)
  await sleep(200)
  controller.abort(new Error('the client went away'))
  const error = await waiting
  t.ok(Date.now() - started < 10_000, 'the wait ended at the abort, not after waitMillis')
  t.match(error, { code: 'LOCK_ABORTED', cause: { message: 'the client went away' } })
  t.type(error, LockAbortedError)
  await held.release()

  // Aborted already: refused before any statement. withSessionLock takes the signal too.
  await t.rejects(waiter.lockSession(id, { signal: AbortSignal.abort() }), { code: 'LOCK_ABORTED' })
  let ran = false
  await t.rejects(
    waiter.withSessionLock(id, () => void (ran = true), { signal: AbortSignal.abort() }),
    { code: 'LOCK_ABORTED' },
  )
  t.notOk(ran, 'the change did not run')
  const next = await holder.lockSession(id, { waitMillis: 0 })
  t.pass('no aborted wait left the lock held')
  await next.release()
  await t.rejects(waiter.lockSession(id, { signal: 'stop' as never }), {
    code: 'INVALID_OPTION',
    message: /signal/,
  })
})
