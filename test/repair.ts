import t from 'tap'
import { startTestCluster } from './helpers/cluster.js'
import {
  allStatementsSent,
  createManager,
  idWithOrderPrefix,
  rowsOnStores,
  startManager,
  storesOf,
  storeState,
  storesWithLiveCopy,
} from './helpers/manager.js'
import { grayManagers } from './helpers/gray.js'
import { logoutMissedPastHintWindow } from './helpers/missed-logout.js'
import { sleep, waitFor } from './helpers/wait.js'

const cluster = await startTestCluster(t, { stores: 4 })
const crashTest = cluster.canCrash ? t.test.bind(t) : t.skip.bind(t)

crashTest(
  'repair puts the newest copy where it belongs, removes stale and extra copies, and is idempotent',
  async (t) => {
    const writer = await startManager(t, cluster, {
      copies: 2,
      healthCheckIntervalMillis: 3_600_000,
    })
    const ids = await Promise.all(
      Array.from({ length: 200 }, (_, i) => writer.createSession({ i, v: 1 })),
    )
    const down = cluster.stores[0]!
    await down.kill()
    await Promise.all(ids.map((id, i) => writer.writeSession(id, { i, v: 2 })))
    const destroyed = ids.filter((_, i) => i % 10 === 0)
    await Promise.all(destroyed.map((id) => writer.destroySession(id)))
    await writer.close()
    await down.start() // back with its v1 copies and without the destroys
    // Simulate lost hints, so that only repair can fix the returning store.
    for (const store of cluster.stores) await store.query('DELETE FROM sessions_hints')
    const onDown = ids.filter((id) => writer.locate(id).slice(0, 2).includes(down.id))
    t.ok(onDown.length > 50, `${onDown.length} sessions had a copy on the store that was down`)

    const manager = createManager(t, cluster, { copies: 2 })
    const progress: number[] = []
    const first = await manager.repair({
      batchSize: 37,
      onProgress: (p) => progress.push(p.scanned),
    })
    t.ok(first.copied >= onDown.length, `copied ${first.copied}`)
    t.ok(first.removed > 0, `removed ${first.removed}`)
    t.equal(first.failed, 0)
    t.ok(
      progress.length > 4 && progress.every((n, i) => i === 0 || n >= progress[i - 1]!),
      'progress grows batch by batch',
    )

    for (const [i, id] of ids.entries()) {
      const wanted = manager.locate(id).slice(0, 2).sort()
      if (destroyed.includes(id)) {
        t.equal(await manager.readSession(id), null)
        t.same(await storesWithLiveCopy(cluster, id), [], `no live copy of destroyed ${i}`)
        const rows = await rowsOnStores(cluster, id)
        const tombstones = [...rows]
          .filter(([, row]) => row?.deleted === 1)
          .map(([storeId]) => storeId)
          .sort()
        t.same(tombstones, wanted, `tombstones exactly on the first two stores of ${i}`)
      } else {
        t.same(await manager.readSession(id), { i, v: 2 })
        t.same(
          await storesWithLiveCopy(cluster, id),
          wanted,
          `copies exactly on the first two stores of ${i}`,
        )
      }
    }
    const second = await manager.repair()
    t.same(
      { copied: second.copied, removed: second.removed, failed: second.failed },
      { copied: 0, removed: 0, failed: 0 },
      'a second run changes nothing',
    )
    let rows = 0
    for (const store of cluster.stores) {
      rows += (await store.query<{ n: number }>('SELECT COUNT(*) AS n FROM sessions'))[0]!.n
    }
    t.equal(second.scanned, rows, 'it scans every row once')
  },
)

t.test('repair clears tombstones whose time is up, everywhere', async (t) => {
  // A tombstone lives until the later of the destroyed copy's expiry and tombstoneTtlSeconds.
  const manager = await startManager(t, cluster, { copies: 2, tombstoneTtlSeconds: 1 })
  const id = await manager.createSession({ x: 1 }, { ttlSeconds: 1 })
  await manager.destroySession(id)
  // A tombstone on every store a read may ask (maxReadStores: 3 here).
  t.equal([...(await rowsOnStores(cluster, id)).values()].filter((row) => row !== null).length, 3)
  await sleep(1100)
  const result = await manager.repair()
  t.ok(result.removed >= 3, `removed ${result.removed}`)
  t.same(
    [...(await rowsOnStores(cluster, id)).values()].filter((row) => row !== null),
    [],
    'no row left',
  )
})

