import t from 'tap'
import type { Test } from 'tap'
import { generateSessionId, NoStoreAvailableError, VersionConflictError } from '../lib/index.js'
import type { SessionData } from '../lib/index.js'
import { classicOrder } from '../lib/placement.js'
import { startTestCluster } from './helpers/cluster.js'
import {
  configsOf,
  managerOpener,
  sessionOnRetiringStore as onRetiringStore,
} from './helpers/store-lists.js'
import { proxiesFor } from './helpers/gray.js'
import { readOvertakenByMove } from './helpers/overtaken-read.js'
import { sleep, waitFor } from './helpers/wait.js'

// During a change of the store list a session may sit under the old placement (not moved
// yet), and the new one may hold an old extra copy of it (a write that failed over there left
// it). Writes, compare-and-sets, touches and reads must see past both (docs/guarantees.md,
// section 8): an app server whose clock runs ahead wrote above the versions others mint, a
// stale compare-and-set meets an old extra copy, a touch finds the session only on its old
// stores, a move overtakes a read between its two looks.
const cluster = await startTestCluster(t, {
  storeIds: ['store-a', 'store-b', 'store-c', 'store-d'],
})

// Retiring store-d (the first tests); the last ones add it instead.
const before = ['store-a', 'store-b', 'store-c', 'store-d']
const after = ['store-a', 'store-b', 'store-c']
const configs = configsOf(cluster)
const base = {
  copies: 2,
  connectTimeoutMillis: 1000,
  queryTimeoutMillis: 1000,
  healthCheckIntervalMillis: 250,
  sweepIntervalSeconds: 0,
}

const open = managerOpener(base)

/** A session whose old pair (with store-d, retiring) shares no store with its new pair. */
const sessionOnRetiringStore = () => onRetiringStore(before, after, 'store-d').id
/**
 * The life of sessions a touch must extend: long enough that a loaded machine still touches them
 * before it ends (3 s once ran out under CI load before the touch), short for the wait after it.
 */
const SHORT_LIFE_SECONDS = 8

// Adding store-d (the last tests): the session's third store under the old list is first
// under the new one, beside store-d, so its new pair shares no store with its old pair.
const fewer = ['store-a', 'store-b', 'store-c']
const more = [...fewer, 'store-d']

/** A session whose new pair (store-d added) is its third old store and store-d. */
function sessionGainingStore(): { id: string; oldPair: string[]; third: string } {
  for (;;) {
    const id = generateSessionId()
    const [first, second, third] = classicOrder(fewer, id) as [string, string, string]
    const [newFirst, newSecond] = classicOrder(more, id)
    if (newFirst === third && newSecond === 'store-d')
      return { id, oldPair: [first, second], third }
  }
}

/**
 * Writes `v1` under the old list, copies it to the session's third old store (the extra copy a
 * write that failed over there leaves; test/rebalance.ts makes it the same way), then writes
 * `v2` under the old list. Resolves v1's version.
 */
async function withExtraCopy(
  t: Test,
  session: { id: string; oldPair: string[]; third: string },
  v1: SessionData,
  v2: SessionData,
): Promise<number> {
  const schema = open(t, { stores: configs(more) })
  await schema.applySchema() // on every store, store-d included
  await schema.close()
  for (const store of cluster.stores) {
    await store.query('DELETE FROM sessions WHERE id = ?', [session.id])
  }
  const writer = open(t, { stores: configs(fewer) })
  const { version } = await writer.writeSession(session.id, v1)
  const [row] = await cluster
    .store(session.oldPair[0]!)
    .query<{ version: number; expires_at: number; data: Buffer }>(
      'SELECT version, expires_at, data FROM sessions WHERE id = ?',
      [session.id],
    )
  await cluster
    .store(session.third)
    .query(
      'REPLACE INTO sessions (id, version, expires_at, deleted, data) VALUES (?, ?, ?, 0, ?)',
      [session.id, row!.version, row!.expires_at, row!.data],
    )
  await writer.writeSession(session.id, v2)
  await writer.close()
  return version
}

t.test(
  'a write during the change is not lost to an older copy a clock ahead left under the old placement',
  async (t) => {
    const id = sessionOnRetiringStore()
    // Before the change: an app server whose clock runs 30 s ahead (within the minute the
    // guarantees allow wall clocks to differ) writes the session.
    const ahead = open(t, {
      stores: configs(before),
      clock: { now: () => Date.now() + 30_000 },
    })
    await ahead.applySchema()
    await ahead.writeSession(id, { v: 1, from: 'before the change' })
    await ahead.close()

    // The change: another app server, clock right, writes the session (the user logs in, say).
    const writer = open(t, { stores: configs(after), previousStores: configs(before) })
    await writer.ready()
    const written = await writer.writeSession(id, { v: 2, from: 'during the change' })
    t.equal(written.dropped, false, 'the write is acknowledged')
    t.equal(written.degraded, false, 'not degraded')

    t.same(
      await writer.readSession(id),
      { v: 2, from: 'during the change' },
      'the app server that wrote reads its acknowledged write',
    )
    await sleep(500) // the read's move, in the background
    const other = open(t, { stores: configs(after), previousStores: configs(before) })
    await other.ready()
    t.same(
      await other.readSession(id),
      { v: 2, from: 'during the change' },
      'another app server reads it too',
    )
    const rebalance = await other.repair()
    t.ok(rebalance.done, 'the rebalance finished')
    const past = open(t, { stores: configs(after) })
    await past.ready()
    t.same(
      await past.readSession(id),
      { v: 2, from: 'during the change' },
      'and an app server past the change, after the rebalance',
    )
  },
)

