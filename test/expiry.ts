import t from 'tap'
import type { SweepOptions, SweepResult } from '../lib/index.js'
import { pauseAfterBatch } from '../lib/maintenance/sweeper.js'
import { startTestCluster } from './helpers/cluster.js'
import { rowsOnStores, startManager } from './helpers/manager.js'
import { sleep, waitFor } from './helpers/wait.js'

const cluster = await startTestCluster(t, { stores: 3 })

t.test('reads never return an expired session, to the millisecond', async (t) => {
  const manager = await startManager(t, cluster, { copies: 2, ttlSeconds: 1 })
  const id = await manager.createSession({ short: true })
  const rows = await rowsOnStores(cluster, id)
  const expiresAt = [...rows.values()].find((row) => row !== null)!.expires_at
  t.ok(Math.abs(expiresAt - (Date.now() + 1000)) < 500, 'expiry stored in milliseconds')
  t.same(await manager.readSession(id), { short: true })
  await sleep(Math.max(0, expiresAt - Date.now()) + 5)
  t.equal(await manager.readSession(id), null, 'a few ms past its expiry it is gone')
  t.equal(await manager.touch(id), false, 'an expired session cannot be touched back to life')
  t.equal(await manager.readSession(id), null)
})

t.test(
  'touch extends the expiry without rewriting data, and never creates a session',
  async (t) => {
    const manager = await startManager(t, cluster, { copies: 2, ttlSeconds: 2 })
    const id = await manager.createSession({ n: 1 })
    const before = await rowsOnStores(cluster, id)
    await sleep(1200)
    t.equal(await manager.touch(id), true)
    const after = await rowsOnStores(cluster, id)
    for (const storeId of manager.locate(id).slice(0, 2)) {
      const [b, a] = [before.get(storeId)!, after.get(storeId)!]
      t.ok(a.expires_at - b.expires_at >= 1000, `${storeId}: expiry moved forward`)
      t.equal(a.version, b.version, `${storeId}: same version (data not rewritten)`)
      t.same(a.data, b.data)
    }
    await sleep(1200)
    t.same(await manager.readSession(id), { n: 1 }, 'alive past its first expiry')
    t.equal(await manager.touch(id, { ttlSeconds: 60 }), true, 'per-call ttl')

    const missing = manager.generateId()
    t.equal(await manager.touch(missing), false, 'a missing session is not created')
    t.same([...(await rowsOnStores(cluster, missing)).values()].filter(Boolean), [])
    await manager.destroySession(id)
    t.equal(await manager.touch(id), false, 'a destroyed session is not revived')
    t.equal(await manager.readSession(id), null)
  },
)

t.test('a per-session timeout sticks across writes and touches', async (t) => {
  const manager = await startManager(t, cluster, { copies: 2, ttlSeconds: 3600 })
  const id = await manager.createSession({ v: 1 })
  t.equal(await manager.getSessionTimeout(id), 3600, 'the default')
  t.equal(await manager.setSessionTimeout(id, 2), true)
  t.equal(await manager.getSessionTimeout(id), 2)
  await manager.writeSession(id, { v: 2 })
  t.equal(await manager.getSessionTimeout(id), 2, 'kept by a write')
  const rows = await rowsOnStores(cluster, id)
  const expiresAt = rows.get(manager.locate(id)[0]!)!.expires_at
  t.ok(expiresAt - Date.now() <= 2000, 'the write used the session timeout, not the default')
  await manager.writeSession(id, { v: 3 }, { ttlSeconds: 600 })
  t.equal(
    await manager.getSessionTimeout(id),
    2,
    'a per-call ttl does not replace the session timeout',
  )
  t.equal(
    await manager.setSessionTimeout(manager.generateId(), 5),
    false,
    'no session, nothing set',
  )
  t.equal(await manager.getSessionTimeout(manager.generateId()), null)
  await manager.writeSession(id, { v: 4 })
  await sleep(2100)
  t.equal(await manager.readSession(id), null, 'expired after its own timeout')
})

