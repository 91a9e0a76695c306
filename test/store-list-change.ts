import t from 'tap'
import type { Test } from 'tap'
import { createSessionManager, generateSessionId, NoStoreAvailableError } from '../lib/index.js'
import type { SessionManager, SessionManagerOptions } from '../lib/index.js'
import { classicOrder } from '../lib/placement.js'
import { tombstoneCheck } from '../lib/store-list-change.js'
import { startTestCluster } from './helpers/cluster.js'
import { proxiesFor } from './helpers/gray.js'
import { storesWithLiveCopy } from './helpers/manager.js'
import { waitFor } from './helpers/wait.js'

// During a change of the store list a write first looks for a tombstone under the old
// placement; when too few of the old stores that would hold it answer, the write is refused
// (fail closed) rather than made under the new placement, where it would bring a session
// destroyed before the change back. A store that is down for good does not block writes on its
// own (docs/guarantees.md, section 8).
const cluster = await startTestCluster(t, {
  storeIds: ['store-a', 'store-b', 'store-c', 'store-d'],
})
const crashTest = cluster.canCrash ? t.test.bind(t) : t.skip.bind(t)

const before = ['store-a', 'store-b', 'store-c', 'store-d']
const after = ['store-a', 'store-b', 'store-c']
const configs = (ids: readonly string[]) =>
  cluster.storeConfigs().filter((store) => ids.includes(store.id))
// Tombstones on the first two stores only (maxReadStores 2), so that only they hold one.
const base = {
  copies: 2,
  maxReadStores: 2,
  connectTimeoutMillis: 500,
  queryTimeoutMillis: 500,
  healthCheckIntervalMillis: 250,
  sweepIntervalSeconds: 0,
}

function open(t: Test, options: Partial<SessionManagerOptions>): SessionManager {
  const manager = createSessionManager({ stores: [], ...base, ...options })
  t.teardown(() => manager.close())
  return manager
}

/** A session whose first two old stores are store-d (retiring) and one its new pair leaves out. */
function sessionOnRetiringStore(): { id: string; oldPair: string[] } {
  for (;;) {
    const id = generateSessionId()
    const oldPair = classicOrder(before, id).slice(0, 2)
    const newPair = classicOrder(after, id).slice(0, 2)
    if (oldPair.includes('store-d') && !newPair.some((store) => oldPair.includes(store))) {
      return { id, oldPair }
    }
  }
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
    t.equal(await writer.readSession(id), null, 'the writer reads no session')
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