t.test(
  'a rebalance by an app server whose clock runs ahead moves a session it counts expired',
  async (t) => {
    // 20 s of life left for the others, over for a clock 30 s ahead (within the tolerance the
    // sweep grace gives clocks): its rebalance must move the session, not delete every copy.
    const id = sessionOnRetiringStore()
    const old = open(t, { stores: configs(before) })
    await old.applySchema()
    await old.writeSession(id, { user: 42 }, { ttlSeconds: 20 })
    await old.close()
    const ahead = open(t, {
      stores: configs(after),
      previousStores: configs(before),
      clock: { now: () => Date.now() + 30_000 },
    })
    await ahead.ready()
    t.ok((await ahead.repair()).done, 'the rebalance finishes')
    const app = open(t, { stores: configs(after), previousStores: configs(before) })
    t.same(await app.readSession(id), { user: 42 }, 'the others still read the session')
    const past = open(t, { stores: configs(after) })
    t.same(await past.readSession(id), { user: 42 }, 'also past the change: it was moved')
  },
)

t.test('a touch during the change extends a session not moved yet', async (t) => {
  const id = sessionOnRetiringStore()
  const old = open(t, { stores: configs(before) })
  await old.applySchema()
  const endsAt = Date.now() + SHORT_LIFE_SECONDS * 1000
  await old.writeSession(id, { user: 42 }, { ttlSeconds: SHORT_LIFE_SECONDS })
  await old.close()

  const app = open(t, { stores: configs(after), previousStores: configs(before) })
  await app.ready()
  t.equal(
    await app.touch(id, { ttlSeconds: 3600 }),
    true,
    'the touch finds the live session (it resolves whether the session existed)',
  )
  await sleep(endsAt + 500 - Date.now())
  t.same(
    await app.readSession(id),
    { user: 42 },
    'the session, touched for an hour, is still there after its old expiry',
  )
})

t.test(
  'a touch that lands while the session moves is not lost (express: a read, then a touch)',
  async (t) => {
    const ids = Array.from({ length: 40 }, () => sessionOnRetiringStore())
    const old = open(t, { stores: configs(before) })
    await old.applySchema()
    const endsAt = Date.now() + SHORT_LIFE_SECONDS * 1000
    await Promise.all(
      ids.map((id, i) => old.writeSession(id, { i }, { ttlSeconds: SHORT_LIFE_SECONDS })),
    )
    await old.close()
    const app = open(t, { stores: configs(after), previousStores: configs(before) })
    await app.ready()
    // 40 requests at once: each reads its session (which starts its move in the background),
    // then touches it, while the move copies the copy it read before the touch.
    const touched = await Promise.all(
      ids.map(async (id) => {
        await app.readSession(id)
        return app.touch(id, { ttlSeconds: 3600 })
      }),
    )
    t.equal(touched.filter((found) => !found).length, 0, 'every touch found its session')
    await sleep(endsAt + 500 - Date.now())
    const reads = await Promise.all(ids.map((id) => app.readSession(id)))
    const lost = reads.filter((data) => data === null).length
    t.equal(lost, 0, `no touched session ended at its old expiry (${lost} of ${ids.length} did)`)
    t.ok((await app.repair()).done, 'the rebalance finishes')
    const past = open(t, { stores: configs(after) })
    const moved = await Promise.all(ids.map((id) => past.readSession(id)))
    t.equal(moved.filter((data) => data === null).length, 0, 'and each is live past the change')
  },
)

