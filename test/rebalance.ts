import t from 'tap'
import type { Test } from 'tap'
import { createSessionManager, generateSessionId } from '../lib/index.js'
import { classicOrder } from '../lib/placement.js'
import type { SessionManager, SessionManagerOptions } from '../lib/index.js'
import { SessionWorkload } from '../lib/cli/workload/session-workload.js'
import { sleep } from '../lib/cli/workload/waits.js'
import { startTestCluster } from './helpers/cluster.js'
import { readOvertakenByMove } from './helpers/overtaken-read.js'

// A change of the store list under a concurrent workload checked by the chaos run's
// consistency model: no session lost, none resurrected, no stale read, and a second
// rebalance moves nothing.
const cluster = await startTestCluster(t, {
  storeIds: ['store-a', 'store-b', 'store-c', 'store-d', 'store-e'],
})
const crashTest = cluster.canCrash ? t.test.bind(t) : t.skip.bind(t)

const configs = (ids: string[]) => cluster.storeConfigs().filter((store) => ids.includes(store.id))
const fast = { copies: 2, healthCheckIntervalMillis: 250, sweepIntervalSeconds: 0 }

/** A manager closed at the test's end: `fast` settings, `options` over them. */
function open(t: Test, options: Partial<SessionManagerOptions>): SessionManager {
  const manager = createSessionManager({ stores: [], ...fast, ...options })
  t.teardown(() => manager.close())
  return manager
}

/** The session written through a manager on `before` (schema applied): `{ v: 1 }`. */
async function writtenUnder(t: Test, before: string[], id: string): Promise<SessionManager> {
  const writer = open(t, { stores: configs(before) })
  await writer.applySchema()
  await writer.writeSession(id, { v: 1 })
  return writer
}

async function changeStoreList(
  t: Test,
  before: string[],
  after: string[],
  settings: Partial<SessionManagerOptions> = {},
): Promise<void> {
  const make = (options: Partial<SessionManagerOptions>): SessionManager => {
    const manager = createSessionManager({
      stores: configs(before),
      ...fast,
      ...settings,
      ...options,
    })
    t.teardown(() => manager.close())
    return manager
  }
  const managers = [make({}), make({})]
  await managers[0]!.applySchema()
  const workload = new SessionWorkload(managers, { updates: true, shortLivedShare: 0.1 })
  await workload.populate(400)
  const migrating = { stores: configs(after), previousStores: configs(before) }
  let first: Awaited<ReturnType<SessionManager['repair']>> | undefined
  await workload.run({
    seconds: 6,
    inFlight: 32,
    alongside: async () => {
      await sleep(1000)
      // Every app server restarts with the new list (and the old one as previousStores), at
      // once: docs/placement.md leaves a window while both configurations take writes.
      const next = [make(migrating), make(migrating)]
      await next[0]!.applySchema()
      const old = await workload.replaceManagers(next)
      managers.splice(0, managers.length, ...next)
      await Promise.all(old.map((manager) => manager.close()))
      await sleep(500)
      first = await next[0]!.repair({ batchSize: 50 })
    },
  })
  t.ok(first?.done, `the rebalance during traffic finished: ${JSON.stringify(first)}`)
  t.ok(first!.copied > 0, 'it moved sessions')
  // Traffic that ran after the first rebalance may have left a failed-over copy behind (or a
  // hedged copy, whose slow twin may still land within a query timeout); once the traffic
  // stops and the app servers have closed, one rebalance settles it, and the next must move
  // nothing at all.
  await Promise.all(managers.map((manager) => manager.close()))
  const operator = make(migrating)
  const settled = await operator.repair()
  t.same({ failed: settled.failed, done: settled.done }, { failed: 0, done: true }, 'settled')
  const second = await operator.repair()
  t.same(
    { copied: second.copied, removed: second.removed, done: second.done },
    { copied: 0, removed: 0, done: true },
    `a second rebalance in a row moves nothing (the first after traffic: ${JSON.stringify(settled)})`,
  )

  // The old list can go: a manager without previousStores reads every session right.
  const retired = before.filter((id) => !after.includes(id))
  for (const id of retired) await cluster.store(id).kill()
  const fresh = createSessionManager({ stores: configs(after), ...fast, ...settings })
  t.teardown(() => fresh.close())
  const verified = await workload.verify(fresh)
  const { progress } = workload
  t.ok(verified >= 400, `${verified} sessions verified, ${progress.operations} operations`)
  t.equal(progress.lostWrites, 0, 'no session lost')
  t.equal(progress.staleReads, 0, 'no stale read')
  t.equal(progress.resurrections, 0, `no resurrection ${JSON.stringify(workload.model.violations)}`)
  t.equal(
    progress.failedRequests,
    0,
    `no request failed ${JSON.stringify(progress.failuresByCode)}`,
  )
  for (const id of retired) await cluster.store(id).start()
  // Nothing is left on stores outside the new list.
  for (const id of retired) {
    const rows = await cluster
      .store(id)
      .query<{ n: number }>('SELECT COUNT(*) AS n FROM sessions WHERE deleted = 0')
    t.equal(rows[0]!.n, 0, `${id} holds no live session`)
  }
  for (const store of cluster.stores) await store.query('DELETE FROM sessions').catch(() => {})
}

