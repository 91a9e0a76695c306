import t from 'tap'
import { startTestCluster } from './helpers/cluster.js'
import { startManager } from './helpers/manager.js'

const cluster = await startTestCluster(t, { stores: 3 })

async function collect(ids: AsyncIterable<string>): Promise<string[]> {
  const all: string[] = []
  for await (const id of ids) all.push(id)
  return all
}

t.test(
  'find and listWithKey scan every session once; with a store down they neither double count nor fail',
  async (t) => {
    const manager = await startManager(t, cluster, { copies: 2 })
    const red = await Promise.all(
      Array.from({ length: 15 }, () => manager.createSession({ color: 'red', cart: [1] })),
    )
    const blue = await Promise.all(
      Array.from({ length: 10 }, () => manager.createSession({ color: 'blue' })),
    )
    const plain = await Promise.all(Array.from({ length: 5 }, () => manager.createSession({})))
    await manager.destroySession(red[0]!)
    const liveRed = red.slice(1).sort()

    t.same(await collect(manager.find('color', 'red', { batchSize: 4 })), liveRed)
    t.same(await collect(manager.find('cart', [1])), liveRed, 'deep equality')
    t.same(await collect(manager.listWithKey('color')), [...liveRed, ...blue].sort())
    t.equal(await manager.count(), 14 + 10 + 5)

    if (!cluster.canCrash) return
    const down = cluster.stores[2]!
    await down.kill()
    t.teardown(() => (down.running ? undefined : down.start()))
    t.same(
      await collect(manager.find('color', 'red', { batchSize: 4 })),
      liveRed,
      'find: same answer',
    )
    t.equal(await manager.count(), 14 + 10 + 5, 'count: same answer, nothing counted twice')
    t.same(
      await collect(manager.list()),
      [...liveRed, ...blue, ...plain].sort(),
      'list: same answer',
    )
  },
)