t.test(
  'a touch is not lost to a move that runs between its look at the new stores and the old',
  async (t) => {
    const { id, oldPair } = onRetiringStore(before, after, 'store-d')
    const newPair = classicOrder(after, id).slice(0, 2)
    const old = open(t, { stores: configs(before) })
    await old.applySchema()
    const endsAt = Date.now() + SHORT_LIFE_SECONDS * 1000
    await old.writeSession(id, { user: 42 }, { ttlSeconds: SHORT_LIFE_SECONDS })
    await old.close()
    // The app server reaches the session's old stores slowly (a gray fault: its statements
    // there arrive 800 ms late); another app server moves the session meanwhile.
    const proxies = await proxiesFor(t, cluster, oldPair)
    const slowOld = (ids: readonly string[]) =>
      configs(ids).map((c) => (proxies.has(c.id) ? { ...c, port: proxies.get(c.id)!.port } : c))
    const app = open(t, {
      stores: slowOld(after),
      previousStores: slowOld(before),
      queryTimeoutMillis: 5000,
      healthCheckIntervalMillis: 60_000,
    })
    await app.ready()
    const mover = open(t, { stores: configs(after), previousStores: configs(before) })
    await mover.ready()
    for (const proxy of proxies.values()) {
      proxy.setFault({ kind: 'latency', toStoreMillis: 800, toClientMillis: 0 })
    }
    const touching = app.touch(id, { ttlSeconds: 3600 })
    await sleep(200)
    const moved = new Promise((resolve) => mover.once('session-moved', resolve))
    t.same(await mover.readSession(id), { user: 42 }, 'the other app server reads the session')
    await moved
    t.equal(await touching, true, 'the touch found the session (moved or not)')
    for (const storeId of newPair) {
      const [row] = await cluster
        .store(storeId)
        .query<{ expires_at: number }>('SELECT expires_at FROM sessions WHERE id = ?', [id])
      t.ok(
        row !== undefined && Number(row.expires_at) > endsAt + 60_000,
        `${storeId}, a new store, holds the touched expiry`,
      )
    }
  },
)

t.test('a session whose old stores are unreachable is refused, never "no session"', async (t) => {
  const id = sessionOnRetiringStore()
  const oldPair = classicOrder(before, id).slice(0, 2)
  const old = open(t, { stores: configs(before) })
  await old.applySchema()
  await old.writeSession(id, { user: 42 })
  await old.close()

  const proxies = await proxiesFor(t, cluster, oldPair)
  const proxied = (ids: readonly string[]) =>
    configs(ids).map((c) => (proxies.has(c.id) ? { ...c, port: proxies.get(c.id)!.port } : c))
  const reader = open(t, { stores: proxied(after), previousStores: proxied(before) })
  await reader.ready()
  for (const proxy of proxies.values()) proxy.setFault({ kind: 'blackhole' })

  const outcome = (promise: Promise<unknown>) =>
    promise.then(
      (data) => ({ data }),
      (error: unknown) => ({ error }),
    )
  const failing = await outcome(reader.readSession(id))
  t.ok(
    'error' in failing && failing.error instanceof NoStoreAvailableError,
    `while its old stores fail: refused, not "no session" (${JSON.stringify(failing)})`,
  )
  await waitFor('the old stores to be down for the reader', () =>
    reader
      .stats()
      .stores.filter((store) => oldPair.includes(store.id))
      .every((store) => store.state === 'down'),
  )
  const down = await outcome(reader.readSession(id))
  t.ok(
    'error' in down && down.error instanceof NoStoreAvailableError,
    `once they are down: refused, not "no session" (${JSON.stringify(down)})`,
  )
  for (const proxy of proxies.values()) proxy.heal()
  const healthy = open(t, { stores: configs(after), previousStores: configs(before) })
  await healthy.ready()
  t.same(await healthy.readSession(id), { user: 42 }, 'the session exists all along')
})

t.test('a compare-and-set on a stale version is refused, even on an old extra copy', async (t) => {
  const session = sessionGainingStore()
  const v1 = await withExtraCopy(t, session, { cart: ['a'] }, { cart: ['a', 'b'] })
  const app = open(t, { stores: configs(more), previousStores: configs(fewer) })
  await app.ready()
  const stale = await app
    .writeSession(session.id, { cart: ['a', 'stale'] }, { expectedVersion: v1 })
    .then(
      (result) => ({ result }),
      (error: unknown) => ({ error }),
    )
  t.ok(
    'error' in stale && stale.error instanceof VersionConflictError,
    `a compare-and-set on v1, read before v2: a conflict (${JSON.stringify(stale)})`,
  )
  t.same(await app.readSession(session.id), { cart: ['a', 'b'] }, 'the acknowledged v2 is not lost')
})

t.test('a read that a move overtakes does not serve an old extra copy', async (t) => {
  const session = sessionGainingStore()
  const { id } = session
  await withExtraCopy(t, session, { v: 1 }, { v: 2 })
  const operator = open(t, { stores: configs(more), previousStores: configs(fewer) })
  t.same(await operator.readSession(id), { v: 2 }, 'before anything moves, the newest copy wins')
  await sleep(300) // that read's move, in the background; then the same again, for the race
  await withExtraCopy(t, session, { v: 1 }, { v: 2 })
  // The reader finds the extra copy under the new placement at once, and nothing under the old
  // one 1.5 s later, after the rebalance has moved v2 over it.
  const overtaken = { ...session, before: fewer, after: more }
  const { read, moved } = await readOvertakenByMove(t, cluster, open, overtaken)
  t.ok(moved.copied >= 1 && moved.removed >= 1, `the session moved: ${JSON.stringify(moved)}`)
  t.same(read, { v: 2 }, 'the read serves the last acknowledged write, not the extra copy')
})
