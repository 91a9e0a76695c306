import t from 'tap'
import { VersionConflictError } from '../lib/index.js'
import type { SessionManager } from '../lib/index.js'
import { startTestCluster } from './helpers/cluster.js'
import { startManager } from './helpers/manager.js'

const cluster = await startTestCluster(t, { stores: 3 })

function statements(manager: SessionManager): number {
  return manager.stats().stores.reduce((sum, store) => sum + store.operations, 0)
}

t.test(
  'concurrent reads and writes share statements; every caller gets its own answer',
  async (t) => {
    const manager = await startManager(t, cluster, { copies: 2, sweepIntervalSeconds: 0 })
    const ids = await Promise.all(
      Array.from({ length: 256 }, (_, i) => manager.createSession({ i })),
    )
    let before = statements(manager)
    const reads = await Promise.all(ids.map((id) => manager.readSession(id)))
    t.same(
      reads.map((data) => data?.i),
      ids.map((_, i) => i),
      'each read got its own session',
    )
    const readStatements = statements(manager) - before
    t.ok(readStatements < ids.length / 2, `256 reads took ${readStatements} statements`)

    before = statements(manager)
    await Promise.all(ids.map((id, i) => manager.writeSession(id, { i, round: 2 })))
    const writeStatements = statements(manager) - before
    t.ok(writeStatements < ids.length, `256 writes × 2 copies took ${writeStatements} statements`)
    const again = await Promise.all(ids.map((id) => manager.readSession(id)))
    t.same(
      again,
      ids.map((_, i) => ({ i, round: 2 })),
    )
  },
)

t.test('a lone request goes out at once, as one plain statement', async (t) => {
  const manager = await startManager(t, cluster, { copies: 1, sweepIntervalSeconds: 0 })
  const id = await manager.createSession({ alone: true })
  const before = statements(manager)
  for (let i = 0; i < 20; i++) await manager.readSession(id)
  t.equal(statements(manager) - before, 20)
})

t.test(
  'per-row rules hold inside a batch: a tombstone or a conflict fails only its own caller',
  async (t) => {
    const manager = await startManager(t, cluster, { copies: 2, sweepIntervalSeconds: 0 })
    const ids = await Promise.all(
      Array.from({ length: 100 }, (_, i) => manager.createSession({ i })),
    )
    const destroyed = ids[50]!
    await manager.destroySession(destroyed)
    const versioned = (await manager.readSession(ids[10]!, { withVersion: true }))!
    await manager.writeSession(ids[10]!, { moved: true })
    const late: string[] = []
    manager.on('write-after-destroy', ({ sessionId }) => late.push(sessionId))
    const results = await Promise.allSettled(
      ids.map((id, i) =>
        i === 10
          ? manager.writeSession(id, { stale: true }, { expectedVersion: versioned.version })
          : manager.writeSession(id, { i, batch: true }),
      ),
    )
    const rejected = results.flatMap((result, i) => (result.status === 'rejected' ? [i] : []))
    t.same(rejected, [10], 'only the stale compare-and-set failed')
    t.ok((results[10] as PromiseRejectedResult).reason instanceof VersionConflictError)
    t.same(late, [destroyed], 'only the write to the destroyed session was dropped')
    t.equal(await manager.readSession(destroyed), null)
    t.same(await manager.readSession(ids[10]!), { moved: true })
    t.same(await manager.readSession(ids[99]!), { i: 99, batch: true })
  },
)

t.test('batching off: one statement per read', async (t) => {
  const manager = await startManager(t, cluster, {
    copies: 1,
    batching: false,
    sweepIntervalSeconds: 0,
  })
  const ids = await Promise.all(Array.from({ length: 64 }, () => manager.createSession({})))
  const before = statements(manager)
  await Promise.all(ids.map((id) => manager.readSession(id)))
  t.equal(statements(manager) - before, 64)
})

t.test('a store failing under a batch: each request fails over on its own', async (t) => {
  if (!cluster.canCrash) {
    t.pass('skipped: needs stores this run started')
    return
  }
  const manager = await startManager(t, cluster, { copies: 2, sweepIntervalSeconds: 0 })
  const victim = cluster.stores[0]!
  const ids: string[] = []
  while (ids.length < 200) {
    const id = manager.generateId()
    if (manager.locate(id)[0] === victim.id) ids.push(id)
  }
  await Promise.all(ids.map((id, i) => manager.writeSession(id, { i })))
  const burst = Promise.all(ids.map((id) => manager.readSession(id)))
  await victim.kill()
  t.teardown(() => (victim.running ? undefined : victim.start()))
  const reads = await burst
  t.same(
    reads.map((data) => data?.i),
    ids.map((_, i) => i),
    'every read answered, from the next store',
  )
  await Promise.all(ids.map((id, i) => manager.writeSession(id, { i, after: true })))
  t.same(await manager.readSession(ids[0]!), { i: 0, after: true })
  await victim.start()
})
