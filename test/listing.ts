import t from 'tap'
import { startTestCluster } from './helpers/cluster.js'
import { startManager } from './helpers/manager.js'
import { sleep } from './helpers/wait.js'

const cluster = await startTestCluster(t, { stores: 3 })

t.test(
  'list and count: each live session once, however many copies; with a store down too',
  async (t) => {
    const manager = await startManager(t, cluster, { copies: 2, sweepIntervalSeconds: 0 })
    const ids = await Promise.all(
      Array.from({ length: 120 }, (_, i) => manager.createSession({ i })),
    )
    const destroyed = ids.slice(0, 10)
    await Promise.all(destroyed.map((id) => manager.destroySession(id)))
    const expiring = await Promise.all(
      Array.from({ length: 5 }, () => manager.createSession({}, { ttlSeconds: 1 })),
    )
    await sleep(1100)
    const live = ids.slice(10).sort()

    const listed: string[] = []
    for await (const id of manager.list({ batchSize: 7 })) listed.push(id)
    t.same(listed, live, 'every live session once, in id order; no destroyed or expired one')
    t.notOk(expiring.some((id) => listed.includes(id)))
    t.equal(await manager.count({ batchSize: 13 }), 110)

    if (!cluster.canCrash) return
    const down = cluster.stores[1]!
    await down.kill()
    t.teardown(() => (down.running ? undefined : down.start()))
    await manager.readSession(live[0]!).catch(() => null) // let the manager notice
    const whileDown: string[] = []
    for await (const id of manager.list({ batchSize: 7 })) whileDown.push(id)
    t.same(whileDown, live, 'one store down (copies 2): still every session, none twice')
  },
)
