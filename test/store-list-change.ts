import t from 'tap'
import type { Test } from 'tap'
import { generateSessionId, NoStoreAvailableError } from '../lib/index.js'
import type { SessionManager } from '../lib/index.js'
import { classicOrder } from '../lib/placement.js'
import { tombstoneCheck } from '../lib/store-list-change.js'
import { startTestCluster } from './helpers/cluster.js'
import {
  configsOf,
  managerOpener,
  sessionOnRetiringStore as onRetiringStore,
} from './helpers/store-lists.js'
import { proxiesFor } from './helpers/gray.js'
import { startManager, storesOf, storesWithLiveCopy } from './helpers/manager.js'
import { waitFor } from './helpers/wait.js'

// During a change of the store list a write first looks for a tombstone under the old
// placement; when too few of the old stores that would hold it answer, the write is refused
// (fail closed) rather than made under the new placement, where it would bring a session
// destroyed before the change back. A store that is down for good does not block writes on its
// own (docs/guarantees.md, section 8). What a read finds under the old placement it moves in the
// background, a bounded number of sessions at a time, each once.
const cluster = await startTestCluster(t, {
  storeIds: ['store-a', 'store-b', 'store-c', 'store-d'],
})
const crashTest = cluster.canCrash ? t.test.bind(t) : t.skip.bind(t)

const before = ['store-a', 'store-b', 'store-c', 'store-d']
const after = ['store-a', 'store-b', 'store-c']
const configs = configsOf(cluster)
// Tombstones on the first two stores only (maxReadStores 2), so that only they hold one.
const base = {
  copies: 2,
  maxReadStores: 2,
  connectTimeoutMillis: 500,
  queryTimeoutMillis: 500,
  healthCheckIntervalMillis: 250,
  sweepIntervalSeconds: 0,
}

const open = managerOpener(base)

/** A session whose first two old stores are store-d (retiring) and one its new pair leaves out. */
const sessionOnRetiringStore = () => onRetiringStore(before, after, 'store-d')

/**
 * `count` sessions written before the change (on their old stores), then written again by an
 * app server already past it (new list only): their old stores keep an older copy. A read
 * finds the newest copy under the new placement (nothing to read-repair) and the older one
 * under the old placement, and moves the session.
 */
async function sessionsLeftUnderOld(t: Test, count: number): Promise<string[]> {
  const ids: string[] = []
  while (ids.length < count) {
    const id = generateSessionId()
    const oldPair = classicOrder(before, id).slice(0, 2)
    const newPair = classicOrder(after, id).slice(0, 2)
    if (!oldPair.every((store) => newPair.includes(store))) ids.push(id)
  }
  for (const [stores, v] of [
    [before, 1],
    [after, 2],
  ] as const) {
    const writer = open(t, { stores: configs(stores) })
    await writer.applySchema()
    await Promise.all(ids.map((id, i) => writer.writeSession(id, { i, v })))
    await writer.close()
  }
  return ids
}

/** Of `ids`, those a store outside their new placement's first two still holds a row of. */
async function leftUnderOld(ids: readonly string[]): Promise<string[]> {
  const left = new Set<string>()
  for (const store of cluster.stores) {
    const rows = await store.query<{ id: string }>(
      'SELECT CAST(id AS CHAR) AS id FROM sessions WHERE id IN (?)',
      [ids],
    )
    for (const { id } of rows) {
      if (!classicOrder(after, id).slice(0, 2).includes(store.id)) left.add(id)
    }
  }
  return [...left].sort()
}

/**
 * Holds the statements that moves of `ids` read with (a move reads the session from every
 * store with `readMany`; an unbatched read never does) until `release()`. `started` lists the
 * moves started meanwhile: one such read each on store-a, which every repair order includes.
 * Patches the manager's own stores (a protected getter at runtime): no event marks a move's
 * start.
 */
function holdMoves(
  manager: SessionManager,
  ids: readonly string[],
): { started: string[][]; release: () => void } {
  const started: string[][] = []
  let release!: () => void
  const released = new Promise<void>((resolve) => (release = resolve))
  for (const store of storesOf(manager)) {
    const readMany = store.readMany.bind(store)
    store.readMany = async (sessionIds) => {
      if (sessionIds.some((id) => ids.includes(id))) {
        if (store.id === 'store-a') started.push([...sessionIds])
        await released
      }
      return readMany(sessionIds)
    }
  }
  return { started, release }
}

