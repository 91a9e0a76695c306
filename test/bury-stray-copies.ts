import t from 'tap'
import type { Test } from 'tap'
import { startTestCluster } from './helpers/cluster.js'
import { grayManagers } from './helpers/gray.js'
import {
  idWithOrderPrefix,
  rowsOnStores,
  storeState,
  storesOf,
  storesWithLiveCopy,
} from './helpers/manager.js'
import { waitFor } from './helpers/wait.js'

// A late write (sent before a logout, landing after it) is dropped where it meets a tombstone,
// and the copies it created elsewhere are buried. One it cannot bury (the store went dark for
// this app server right after taking the write) is on a store past the destroy's reach
// (maxReadStores): newer than every tombstone, it must not outlive them once they are swept.
const cluster = await startTestCluster(t, { stores: 5 })
type FiveIds = [string, string, string, string, string]

function fakeClock(): { now(): number; advance(millis: number): void } {
  let now = Date.now()
  return { now: () => now, advance: (millis) => void (now += millis) }
}

/**
 * The scene both tests share, with 5 stores a..e in the session's order: the session is
 * written; the writer (its late request began before the logout) loses a and b; the logout,
 * from a healthy app server, tombstones the stores a read reaches (copies + 1 of them); the
 * late write is 10 s later on the fake clock.
 */
async function afterLogout(t: Test, copies: number) {
  const [a, b, c, d, e] = cluster.stores.map((store) => store.id) as FiveIds
  const clock = fakeClock()
  // Defaults otherwise: tombstoneTtlSeconds = ttlSeconds, maxReadStores = copies + 1.
  const options = {
    copies,
    clock,
    ttlSeconds: 60,
    sweepGraceSeconds: 0,
    sweepIntervalSeconds: 0,
    healthCheckIntervalMillis: 100,
  }
  const { faulty: writer, healthy, proxies } = await grayManagers(t, cluster, [a, b], options)
  const id = idWithOrderPrefix(healthy, [a, b, c, d, e])
  t.same(writer.locate(id), [a, b, c, d, e])
  await healthy.writeSession(id, { user: 'ada', loggedIn: true })
  for (const store of [a, b]) proxies.get(store)!.setFault({ kind: 'reset' })
  await waitFor('the writer to see a and b down', () =>
    [a, b].every((store) => storeState(writer, store) === 'down'),
  )
  await healthy.destroySession(id)
  const afterDestroy = await rowsOnStores(cluster, id)
  const tombstoned = [...afterDestroy].filter(([, row]) => row?.deleted === 1).map(([s]) => s)
  t.same(tombstoned.sort(), [a, b, c, d].slice(0, copies + 1).sort(), 'the destroy reached them')
  clock.advance(10_000)
  return { stores: { a, b, c, d, e }, clock, writer, healthy, id }
}

for (const buryFails of [true, false])
  t.test(
    `a dropped write ${buryFails ? 'whose bury failed on' : '(control: bury succeeds) on'} a store past the destroy leaves no session`,
    async (t) => {
      const { stores, clock, writer, healthy, id } = await afterLogout(t, 3)
      const { e } = stores

      // The write lands on c, d (tombstones: dropped) and e (written). The writer's tombstones
      // for e then fail (e out of its reach for a moment): the bury, and any replay meanwhile.
      const storeE = storesOf(writer).find((store) => store.id === e)!
      const destroy = storeE.destroy.bind(storeE)
      let eUnreachable = buryFails
      let refused = 0
      storeE.destroy = (...args) => {
        if (!eUnreachable) return destroy(...args)
        refused++
        return Promise.reject(new Error('e out of reach'))
      }
      const result = await writer.writeSession(id, { user: 'ada', late: true })
      t.equal(result.dropped, true, 'the late write is dropped')
      // (A replay of e may already have buried it through another statement: that is the fix.)
      if (buryFails) t.ok(refused > 0, 'the bury on e failed')
      else t.same(await storesWithLiveCopy(cluster, id), [], 'the copy on e is buried')

      eUnreachable = false
      await waitFor('the writer to see e up again', () => storeState(writer, e) === 'up')
      t.equal(await writer.readSession(id), null, 'gone while the tombstones last')

      // The tombstones' time (60 s from the destroy) is up; e's copy has 10 s left.
      clock.advance(55_000)
      const swept = await healthy.sweep()
      t.comment(
        `swept ${swept.deleted} rows; rows now: ${JSON.stringify([...(await rowsOnStores(cluster, id))].map(([s, r]) => [s, r && { deleted: r.deleted, version: r.version }]))}`,
      )
      const seen = await writer.readSession(id)
      t.comment(`the writer reads ${JSON.stringify(seen)}`)
      t.equal(seen, null, 'the writer (a, b unreachable) reads it as gone')
      t.equal(await healthy.readSession(id), null, 'the healthy app server reads it as gone')
      await healthy.repair()
      const afterRepair = await healthy.readSession(id)
      t.comment(`after repair() the healthy app server reads ${JSON.stringify(afterRepair)}`)
      t.equal(afterRepair, null, 'after repair(): still gone')
      t.same(await storesWithLiveCopy(cluster, id), [], 'no live copy anywhere')
    },
  )

// The same late write with copies 2 (the destroy reaches a, b, c; the write lands on c, where
// it meets a tombstone, and on d), when the writer's tombstones fail on both stores it asked:
// the hint for d goes to another store of the session (e), else the write is degraded.
for (const eTakesIt of [true, false])
  t.test(
    `a dropped write whose bury fails on every store it asked ${eTakesIt ? 'is hinted on another store' : 'is degraded when no store takes the hint'}`,
    async (t) => {
      const { stores, clock, writer, healthy, id } = await afterLogout(t, 2)
      const { c, d, e } = stores

      // The writer's tombstone statements fail on c and d (and on e unless it takes the hint).
      const cutOff = eTakesIt ? [c, d] : [c, d, e]
      let refused = 0
      for (const store of storesOf(writer).filter((store) => cutOff.includes(store.id))) {
        store.destroy = () => {
          refused++
          return Promise.reject(new Error('out of reach'))
        }
      }
      const degraded: unknown[] = []
      writer.on('degraded-write', (event) => degraded.push(event))
      const result = await writer.writeSession(id, { user: 'ada', late: true })
      t.equal(result.dropped, true, 'the late write is dropped')
      t.ok(refused >= 2, 'the bury and the tombstone beside it failed')
      t.same(await storesWithLiveCopy(cluster, id), [d], 'the copy on d is left')
      t.equal(result.degraded, !eTakesIt, eTakesIt ? 'not degraded' : 'reported degraded')
      t.equal(degraded.length, eTakesIt ? 0 : 1, 'degraded-write says the same')
      if (!eTakesIt) return // only the writer's memory knows: nothing more to check
      // The writer's app server restarts before d is in its reach again: only e's hint knows.
      await writer.close()

      clock.advance(55_000) // the destroy's tombstones are due; d's copy has 5 s left
      await healthy.sweep()
      await healthy.repair()
      t.equal(await healthy.readSession(id), null, 'after a sweep and repair(): still gone')
      t.same(await storesWithLiveCopy(cluster, id), [], 'no live copy anywhere')
    },
  )