t.test('a repair whose scanned store fails to read a batch does not report done', async (t) => {
  const [a, b] = [cluster.stores[0]!, cluster.stores[1]!]
  const manager = await startManager(t, cluster, { copies: 2, sweepIntervalSeconds: 0 })
  // A session on a and b whose copy on b was lost: only a's scan can find it.
  const id = idWithOrderPrefix(manager, [a.id, b.id])
  await manager.writeSession(id, { v: 1 })
  await b.query('DELETE FROM sessions WHERE id = ?', [id])
  // a lists its sessions, then its read of the batch holding this one fails once.
  const storeA = storesOf(manager).find((store) => store.id === a.id)!
  const readMany = storeA.readMany.bind(storeA)
  let failures = 0
  storeA.readMany = async (ids) => {
    if (failures === 0 && ids.includes(id)) {
      failures++
      throw Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' })
    }
    return readMany(ids)
  }
  t.teardown(() => void (storeA.readMany = readMany))
  const result = await manager.repair()
  t.equal(failures, 1, 'the read failed once')
  t.notOk(result.done, 'not done: the batch was not repaired')
  t.ok(result.failed > 0, 'its sessions count as failed')
  const second = await manager.repair()
  t.ok(second.done, 'the next repair finishes')
  t.ok((await rowsOnStores(cluster, id)).get(b.id), 'and puts the copy back on b')
})

t.test('repair and sweep refuse bad options before any statement', async (t) => {
  const manager = await startManager(t, cluster, {
    copies: 2,
    healthCheckIntervalMillis: 3_600_000,
  })
  const expired = await Promise.all(
    Array.from({ length: 3 }, () => manager.createSession({ n: 1 }, { ttlSeconds: 1 })),
  )
  await sleep(1100)
  const sent = (): number => allStatementsSent(manager)
  const before = sent()
  const secret = 'do-not-echo'
  const cases: [string, () => Promise<unknown>][] = [
    ['sweep onProgress', () => manager.sweep({ onProgress: secret as never })],
    ['sweep batchSize', () => manager.sweep({ batchSize: 0 })],
    ['sweep dutyCycle', () => manager.sweep({ dutyCycle: Number.NaN })],
    ['repair onProgress', () => manager.repair({ onProgress: secret as never })],
    ['repair batchSize', () => manager.repair({ batchSize: -1 })],
    ['repair signal', () => manager.repair({ signal: secret as never })],
    ['repair resumeFrom', () => manager.repair({ resumeFrom: secret as never })],
    [
      'repair resumeFrom naming no store',
      () => manager.repair({ resumeFrom: { storeId: secret, afterId: '' } }),
    ],
  ]
  for (const [name, attempt] of cases) {
    const error = await attempt().catch((e: unknown) => e)
    t.match(error, { code: 'INVALID_OPTION' }, name)
    t.notMatch(String((error as Error).message), secret, `${name}: the value is not shown`)
  }
  t.equal(sent(), before, 'no statement was sent')
  const rows = await rowsOnStores(cluster, expired[0]!)
  t.ok(
    [...rows.values()].some((row) => row !== null),
    'the expired sessions are still there',
  )
})

t.test('repair and sweep run with the option values they checked', async (t) => {
  const manager = await startManager(t, cluster, {
    copies: 2,
    healthCheckIntervalMillis: 3_600_000,
    sweepGraceSeconds: 0,
  })
  await Promise.all(Array.from({ length: 6 }, (_, i) => manager.createSession({ i })))
  // Rows for the sweep to delete, so that it reports progress.
  await Promise.all(Array.from({ length: 6 }, () => manager.createSession({}, { ttlSeconds: 1 })))
  await sleep(1100)
  /** Options whose `key` answers its first `good` reads with `value`, and later ones with `bad`. */
  const changing = (key: string, good: number, value: unknown, bad: unknown): object => {
    let reads = 0
    return Object.defineProperty({ batchSize: 2 }, key, {
      get: () => (reads++ < good ? value : bad),
      enumerable: true,
    })
  }
  const progress = changing('onProgress', 2, () => {}, 'not-a-function')
  await t.resolves(manager.repair(progress), 'repair: the onProgress checked is called')
  const swept = await manager.sweep(changing('onProgress', 2, () => {}, 'not-a-function'))
  t.ok(swept.deleted > 0, 'sweep too')
  t.same(
    swept.stores.flatMap((store) => store.error ?? []),
    [],
    'no store failed at its onProgress',
  )
  const first = cluster.stores[0]!.id
  const resume = changing('resumeFrom', 1, { storeId: first, afterId: '' }, { storeId: 'none' })
  const resumed = await manager.repair(resume)
  t.ok(resumed.scanned > 0, 'repair: the walk resumes where the checked resumeFrom says')
})