t.test('sweep deletes expired sessions and spent tombstones in batches, per store', async (t) => {
  // A table of its own, so that sessions left by the other tests do not count.
  const table = 'sweep_test'
  // Swept as soon as they expire: no grace.
  const manager = await startManager(t, cluster, {
    copies: 2,
    tombstoneTtlSeconds: 1,
    table,
    sweepGraceSeconds: 0,
  })
  const expiring = await Promise.all(
    Array.from({ length: 30 }, (_, i) => manager.createSession({ i }, { ttlSeconds: 1 })),
  )
  const lasting = await Promise.all(
    Array.from({ length: 10 }, (_, i) => manager.createSession({ i })),
  )
  const destroyed = await manager.createSession({ bye: true }, { ttlSeconds: 1 })
  await manager.destroySession(destroyed)
  await sleep(1100)
  // Counted, not assumed: a write that passes over a slow store also lands a copy on the next
  // one, so a busy machine can leave a third copy of a session.
  let expiredRows = 0
  for (const id of [...expiring, destroyed]) {
    expiredRows += [...(await rowsOnStores(cluster, id, table)).values()].filter(Boolean).length
  }
  t.ok(
    expiredRows >= 30 * 2 + 3,
    'two copies of each, and the tombstones (every store a read may ask)',
  )
  const progress: number[] = []
  const result = await manager.sweep({ batchSize: 7, onProgress: (p) => progress.push(p.deleted) })
  t.equal(result.deleted, expiredRows, 'every copy of each expired session, and the tombstones')
  t.same(result.stores.map((s) => s.storeId).sort(), cluster.stores.map((s) => s.id).sort())
  t.ok(progress.length > 3, 'progress reported per batch')
  for (const id of [...expiring, destroyed]) {
    t.same(
      [...(await rowsOnStores(cluster, id, table)).values()].filter(Boolean),
      [],
      'no row left',
    )
  }
  for (const [i, id] of lasting.entries()) t.same(await manager.readSession(id), { i })
  t.equal((await manager.sweep()).deleted, 0, 'nothing left to sweep')
})

t.test('app servers sweeping at once do not sweep the same store side by side', async (t) => {
  const table = 'sweep_pair_test'
  const options = { copies: 3, table, sweepIntervalSeconds: 0, sweepGraceSeconds: 0 }
  const first = await startManager(t, cluster, options)
  const second = await startManager(t, cluster, options)
  const ids = await Promise.all(
    Array.from({ length: 150 }, (_, i) => first.createSession({ i }, { ttlSeconds: 1 })),
  )
  await sleep(1100)
  let expiredRows = 0
  for (const id of ids) {
    expiredRows += [...(await rowsOnStores(cluster, id, table)).values()].filter(Boolean).length
  }
  // The second app server starts sweeping once the first has swept a batch on every store.
  const started = new Set<string>()
  let secondSweep: Promise<SweepResult> | undefined
  const firstResult = await first.sweep({
    batchSize: 5,
    onProgress: ({ storeId }) => {
      started.add(storeId)
      if (started.size === cluster.stores.length) secondSweep ??= second.sweep({ batchSize: 5 })
    },
  })
  const secondResult = await (secondSweep as Promise<SweepResult>)
  t.equal(firstResult.deleted, expiredRows, 'the first sweep deleted every expired copy')
  t.equal(secondResult.deleted, 0, 'the second deleted nothing beside it')
  t.ok(
    secondResult.stores.some((store) => store.sweptElsewhere === true),
    'the second skipped the stores the first was sweeping',
  )
  t.ok(
    secondResult.stores.every((store) => store.error === undefined),
    'a skipped store is not an error',
  )
  const again = await second.sweep()
  t.ok(
    again.stores.every((store) => store.sweptElsewhere === undefined),
    'the first released every store when it finished',
  )
})

t.test('a sweep lease left by a sweeper that died stops no one once it runs out', async (t) => {
  const table = 'sweep_lease_test'
  const manager = await startManager(t, cluster, { copies: 2, table, sweepIntervalSeconds: 0 })
  const [dead, live] = cluster.stores
  // Lease rows as a sweeper that died left them: one ran out, one still has a minute to go.
  await dead!.query(
    `REPLACE INTO \`${table}_locks\` (id, token, expires_at) VALUES ('~sweep', 'gone', ?)`,
    [Date.now() - 1],
  )
  await live!.query(
    `REPLACE INTO \`${table}_locks\` (id, token, expires_at) VALUES ('~sweep', 'gone', ?)`,
    [Date.now() + 60_000],
  )
  const result = await manager.sweep()
  const byStore = new Map(result.stores.map((store) => [store.storeId, store]))
  t.equal(byStore.get(dead!.id)?.sweptElsewhere, undefined, 'a lease that ran out is taken over')
  t.equal(byStore.get(live!.id)?.sweptElsewhere, true, 'a live lease is respected')
  const [left] = await dead!.query(
    `SELECT COUNT(*) AS n FROM \`${table}_locks\` WHERE LEFT(token, 1) <> '~'`,
  )
  t.equal(Number(left.n), 0, 'the taken-over lease was released when the sweep ended')
})

