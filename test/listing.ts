import t from 'tap'
import { startTestCluster } from './helpers/cluster.js'
import { NoStoreAvailableError } from '../lib/index.js'
import { startManager, storeState } from './helpers/manager.js'
import { sleep, waitFor } from './helpers/wait.js'

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

    // Two stores down, known to be before the listing starts: some sessions have no copy on a
    // store that is read, so the listing refuses rather than skip them.
    const second = cluster.stores[2]!
    await second.kill()
    t.teardown(() => (second.running ? undefined : second.start()))
    await waitFor('both stores down for the manager', async () => {
      await manager.readSession(live[0]!).catch(() => null)
      return [down, second].every((store) => storeState(manager, store.id) === 'down')
    })
    await t.rejects(manager.count(), NoStoreAvailableError, 'count() refuses')
    await t.rejects(
      (async () => {
        for await (const id of manager.list()) void id
      })(),
      NoStoreAvailableError,
      'list() refuses',
    )
    await Promise.all([down.start(), second.start()])
  },
)

t.test(
  'a touch that missed a copy: the listing counts the session by its latest expiry',
  async (t) => {
    // Both copies hold the same version; one still has the expiry from before a touch that
    // did not reach it, which has passed. Reads prefer the later expiry; the listing must too.
    const table = 'listing_touch'
    const manager = await startManager(t, cluster, { copies: 2, table, sweepIntervalSeconds: 0 })
    // Every store in service: a listing leaves out a store that is down, and with it the one
    // copy here that is live (the store the test before killed may still be coming back).
    const everyStoreUp = (): Promise<void> =>
      waitFor('every store in service', () =>
        manager.stats().stores.every((store) => store.state === 'up' && !store.behind),
      )
    await everyStoreUp()
    const id = await manager.createSession({ touched: true })
    const [first, second] = manager.locate(id).map((storeId) => cluster.store(storeId))
    // Whichever store the merge meets first holds the stale expiry.
    for (const store of [first!, second!]) {
      const stale = store === first ? Date.now() - 60_000 : Date.now() + 600_000
      await store.query(`UPDATE \`${table}\` SET expires_at = ? WHERE id = ?`, [stale, id])
    }
    await everyStoreUp()
    t.same(await manager.readSession(id), { touched: true }, 'a read finds it live')
    const listed: string[] = []
    for await (const listedId of manager.list()) listed.push(listedId)
    t.same(listed, [id], 'list() finds it live')
    t.equal(await manager.count(), 1, 'count() too')
    // And the other way round: the first store met holds the later expiry.
    for (const store of [first!, second!]) {
      const stale = store === second ? Date.now() - 60_000 : Date.now() + 600_000
      await store.query(`UPDATE \`${table}\` SET expires_at = ? WHERE id = ?`, [stale, id])
    }
    await everyStoreUp()
    t.equal(
      await manager.count(),
      1,
      `count() with the stale expiry on the other copy (${JSON.stringify(manager.stats().stores)})`,
    )
  },
)
