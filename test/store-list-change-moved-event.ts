// A read-through move during a change of the store list is reported (`session-moved`) once the
// session's new first stores hold it and its old copies are gone, whatever a store that has
// nothing to do with the session is doing: a store down elsewhere must not hide every move.
import t from 'tap'
import { generateSessionId } from '../lib/index.js'
import { classicOrder } from '../lib/placement.js'
import { startTestCluster } from './helpers/cluster.js'
import { configsOf, managerOpener } from './helpers/store-lists.js'
import { proxiesFor, throughProxies } from './helpers/gray.js'
import { waitFor, sleep } from './helpers/wait.js'

const all = ['store-a', 'store-b', 'store-c', 'store-d', 'store-e']
const cluster = await startTestCluster(t, { storeIds: all })
const before = ['store-a', 'store-b', 'store-c', 'store-d']
const after = all
const configs = configsOf(cluster)
const open = managerOpener({
  copies: 2,
  connectTimeoutMillis: 1000,
  queryTimeoutMillis: 1000,
  sweepIntervalSeconds: 0,
})

t.test(
  'a session moved completely while an unrelated store is down is reported moved',
  async (t) => {
    // Old pair and new pair disjoint (a move is needed), the fifth store in neither.
    let id: string
    let oldPair: string[]
    let newPair: string[]
    for (;;) {
      id = generateSessionId()
      oldPair = classicOrder(before, id).slice(0, 2)
      newPair = classicOrder(after, id).slice(0, 2)
      if (!newPair.some((store) => oldPair.includes(store))) break
    }
    const unrelated = all.find((store) => !oldPair.includes(store) && !newPair.includes(store))!
    t.comment(`old ${oldPair}, new ${newPair}, down: ${unrelated}`)

    const schema = open(t, { stores: configs(all) })
    await schema.applySchema()
    await schema.close()
    const writer = open(t, { stores: configs(before) })
    for (const store of cluster.stores) await store.query('DELETE FROM sessions')
    await writer.writeSession(id, { user: 7 })
    await writer.close()

    const proxies = await proxiesFor(t, cluster, [unrelated])
    const proxy = proxies.get(unrelated)!
    proxy.setFault({ kind: 'reset' })
    const viaProxy = (ids: string[]) => throughProxies(configs(ids), proxies)
    const mover = open(t, { stores: viaProxy(after), previousStores: viaProxy(before) })
    await mover.ready()
    const moved: string[] = []
    mover.on('session-moved', ({ sessionId }) => moved.push(sessionId))

    t.same(
      await mover.readSession(id),
      { user: 7 },
      'the read finds the session under the old placement',
    )
    // The move itself completes: the new pair holds the session, the old pair no longer does.
    await waitFor('the new pair to hold the session and the old pair not', async () => {
      let newHeld = 0
      let oldHeld = 0
      for (const storeId of [...newPair, ...oldPair]) {
        const [row] = await cluster
          .store(storeId)
          .query<{ n: number }>('SELECT COUNT(*) AS n FROM sessions WHERE id = ? AND deleted = 0', [
            id,
          ])
        if (row!.n > 0) newPair.includes(storeId) ? newHeld++ : oldHeld++
      }
      return newHeld === 2 && oldHeld === 0
    })
    await sleep(300)
    t.same(moved, [id], 'session-moved is emitted for the session moved')
  },
)
