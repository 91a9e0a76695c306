import t from 'tap'
import { NoStoreAvailableError, NotEnoughStoresError } from '../lib/index.js'
import type { SessionManager } from '../lib/index.js'
import { startTestCluster } from './helpers/cluster.js'
import { grayManagers } from './helpers/gray.js'
import {
  idWithOrderPrefix,
  startManager,
  storeState,
  storesWithLiveCopy,
} from './helpers/manager.js'
import { waitFor } from './helpers/wait.js'

const cluster = await startTestCluster(t, { stores: 3 })
// Crashing stores needs stores this run started (not SESSION_SHARDS_TEST_STORES).
const crashTest = cluster.canCrash ? t.test.bind(t) : t.skip.bind(t)

/** A fresh session id whose order starts with `storeId`. */
function idFirstOn(manager: SessionManager, storeId: string): string {
  for (let i = 0; ; i++) {
    const id = `failover-test-${storeId}-${i}-${Date.now()}`
    if (manager.locate(id)[0] === storeId) return id
  }
}

crashTest('with the first store of an order killed, reads and writes go to the next', async (t) => {
  const manager = await startManager(t, cluster, { copies: 2 })
  const first = cluster.stores[0]!
  const id = idFirstOn(manager, first.id)
  const order = manager.locate(id)
  await manager.writeSession(id, { v: 1 })
  await first.kill()
  t.teardown(() => (first.running ? undefined : first.start()))
  t.same(await manager.readSession(id), { v: 1 }, 'read answered by the second store')
  const result = await manager.writeSession(id, { v: 2 })
  t.same(result.storeIds, order.slice(1, 3), 'write went to the next stores in order')
  t.same(await storesWithLiveCopy(cluster, id), order.slice(1, 3).sort())
  t.same(await manager.readSession(id), { v: 2 })
  await first.start()
})

crashTest(
  'a session written while its first store was down is found after that store returns empty',
  async (t) => {
    const manager = await startManager(t, cluster, { copies: 2 })
    const first = cluster.stores[1]!
    const id = idFirstOn(manager, first.id)
    await first.stop()
    const written = await manager.writeSession(id, { written: 'during outage' })
    t.same(written.storeIds, manager.locate(id).slice(1, 3), 'written past the stopped store')
    // Checked before the store returns: once it is back, hint replay may copy the session to it.
    t.same(await storesWithLiveCopy(cluster, id), manager.locate(id).slice(1, 3).sort())
    await first.wipe()
    await first.start()
    await manager.applySchema()
    t.same(await manager.readSession(id), { written: 'during outage' })
  },
)

crashTest(
  'fewer reachable stores than minCopies: a typed error, never an acknowledgement',
  async (t) => {
    const manager = await startManager(t, cluster, { copies: 2, minCopies: 2 })
    const [a, b] = [cluster.stores[0]!, cluster.stores[1]!]
    const id = idFirstOn(manager, cluster.stores[2]!.id)
    await manager.writeSession(id, { v: 'acknowledged' })
    await Promise.all([a.kill(), b.kill()])
    t.teardown(() => Promise.all([a, b].map((s) => (s.running ? undefined : s.start()))))
    const error = await manager.writeSession(id, { v: 'refused' }).then(
      () => null,
      (error: unknown) => error,
    )
    t.ok(error instanceof NotEnoughStoresError, 'NotEnoughStoresError')
    const failure = error as NotEnoughStoresError
    t.equal(failure.code, 'NOT_ENOUGH_STORES')
    t.equal(failure.copiesRequired, 2)
    t.ok(failure.copiesWritten < 2)
    t.same(
      failure.failures.map((f) => f.storeId).sort(),
      [a.id, b.id].sort(),
      'each store cause attached',
    )
    t.notMatch(failure.message, cluster.stores[0]!.config.password, 'no password in the message')
    await t.rejects(manager.destroySession(id), NotEnoughStoresError, 'destroy too')
    await Promise.all([a.start(), b.start()])
  },
)

crashTest(
  'minCopies reached but not copies: acknowledged as degraded, with an event',
  async (t) => {
    const manager = await startManager(t, cluster, { copies: 3, minCopies: 2 })
    const down = cluster.stores[0]!
    await down.kill()
    t.teardown(() => (down.running ? undefined : down.start()))
    const events: { copiesWritten: number }[] = []
    manager.on('degraded-write', (event) => events.push(event))
    const id = await manager.createSession({ degraded: true })
    t.equal(events.length, 1)
    t.equal(events[0]!.copiesWritten, 2)
    t.same(await manager.readSession(id), { degraded: true })
    await down.start()
  },
)

crashTest(
  'no "no session" guessed while the stores after the one that answered are down',
  async (t) => {
    const [a, b, c] = [cluster.stores[0]!, cluster.stores[1]!, cluster.stores[2]!]
    const { faulty: reader, proxies } = await grayManagers(t, cluster, [b.id, c.id], {
      copies: 2,
      failThreshold: 1,
      healthCheckIntervalMillis: 200,
    })
    const id = idWithOrderPrefix(reader, [a.id, b.id, c.id])
    // On b and c only, as a write made while a was down leaves it before a is caught up.
    const writer = await startManager(t, cluster, { copies: 3 })
    await writer.writeSession(id, { here: true })
    await a.query('DELETE FROM sessions WHERE id = ?', [id])
    const outcome = () =>
      reader.readSession(id).then(
        (data) => ({ data }),
        (error: unknown) => ({ refused: error instanceof NoStoreAvailableError }),
      )
    for (const proxy of proxies.values()) proxy.setFault({ kind: 'blackhole' })
    await waitFor('the reader to lose its lease', () => reader.stats().readLease?.holds !== true)
    t.same(await outcome(), { refused: true }, 'while b and c fail in the read: refused')
    await waitFor(
      'b and c down for the reader',
      () => storeState(reader, b.id) === 'down' && storeState(reader, c.id) === 'down',
      15_000,
    )
    t.same(await outcome(), { refused: true }, 'once they are down (only a asked): refused too')
    for (const proxy of proxies.values()) proxy.heal()
    await waitFor('b and c back for the reader', () =>
      [b.id, c.id].every((store) => storeState(reader, store) === 'up'),
    )
    t.same(await outcome(), { data: { here: true } }, 'and read once they are back')
  },
)