t.test('a sweep paces itself to its dutyCycle, checked before any statement', async (t) => {
  for (const [batchMillis, dutyCycle, pauseMillis] of [
    [40, 0.2, 160],
    [40, 1, 0],
    [10, 0.5, 10],
    [0, 0.1, 0],
    [-3, 0.5, 0], // a clock step backwards never makes a negative pause
  ] as const) {
    t.equal(
      Math.round(pauseAfterBatch(batchMillis, dutyCycle)),
      pauseMillis,
      `${batchMillis} ms at ${dutyCycle}`,
    )
  }
  const manager = await startManager(t, cluster, { copies: 2 })
  const before = manager.stats().stores.reduce((sum, store) => sum + store.operations, 0)
  for (const dutyCycle of [0, -0.5, 1.5, Number.NaN, '0.5', null]) {
    await t.rejects(
      manager.sweep({ dutyCycle } as unknown as SweepOptions),
      { code: 'INVALID_OPTION', message: /^dutyCycle option must be a number above 0/ },
      `dutyCycle ${String(dutyCycle)}`,
    )
  }
  const after = manager.stats().stores.reduce((sum, store) => sum + store.operations, 0)
  t.equal(after, before, 'no statement was sent')
})

t.test('close() stops a paced sweep after its current batch', async (t) => {
  const table = 'sweep_close_test'
  const manager = await startManager(t, cluster, {
    copies: 2,
    table,
    sweepIntervalSeconds: 0,
    sweepGraceSeconds: 0,
  })
  await Promise.all(
    Array.from({ length: 60 }, (_, i) => manager.createSession({ i }, { ttlSeconds: 1 })),
  )
  await sleep(1100)
  let closing: Promise<void> | undefined
  // A hundredfold pause after each batch: without close() this sweep would take many seconds.
  const result = await manager.sweep({
    batchSize: 5,
    dutyCycle: 0.01,
    onProgress: () => {
      closing ??= manager.close()
    },
  })
  await closing
  t.ok(result.deleted > 0, 'the sweep had begun')
  t.ok(result.deleted < 60 * 2, `it stopped early (${result.deleted} rows deleted)`)
  t.ok(
    result.stores.every((store) => store.error === undefined),
    'stopping is not an error',
  )
})

t.test('sweepIntervalSeconds sweeps in the background until close()', async (t) => {
  const manager = await startManager(t, cluster, {
    copies: 2,
    sweepIntervalSeconds: 1,
    sweepGraceSeconds: 0,
  })
  const id = await manager.createSession({}, { ttlSeconds: 1 })
  await waitFor('the background sweep to delete the expired session', async () =>
    [...(await rowsOnStores(cluster, id)).values()].every((row) => row === null),
  )
  t.pass('swept without being asked')
})

t.test(
  'expiresAt sets an absolute expiry to the millisecond (a cookie maxAge of 5 ms works)',
  async (t) => {
    const manager = await startManager(t, cluster, { copies: 2 })
    const id = manager.generateId()
    const expiresAt = new Date(Date.now() + 500)
    await manager.writeSession(id, { brief: true }, { expiresAt })
    t.same(await manager.readSession(id), { brief: true })
    const touchedTo = expiresAt.getTime() + 1000
    t.equal(await manager.touch(id, { expiresAt: touchedTo }), true)
    await sleep(Math.max(0, expiresAt.getTime() - Date.now()) + 100)
    t.same(await manager.readSession(id), { brief: true }, 'touched past the first expiry')
    await sleep(Math.max(0, touchedTo - Date.now()) + 5)
    t.equal(await manager.readSession(id), null, 'gone just after the touched expiry')

    const five = manager.generateId()
    await manager.writeSession(five, { maxAge: 5 }, { expiresAt: Date.now() + 5 })
    await sleep(10)
    t.equal(await manager.readSession(five), null, 'gone 5 ms later')
    await t.rejects(manager.writeSession(id, {}, { ttlSeconds: 5, expiresAt: Date.now() }), {
      code: 'INVALID_OPTION',
    })
    await t.rejects(manager.writeSession(id, {}, { expiresAt: new Date('nope') }), {
      code: 'INVALID_OPTION',
    })
  },
)