crashTest(
  'before a session moves, an old extra copy under the new placement does not win',
  async (t) => {
    const before = ['store-a', 'store-b', 'store-c']
    const after = [...before, 'store-d']
    // A session whose third store under the old list (where a failed-over or hedged write leaves
    // an extra copy) is among its first two under the new list, beside the new store.
    let id = generateSessionId()
    const third = (sessionId: string) => classicOrder(before, sessionId)[2]!
    // It comes first, so that a single-store read would take it.
    while (classicOrder(after, id)[0] !== third(id) || classicOrder(after, id)[1] !== 'store-d') {
      id = generateSessionId()
    }
    const writer = await writtenUnder(t, before, id)
    // The extra copy of v1 on the third store, as a write that failed over there would leave
    // (a write hedged around a slow store may already have left it: REPLACE, not INSERT).
    const [row] = await cluster
      .store(classicOrder(before, id)[0]!)
      .query<{ version: number; expires_at: number; data: Buffer }>(
        'SELECT version, expires_at, data FROM sessions WHERE id = ?',
        [id],
      )
    await cluster
      .store(third(id))
      .query(
        'REPLACE INTO sessions (id, version, expires_at, deleted, data) VALUES (?, ?, ?, 0, ?)',
        [id, row!.version, row!.expires_at, row!.data],
      )
    await writer.writeSession(id, { v: 2 })
    const reader = open(t, { stores: configs(after), previousStores: configs(before) })
    await reader.applySchema()
    t.same(await reader.readSession(id), { v: 2 }, 'the newest copy, from the old placement')
    const single = open(t, {
      readQuorum: 1,
      stores: configs(after),
      previousStores: configs(before),
    })
    await single.ready()
    t.same(await single.readSession(id), { v: 2 }, 'with readQuorum 1 too')
    for (const store of cluster.stores) await store.query('DELETE FROM sessions').catch(() => {})
  },
)

crashTest('a read that a move overtakes still finds the session', async (t) => {
  const before = ['store-a', 'store-b', 'store-c']
  const after = [...before, 'store-d']
  // A session whose first two stores under the old list are not among its first two under the
  // new one: a move takes it off the old pair entirely.
  const firstTwo = (stores: string[], sessionId: string) =>
    classicOrder(stores, sessionId).slice(0, 2)
  let id = generateSessionId()
  while (firstTwo(after, id).some((store) => firstTwo(before, id).includes(store))) {
    id = generateSessionId()
  }
  const oldPair = firstTwo(before, id)
  await writtenUnder(t, before, id)
  // The reader finds nothing under the new placement at once; its statements to the old pair
  // arrive 1.5 s later, after the rebalance has copied the session over and removed it there.
  const { read, moved } = await readOvertakenByMove(t, cluster, open, {
    id,
    oldPair,
    before,
    after,
  })
  t.ok(moved.copied >= 1 && moved.removed >= 1, `the session moved: ${JSON.stringify(moved)}`)
  t.same(read, { v: 1 }, 'the read still finds it')
  for (const store of cluster.stores) await store.query('DELETE FROM sessions').catch(() => {})
})

crashTest('3 → 4 stores: one added', (t) =>
  changeStoreList(
    t,
    ['store-a', 'store-b', 'store-c'],
    ['store-a', 'store-b', 'store-c', 'store-d'],
  ),
)
crashTest('4 → 3 stores: one retired, then stopped for good', (t) =>
  changeStoreList(
    t,
    ['store-a', 'store-b', 'store-c', 'store-d'],
    ['store-a', 'store-b', 'store-c'],
  ),
)
crashTest('3 → 3: one store replaced by a new empty one', (t) =>
  changeStoreList(t, ['store-a', 'store-b', 'store-c'], ['store-a', 'store-b', 'store-e']),
)
crashTest('3 → 4 with rendezvous placement', (t) =>
  changeStoreList(
    t,
    ['store-a', 'store-b', 'store-c'],
    ['store-a', 'store-b', 'store-c', 'store-d'],
    { placement: 'rendezvous' },
  ),
)
