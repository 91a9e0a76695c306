import t from 'tap'
import { NoStoreAvailableError, NotEnoughStoresError } from '../lib/index.js'
import type { SessionManager } from '../lib/index.js'
import { startTestCluster } from './helpers/cluster.js'
import type { HintedHandoff } from '../lib/failure/hinted-handoff.js'
import type { Store } from '../lib/store/store.js'
import { grayManagers, proxiesFor } from './helpers/gray.js'
import {
  idWithOrderPrefix,
  startManager,
  storeState,
  storesWithLiveCopy,
} from './helpers/manager.js'
import { sleep, waitFor } from './helpers/wait.js'

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

t.test('a write missed again while its hint replays is replayed too, not forgotten', async (t) => {
  const [a, b] = [cluster.stores[0]!, cluster.stores[1]!]
  const proxies = await proxiesFor(t, cluster, [a.id])
  const stores = cluster
    .storeConfigs()
    .map((config) => (config.id === a.id ? { ...config, port: proxies.get(a.id)!.port } : config))
  // No health rounds: the test starts the replay itself.
  const manager = await startManager(t, cluster, {
    copies: 2,
    stores,
    healthCheckIntervalMillis: 600_000,
    queryTimeoutMillis: 5000,
  })
  const { handoff, stores: managed } = (
    manager as unknown as { cluster: { handoff: HintedHandoff; stores: readonly Store[] } }
  ).cluster
  const storeA = managed.find((store) => store.id === a.id)!
  const id = idWithOrderPrefix(manager, [a.id, b.id])
  const { version } = await manager.writeSession(id, { v: 1 })
  // Misses with no durable hint (every hint write failed: a degraded acknowledgement), so this
  // manager's memory is all that knows of them.
  await handoff.record(id, [storeA], [], version)
  proxies.get(a.id)!.setFault({ kind: 'latency', toStoreMillis: 1500, toClientMillis: 0 })
  const replayed = handoff.replay(storeA)
  // The replay has read b (v1, as a holds) and waits for a; meanwhile a misses a newer write.
  await sleep(500)
  await b.query('UPDATE sessions SET version = version + 1000 WHERE id = ?', [id])
  await handoff.record(id, [storeA], [], version + 1000)
  proxies.get(a.id)!.heal()
  t.ok(await replayed, 'the replay catches a up')
  const [row] = await a.query<{ version: number }>('SELECT version FROM sessions WHERE id = ?', [
    id,
  ])
  t.equal(row?.version, version + 1000, 'a holds the write it missed during the replay')
  t.equal(handoff.hintsWaiting(storeA), 0)
})