t.test('an expired session not yet swept is no session to a compare-and-set', async (t) => {
  for (const readLeaseMillis of [500, 0]) {
    const manager = await startManager(t, cluster, { copies: 2, readLeaseMillis })
    const setting = readLeaseMillis === 0 ? 'by quorum' : 'on the lease'
    const visit = (data: Record<string, unknown> | null) => ({
      visits: Number(data?.visits ?? 0) + 1,
    })
    const updated = await manager.createSession({ visits: 5 }, { ttlSeconds: 1 })
    const locked = await manager.createSession({ visits: 5 }, { ttlSeconds: 1 })
    const expected = await manager.createSession({ visits: 5 }, { ttlSeconds: 1 })
    const live = await manager.createSession({ visits: 5 })
    await sleep(1100)
    t.equal(await manager.readSession(updated), null, `${setting}: expired`)
    t.same(
      await manager.updateSession(updated, visit, { retries: 2 }),
      { visits: 1 },
      `${setting}: updateSession starts it anew`,
    )
    t.same(await manager.readSession(updated), { visits: 1 })
    t.same(
      await manager.withSessionLock(locked, visit),
      { visits: 1 },
      `${setting}: so does a lock holder's write`,
    )
    t.same(await manager.readSession(locked), { visits: 1 })
    await manager.writeSession(expected, { visits: 1 }, { expectedVersion: 0 })
    t.same(await manager.readSession(expected), { visits: 1 }, `${setting}: expectedVersion 0`)
    await t.rejects(
      manager.writeSession(live, { visits: 1 }, { expectedVersion: 0 }),
      { code: 'VERSION_CONFLICT' },
      `${setting}: a live session is still one`,
    )
    t.same(await manager.readSession(live), { visits: 5 })
  }
})

t.test('a sweep deletes lease locks that ran out ten minutes ago, and no lock held', async (t) => {
  const table = 'sweep_locks_test'
  const manager = await startManager(t, cluster, { copies: 2, table, sweepIntervalSeconds: 0 })
  const [dead, held] = await Promise.all([manager.createSession({}), manager.createSession({})])
  // A holder that died: its lock is never released, and its lease runs out.
  const lost = await manager.lockSession(dead, { leaseMillis: 100 })
  const live = await manager.lockSession(held, { leaseMillis: 60_000 })
  const lockRows = async (id: string): Promise<number> => {
    let rows = 0
    for (const store of cluster.stores) {
      const found = await store.query(`SELECT id FROM \`${table}_locks\` WHERE id = ?`, [id])
      rows += found.length
    }
    return rows
  }
  t.equal(await lockRows(dead), 1, 'the dead holder left its lock row')
  await sleep(200)
  await manager.sweep()
  // Kept as long as releases are: a lock statement sent before the lease ended must still find
  // it (and take nothing), and a sweeper whose clock runs ahead must not judge a live one.
  t.equal(await lockRows(dead), 1, 'a lease that ran out a moment ago stays')
  await cluster
    .store(lost.storeId)
    .query(`UPDATE \`${table}_locks\` SET expires_at = ? WHERE id = ?`, [
      Date.now() - 11 * 60_000,
      dead,
    ])
  await manager.sweep()
  t.equal(await lockRows(dead), 0, 'one that ran out over ten minutes ago is gone')
  t.equal(await lockRows(held), 1, 'the held lock stays')
  t.notOk(live.expired)
  await live.release()
  await lost.release().catch(() => {})
  // A release keeps its row for ten minutes (a lock statement of the released holder still on
  // its way must find it), then a sweep deletes it.
  const store = cluster.store(live.storeId)
  await store.query(
    `INSERT INTO \`${table}_locks\` (id, token, expires_at) VALUES ('old-release', '~t', ?)`,
    [-(Date.now() - 11 * 60_000)],
  )
  await manager.sweep()
  t.equal(await lockRows(held), 1, 'a recent release stays')
  t.equal(await lockRows('old-release'), 0, 'one older than ten minutes goes')
})

for (const call of ['writeSession', 'updateSession'] as const) {
  t.test(
    `an expiresAt long past ends the session for every app server, clocks behind too (${call})`,
    async (t) => {
      const writer = await startManager(t, cluster, { copies: 2 })
      const behind = await startManager(t, cluster, {
        copies: 2,
        clock: { now: () => Date.now() - 2000 },
      })
      const id = await writer.createSession({ v: 1 })
      // updateSession runs with the time it checked: a Date is not read again at the write.
      if (call === 'writeSession') await writer.writeSession(id, { v: 2 }, { expiresAt: 0 })
      else await writer.updateSession(id, () => ({ v: 2 }), { expiresAt: new Date(0) })
      t.equal(await writer.readSession(id), null, 'ended for the writer')
      t.equal(await behind.readSession(id), null, 'and for an app server whose clock is 2 s behind')
      const [row] = [...(await rowsOnStores(cluster, id)).values()].filter(Boolean)
      const stored = Number(row?.expires_at)
      t.ok(
        stored <= Date.now() - 149_000 && stored > Date.now() - 160_000,
        'stored half the sweep grace (150 s) before the write, not at 0',
      )
    },
  )
}
