import t from 'tap'
import { startTestCluster } from './helpers/cluster.js'
import { rowsLeft, withExpiredSessions } from './helpers/expired-sessions.js'
import { sleep } from './helpers/wait.js'

// A caller's onProgress that throws something other than an Error: the store's sweep stops
// there and says so, and sweep() settles only once every store's sweep has.
const cluster = await startTestCluster(t, { stores: 3 })

t.test('an onProgress that throws a non-Error leaves the store reported as swept', async (t) => {
  // The error was a thrown value's `message`: undefined for a string, so the store read as
  // fully swept (ok in the CLI's sense) although its sweep stopped after its first batch.
  const table = 'sweep_throw'
  const { manager } = await withExpiredSessions(t, cluster, { table, count: 20 })
  const result = await manager.sweep({
    batchSize: 2,
    onProgress: () => {
      throw 'stop'
    },
  })
  const left = await rowsLeft(cluster, table)
  t.ok(left > 0, `the sweep stopped early (${left} expired rows left)`)
  for (const store of result.stores) {
    t.type(store.error, 'string', `${store.storeId}: its failed sweep is reported as an error`)
  }
})

t.test('a sweep that rejects is not left running past close()', async (t) => {
  // Describing a thrown `null` threw inside the per-store catch: sweep() rejected at once while
  // the other stores' sweeps ran on, untracked, and close() ended the pools under them.
  const { manager } = await withExpiredSessions(t, cluster, {
    table: 'sweep_null',
    count: 30,
    copies: 3,
  })
  let first: string | undefined
  const calls: string[] = []
  const outcome = await manager
    .sweep({
      batchSize: 2,
      onProgress: ({ storeId }) => {
        calls.push(storeId)
        first ??= storeId
        if (storeId === first) throw null
      },
    })
    .then(
      (result) => ({ result, error: undefined }),
      (error: Error) => ({ result: undefined, error }),
    )
  t.equal(outcome.error, undefined, `sweep() resolves (got ${String(outcome.error)})`)
  const before = calls.length
  await manager.close()
  await sleep(300)
  t.equal(calls.length, before, 'no store is still being swept after sweep() settled and close()')
})
