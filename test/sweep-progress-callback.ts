import t from 'tap'
import { startTestCluster } from './helpers/cluster.js'
import { rowsOnStores, startManager } from './helpers/manager.js'
import { sleep } from './helpers/wait.js'

// A caller's onProgress that throws something other than an Error: the store's sweep stops
// there and says so, and sweep() settles only once every store's sweep has.
const cluster = await startTestCluster(t, { stores: 3 })

async function expiredRows(table: string, ids: string[]): Promise<number> {
  let n = 0
  for (const id of ids)
    n += [...(await rowsOnStores(cluster, id, table)).values()].filter(Boolean).length
  return n
}

t.test('an onProgress that throws a non-Error leaves the store reported as swept', async (t) => {
  // The error was a thrown value's `message`: undefined for a string, so the store read as
  // fully swept (ok in the CLI's sense) although its sweep stopped after its first batch.
  const table = 'zz_sweep_throw'
  const manager = await startManager(t, cluster, {
    copies: 2,
    table,
    sweepIntervalSeconds: 0,
    sweepGraceSeconds: 0,
  })
  const ids = await Promise.all(
    Array.from({ length: 20 }, (_, i) => manager.createSession({ i }, { ttlSeconds: 1 })),
  )
  await sleep(1100)
  const result = await manager.sweep({
    batchSize: 2,
    onProgress: () => {
      throw 'stop'
    },
  })
  const left = await expiredRows(table, ids)
  t.ok(left > 0, `the sweep stopped early (${left} expired rows left)`)
  for (const store of result.stores) {
    t.type(store.error, 'string', `${store.storeId}: its failed sweep is reported as an error`)
  }
})

t.test('a sweep that rejects is not left running past close()', async (t) => {
  // Describing a thrown `null` threw inside the per-store catch: sweep() rejected at once while
  // the other stores' sweeps ran on, untracked, and close() ended the pools under them.
  const table = 'zz_sweep_null'
  const manager = await startManager(t, cluster, {
    copies: 3,
    table,
    sweepIntervalSeconds: 0,
    sweepGraceSeconds: 0,
  })
  await Promise.all(
    Array.from({ length: 30 }, (_, i) => manager.createSession({ i }, { ttlSeconds: 1 })),
  )
  await sleep(1100)
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