crashTest(
  'a repair whose removal of a live copy fails keeps the tombstones that supersede it',
  async (t) => {
    // As in expiry-gray.ts: a missed a logout past the hint window and keeps v1 (an hour),
    // while the tombstones elsewhere end in 1 s; a repair then removes a's v1 and clears them.
    const [a, b] = [cluster.stores[0]!, cluster.stores[1]!]
    const { writer, id } = await logoutMissedPastHintWindow(t, cluster, [a, b])
    await a.start()
    await waitFor('a to be up (behind: the marker)', () =>
      writer.stats().stores.some((store) => store.id === a.id && store.state === 'up'),
    )
    t.equal(await writer.readSession(id), null, 'logged out before the repair')
    // The removal of a's v1 fails once, as a connection reset would.
    const storeA = storesOf(writer).find((store) => store.id === a.id)!
    const removeCopy = storeA.removeCopy.bind(storeA)
    let failures = 0
    storeA.removeCopy = async (sessionId, version, expiresAt) => {
      if (sessionId === id && failures++ === 0) {
        throw Object.assign(new Error('write ECONNRESET'), { code: 'ECONNRESET' })
      }
      return removeCopy(sessionId, version, expiresAt)
    }
    t.teardown(() => void (storeA.removeCopy = removeCopy))
    const first = await writer.repair()
    t.equal(first.done, false, 'the repair does not report done')
    const rows = [...(await rowsOnStores(cluster, id)).values()]
    t.ok(
      rows.some((row) => row?.deleted === 1),
      'a tombstone stays while the live copy it supersedes does',
    )
    t.equal(await writer.readSession(id), null, 'the session stays logged out')
    t.equal((await writer.repair()).done, true, 'a second repair finishes')
    t.equal(await writer.readSession(id), null, 'and the session is still logged out')
    t.same(
      rows.length > 0 && [...(await rowsOnStores(cluster, id)).values()].filter(Boolean),
      [],
      'no row left',
    )
  },
)

// A gray fault: the repairer reaches a through a fault proxy, the other app server directly.
const grayQuick = {
  copies: 2,
  queryTimeoutMillis: 300,
  healthCheckIntervalMillis: 100,
  sweepGraceSeconds: 0,
  sweepIntervalSeconds: 0,
}
t.test(
  'a repair by an app server that cannot reach one of the first stores leaves no extra copy that outlives a newer write',
  async (t) => {
    // `repairer` reaches a through a fault proxy (a gray fault: the other app server reaches a).
    const [a, b, c] = [cluster.stores[0]!, cluster.stores[1]!, cluster.stores[2]!]
    const { faulty: repairer, healthy, proxies } = await grayManagers(t, cluster, [a.id], grayQuick)
    const id = idWithOrderPrefix(healthy, [a.id, b.id, c.id])
    await healthy.writeSession(id, { v: 1 })
    proxies.get(a.id)!.setFault({ kind: 'blackhole' })
    await waitFor('a to be down for the repairer', () => storeState(repairer, a.id) === 'down')
    const result = await repairer.repair()
    t.notOk(result.done, 'the repair says it did not finish (a was not scanned)')
    const liveOnC = (await rowsOnStores(cluster, id)).get(c.id)
    t.equal(liveOnC ?? null, null, 'c, past the first two stores, got no copy from the repair')

    // The other app server writes v2, ending the session in 1 s; it lands on a and b (no miss).
    const v2 = await healthy.writeSession(id, { v: 2 }, { ttlSeconds: 1 })
    t.same(v2.storeIds, [a.id, b.id])
    await sleep(1100)
    await healthy.sweep()
    t.equal(await healthy.readSession(id), null, 'the session is over: v1 does not come back')
  },
)