/** An app server in the change, settled (every store in service); reads unbatched. */
function mover(t: Test): Promise<SessionManager> {
  return startManager(t, cluster, {
    ...base,
    queryTimeoutMillis: 2000,
    batching: false,
    stores: configs(after),
    previousStores: configs(before),
  })
}

t.test('the rule: a tombstone wins; too few answers cannot tell', async (t) => {
  const none = { deleted: false, behind: false }
  const behind = { deleted: false, behind: true }
  const tombstone = { deleted: true, behind: true }
  t.equal(tombstoneCheck([none, tombstone], 2, 2), 'destroyed')
  t.equal(tombstoneCheck([tombstone], 2, 2), 'destroyed', 'one tombstone is enough')
  t.equal(tombstoneCheck([none, none], 2, 2), 'live', 'every store answered')
  t.equal(
    tombstoneCheck([behind, behind], 2, 2),
    'unknown',
    'every store answered, but behind: the destroy may have gone past both',
  )
  t.equal(tombstoneCheck([none, behind], 2, 1), 'unknown', 'minCopies 1: one is behind')
  t.equal(tombstoneCheck([none, none], 2, 1), 'live', 'minCopies 1: both caught up')
  t.equal(tombstoneCheck([none], 2, 2), 'live', 'one caught-up store of two, minCopies 2')
  t.equal(tombstoneCheck([behind], 2, 2), 'unknown', 'one store of two, behind')
  t.equal(tombstoneCheck([], 2, 2), 'unknown', 'no store answered')
  t.equal(tombstoneCheck([none], 2, 1), 'unknown', 'one store of two, minCopies 1')
  t.equal(tombstoneCheck([none, none], 3, 2), 'live', 'two of three, minCopies 2')
  t.equal(tombstoneCheck([none], 3, 2), 'unknown', 'one of three, minCopies 2')
  t.equal(tombstoneCheck([], 1, 1), 'unknown', 'copies 1: its only store')
})

t.test('moves run 16 at a time at most; a later read or repair() moves the rest', async (t) => {
  const ids = await sessionsLeftUnderOld(t, 100)
  const reader = await mover(t)
  const moved: string[] = []
  reader.on('session-moved', ({ sessionId }) => moved.push(sessionId))
  const held = holdMoves(reader, ids)
  const reads = await Promise.all(ids.map((id) => reader.readSession(id)))
  t.same(
    reads,
    ids.map((_, i) => ({ i, v: 2 })),
    'every read finds the newest copy',
  )
  const started = held.started.length
  t.ok(started > 0 && started <= 16, `${started} moves started for ${ids.length} reads at once`)
  held.release()
  await waitFor('the moves started to finish', () => moved.length >= started)
  t.same(await leftUnderOld(moved), [], 'the moves emptied the old placement of their sessions')
  const skipped = ids.filter((id) => !moved.includes(id))
  t.same(await leftUnderOld(ids), skipped.sort(), 'the sessions not moved are left there')
  const later = skipped[0]
  if (later === undefined) return
  t.same(await reader.readSession(later), { i: ids.indexOf(later), v: 2 })
  await waitFor('a later read to move a session left over', () => moved.includes(later))
  t.same(await leftUnderOld([later]), [], 'a later read moved it')
  t.ok((await reader.repair()).done, 'the rebalance finished')
  t.same(await leftUnderOld(ids), [], 'and moved the rest')
})

t.test('a session read several times at once is moved once', async (t) => {
  const [id] = (await sessionsLeftUnderOld(t, 1)) as [string]
  const reader = await mover(t)
  const moved: string[] = []
  reader.on('session-moved', ({ sessionId }) => moved.push(sessionId))
  const held = holdMoves(reader, [id])
  await Promise.all(Array.from({ length: 10 }, () => reader.readSession(id)))
  t.equal(held.started.length, 1, 'ten reads at once, one move')
  held.release()
  await waitFor('the move to finish', () => moved.length >= held.started.length)
  t.same(await leftUnderOld([id]), [], 'moved')
})

