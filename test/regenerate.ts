import t from 'tap'
import { startTestCluster } from './helpers/cluster.js'
import { rowsOnStores, startManager, storesWithLiveCopy } from './helpers/manager.js'

const cluster = await startTestCluster(t, { stores: 3 })

t.test(
  'regenerate: same data, expiry and timeout under a new id; the old id is dead on every copy',
  async (t) => {
    const manager = await startManager(t, cluster, { copies: 2 })
    const oldId = await manager.createSession({ cart: [1, 2] })
    t.equal(await manager.setSessionTimeout(oldId, 120), true)
    const oldRows = await rowsOnStores(cluster, oldId)
    const newId = await manager.regenerateSession(oldId)
    t.ok(newId !== null && newId !== oldId)
    t.same(await manager.readSession(newId!), { cart: [1, 2] })
    t.equal(
      await manager.getSessionTimeout(newId!),
      120,
      'the per-session timeout moved with the data',
    )
    const newRows = await rowsOnStores(cluster, newId!)
    const oldExpiry = [...oldRows.values()].find((row) => row !== null)!.expires_at
    for (const storeId of manager.locate(newId!).slice(0, 2)) {
      t.equal(newRows.get(storeId)!.expires_at, oldExpiry, `${storeId}: same expiry`)
    }
    t.equal(await manager.readSession(oldId), null, 'the old id reads as gone')
    t.same(await storesWithLiveCopy(cluster, oldId), [], 'no live copy of the old id on any store')
    t.same(await storesWithLiveCopy(cluster, newId!), manager.locate(newId!).slice(0, 2).sort())
    await manager.writeSession(oldId, { attacker: 'fixation' })
    t.equal(await manager.readSession(oldId), null, 'a write to the old id does not bring it back')
    t.equal(await manager.regenerateSession(oldId), null, 'regenerating a dead id gives nothing')
  },
)

t.test(
  'regenerate with a lower maxSessionBytes than the data was written under: a typed error, the old session stays',
  async (t) => {
    const generous = await startManager(t, cluster, { copies: 2 })
    const strict = await startManager(t, cluster, { copies: 2, maxSessionBytes: 1_000 })
    const data = { blob: 'x'.repeat(2_000) }
    const oldId = await generous.createSession(data)
    await t.rejects(strict.regenerateSession(oldId), { code: 'SESSION_TOO_LARGE' })
    t.same(await strict.readSession(oldId), data, 'the old session is still there')
    t.ok(
      (await storesWithLiveCopy(cluster, oldId)).length >= 2,
      'on both of its copies (a hedge around a slow store may add a third)',
    )
  },
)
