import t from 'tap'
import { TooManyOperationsError, VersionConflictError } from '../lib/index.js'
import { startTestCluster } from './helpers/cluster.js'
import { startManager } from './helpers/manager.js'

// maxOperationsInFlight: a flood of calls is refused past the limit, at once and before any
// statement, and every operation that settles (well or not) frees its place.
const cluster = await startTestCluster(t, { stores: 2 })

t.test('operations past maxOperationsInFlight are refused before any statement', async (t) => {
  const manager = await startManager(t, cluster, { copies: 2, maxOperationsInFlight: 5 })
  const ids = Array.from({ length: 8 }, () => manager.generateId())
  const writes = await Promise.allSettled(
    ids.map((id, index) => manager.writeSession(id, { index })),
  )
  t.same(
    writes.map((write) => write.status),
    [...Array(5).fill('fulfilled'), ...Array(3).fill('rejected')],
    'the first 5 ran, the next 3 were refused',
  )
  for (const write of writes.slice(5)) {
    const reason = (write as PromiseRejectedResult).reason as TooManyOperationsError
    t.ok(reason instanceof TooManyOperationsError, 'a TooManyOperationsError')
    t.match(reason, { code: 'TOO_MANY_OPERATIONS', limit: 5, message: /maxOperationsInFlight/ })
  }
  const stored = []
  for (const id of ids) stored.push(await manager.readSession(id))
  t.same(
    stored.map((data) => data?.['index'] ?? null),
    [0, 1, 2, 3, 4, null, null, null],
    'the refused writes stored nothing; the others are there',
  )
  const rows = await Promise.all(
    cluster.stores.map((store) =>
      store.query('SELECT COUNT(*) AS n FROM sessions WHERE id IN (?, ?, ?)', ids.slice(5)),
    ),
  )
  t.same(
    rows.map((result) => Number(result[0]!.n)),
    [0, 0],
    'no store has a row for them',
  )
})

t.test('an operation that fails frees its place like one that succeeds', async (t) => {
  const manager = await startManager(t, cluster, { copies: 2, maxOperationsInFlight: 3 })
  const id = await manager.createSession({ n: 0 })
  const conflicts = await Promise.allSettled(
    Array.from({ length: 3 }, () => manager.writeSession(id, { n: 1 }, { expectedVersion: 1 })),
  )
  t.ok(
    conflicts.every(
      (conflict) =>
        conflict.status === 'rejected' && conflict.reason instanceof VersionConflictError,
    ),
    'three compare-and-set writes failed with a conflict',
  )
  // A refused call takes no place either: another flood, then three reads all run.
  await Promise.allSettled(Array.from({ length: 6 }, () => manager.readSession(id)))
  const reads = await Promise.all(Array.from({ length: 3 }, () => manager.readSession(id)))
  t.same(reads, [{ n: 0 }, { n: 0 }, { n: 0 }], 'the next three run')
})
