import t from 'tap'
import { startTestCluster } from './helpers/cluster.js'
import { createManager, startManager } from './helpers/manager.js'

// close() stops a repair after the batch in progress, as it stops a sweep: a walk of a big
// table is not something a shutdown should wait for. The repair resolves with where to resume.
const cluster = await startTestCluster(t, { stores: 2 })

t.test(
  'close() during repair(): stopped after the batch in progress, with resumeFrom',
  async (t) => {
    const writer = await startManager(t, cluster, { copies: 2, table: 'repair_stop' })
    await Promise.all(Array.from({ length: 40 }, (_, i) => writer.createSession({ i })))
    const manager = createManager(t, cluster, { copies: 2, table: 'repair_stop' })
    let batches = 0
    let closing: Promise<void> | undefined
    const result = await manager.repair({
      batchSize: 2,
      onProgress: () => {
        batches += 1
        closing ??= manager.close()
      },
    })
    await closing
    t.equal(batches, 1, 'no batch after close()')
    t.equal(result.done, false, 'not done')
    t.match(result.resumeFrom, { storeId: String, afterId: String }, 'where to resume')
  },
)