crashTest(
  'the old stores holding a tombstone unreachable for the writer: its write is refused',
  async (t) => {
    const { id, oldPair } = sessionOnRetiringStore()
    // Before the change: written, then destroyed (tombstones on the old pair only).
    const old = open(t, { stores: configs(before) })
    await old.applySchema()
    await old.writeSession(id, { v: 1 })
    await old.destroySession(id)
    await old.close()
    t.same(await storesWithLiveCopy(cluster, id), [], 'destroyed')

    // The writer reaches the old pair through proxies, blackholed: it cannot read them.
    const proxies = await proxiesFor(t, cluster, oldPair)
    const proxied = (ids: readonly string[]) =>
      configs(ids).map((c) => (proxies.has(c.id) ? { ...c, port: proxies.get(c.id)!.port } : c))
    const writer = open(t, { stores: proxied(after), previousStores: proxied(before) })
    const healthy = open(t, { stores: configs(after), previousStores: configs(before) })
    await Promise.all([writer.ready(), healthy.ready()])
    for (const proxy of proxies.values()) proxy.setFault({ kind: 'blackhole' })

    const outcome = await writer.writeSession(id, { v: 2, back: true }).then(
      (result) => ({ written: result }),
      (error: unknown) => ({ error }),
    )
    t.ok(
      'error' in outcome && outcome.error instanceof NoStoreAvailableError,
      `the write is refused with NoStoreAvailableError: ${JSON.stringify(outcome)}`,
    )
    if ('error' in outcome) {
      t.match(outcome.error, {
        code: 'NO_STORE_AVAILABLE',
        message: /destroyed before the change of the store list/,
      })
    }
    t.same(await storesWithLiveCopy(cluster, id), [], 'no store holds a live copy')
    await t.rejects(
      writer.readSession(id),
      NoStoreAvailableError,
      'the writer, which cannot reach the old placement, cannot tell: refused, not "no session"',
    )
    // Before the one that still reads the old placement (whose read repair would bury a copy).
    const afterChange = open(t, { stores: configs(after) })
    t.equal(
      await afterChange.readSession(id),
      null,
      'an app server past the change, which looks at the new placement only, reads no session',
    )
    t.equal(await healthy.readSession(id), null, 'nor one that reaches the old placement')
    for (const proxy of proxies.values()) proxy.heal()
  },
)

crashTest('a retiring store down for good blocks no write with minCopies = copies', async (t) => {
  const live = sessionOnRetiringStore()
  const destroyed = sessionOnRetiringStore()
  const old = open(t, { stores: configs(before) })
  await old.applySchema()
  await old.writeSession(live.id, { v: 1 })
  await old.writeSession(destroyed.id, { v: 1 })
  await old.destroySession(destroyed.id)
  await old.close()

  await cluster.store('store-d').kill()
  t.teardown(() => cluster.store('store-d').start())
  const writer = open(t, { stores: configs(after), previousStores: configs(before) })
  await writer.ready()
  await waitFor('store-d to be down', () =>
    writer.stats().stores.some((store) => store.id === 'store-d' && store.state === 'down'),
  )
  const written = await writer.writeSession(live.id, { v: 2 })
  t.equal(written.dropped, false, 'a live session is written: its other old store answered')
  t.same(await writer.readSession(live.id), { v: 2 })
  const dropped = await writer.writeSession(destroyed.id, { v: 2 })
  t.equal(dropped.dropped, true, 'a destroyed one is not: its other old store holds the tombstone')
  t.equal(await writer.readSession(destroyed.id), null)

  // With minCopies 1 a destroy may have left its tombstone on store-d alone.
  const lax = open(t, {
    minCopies: 1,
    stores: configs(after),
    previousStores: configs(before),
  })
  await lax.ready()
  await waitFor('store-d to be down', () =>
    lax.stats().stores.some((store) => store.id === 'store-d' && store.state === 'down'),
  )
  await t.rejects(
    lax.writeSession(live.id, { v: 3 }),
    NoStoreAvailableError,
    'with minCopies 1, one old store of two cannot tell',
  )
  t.same(await writer.readSession(live.id), { v: 2 }, 'and nothing was written')
})
