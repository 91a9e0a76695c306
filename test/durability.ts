import t from 'tap'
import { startTestCluster } from './helpers/cluster.js'
import { createManager, startManager } from './helpers/manager.js'

// Guarantee 1 (docs/guarantees.md): an acknowledged write survives the permanent loss of any
// `copies - 1` stores.
for (const { copies, stores, lost } of [
  { copies: 2, stores: 4, lost: 1 },
  { copies: 3, stores: 5, lost: 2 },
]) {
  t.test(
    `copies ${copies}: SIGKILL ${lost} of ${stores} stores for good, no acknowledged write lost`,
    async (t) => {
      const cluster = await startTestCluster(t, { stores })
      if (!cluster.canCrash) {
        t.pass('skipped: needs stores this run started')
        return
      }
      const writer = await startManager(t, cluster, { copies })
      const acknowledged = new Map<string, unknown>()
      const ids = await Promise.all(
        Array.from({ length: 300 }, (_, i) => writer.createSession({ i, round: 0 })),
      )
      ids.forEach((id, i) => acknowledged.set(id, { i, round: 0 }))
      // Overwrite a third of them so the last acknowledged data differs from the first.
      await Promise.all(
        ids
          .filter((_, i) => i % 3 === 0)
          .map(async (id) => {
            const data = { rewritten: id, round: 1 }
            await writer.writeSession(id, data)
            acknowledged.set(id, data)
          }),
      )
      const victims = cluster.stores.slice(0, lost)
      await Promise.all(victims.map((store) => store.kill()))

      const sameManager = await Promise.all(ids.map((id) => writer.readSession(id)))
      const fresh = createManager(t, cluster, { copies })
      const otherManager = await Promise.all(ids.map((id) => fresh.readSession(id)))
      let lostWrites = 0
      ids.forEach((id, i) => {
        const expected = JSON.stringify(acknowledged.get(id))
        if (
          JSON.stringify(sameManager[i]) !== expected ||
          JSON.stringify(otherManager[i]) !== expected
        ) {
          lostWrites++
        }
      })
      t.equal(lostWrites, 0, `all ${ids.length} acknowledged sessions read back from both managers`)
    },
  )
}
