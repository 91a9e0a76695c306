import t from 'tap'
import { createSessionManager, NoStoreAvailableError } from '../lib/index.js'
import { startTestCluster } from './helpers/cluster.js'
import { grayManagers } from './helpers/gray.js'
import { idWithOrderPrefix, rowsOnStores, startManager, storeState } from './helpers/manager.js'
import { waitFor } from './helpers/wait.js'

// Guarantee 3 (docs/guarantees.md): after a store that missed writes returns, reads do not
// serve its stale copy.
const cluster = await startTestCluster(t, { stores: 3 })
const crashTest = cluster.canCrash ? t.test.bind(t) : t.skip.bind(t)
const [a, b, c] = [cluster.stores[0]!, cluster.stores[1]!, cluster.stores[2]!]

crashTest(
  'v1 on A and B, A stopped, v2 on B and C, A back with v1: no read returns v1',
  async (t) => {
    const writer = await startManager(t, cluster, { copies: 2, healthCheckIntervalMillis: 100 })
    const other = await startManager(t, cluster, { copies: 2, healthCheckIntervalMillis: 100 })
    const id = idWithOrderPrefix(writer, [a.id, b.id, c.id])
    const v1 = await writer.writeSession(id, { v: 1 })
    t.same(v1.storeIds, [a.id, b.id])
    await a.kill()
    const v2 = await writer.writeSession(id, { v: 2 })
    t.same(v2.storeIds, [b.id, c.id], 'v2 landed on B and C')
    t.ok(v2.version > v1.version, 'versions only grow')
    await waitFor('the other manager to see A down', () => storeState(other, a.id) === 'down')
    await a.start()

    const reads: unknown[] = []
    const until = Date.now() + 1500
    while (Date.now() < until) {
      reads.push(await writer.readSession(id), await other.readSession(id))
    }
    t.ok(reads.length > 10)
    t.same(
      new Set(reads.map((data) => JSON.stringify(data))),
      new Set([JSON.stringify({ v: 2 })]),
      'every read returned v2',
    )
    await waitFor('A back in service', () => storeState(writer, a.id) === 'up')
    const onA = await a.query<{ version: number }>('SELECT version FROM sessions WHERE id = ?', [
      id,
    ])
    t.same(onA, [{ version: v2.version }], 'the hint was replayed: A holds v2')
    const late = createSessionManager({ stores: cluster.storeConfigs(), copies: 2 })
    t.teardown(() => late.close())
    t.same(await late.readSession(id), { v: 2 }, 'a manager started later reads v2')
  },
)

crashTest(
  'readQuorum = copies never serves the stale copy, even in a manager that never noticed the outage',
  async (t) => {
    const neverNoticed = { copies: 2, healthCheckIntervalMillis: 3_600_000 }
    // Quorum reads on every read (no read lease): they compare copies, and repair A.
    const strict = await startManager(t, cluster, {
      ...neverNoticed,
      readQuorum: 2,
      readLeaseMillis: 0,
    })
    const lax = await startManager(t, cluster, neverNoticed)
    const writer = createSessionManager({ stores: cluster.storeConfigs(), copies: 2 })
    const id = idWithOrderPrefix(writer, [a.id, b.id, c.id])
    await writer.writeSession(id, { v: 1 })
    t.same(await strict.readSession(id), { v: 1 })
    await a.kill()
    await writer.writeSession(id, { v: 2 })
    await writer.close() // the only manager holding hints in memory is gone; nobody replays them
    await a.start()
    t.same(await strict.readSession(id), { v: 2 }, 'strict: the newest version wins across copies')
    const events: unknown[] = []
    strict.on('read-repair', (event) => events.push(event))
    t.same(await strict.readSession(id), { v: 2 })
    // The documented window: a default manager that saw neither a failed statement, a failed
    // probe nor a restart during the outage may serve A's copy until a manager that noticed
    // replays the hints. Here none did, so it shows; the strict read above repaired A meanwhile.
    const laxRead = await lax.readSession(id)
    t.ok(
      [1, 2].includes((laxRead as { v: number }).v),
      'default setting: v1 or v2, as docs/guarantees.md states',
    )
    await waitFor('read repair to rewrite A', async () => {
      const rows = await a.query<{ data: Buffer }>('SELECT data FROM sessions WHERE id = ?', [id])
      return rows[0]?.data.toString() === JSON.stringify({ v: 2 })
    })
    t.same(
      await lax.readSession(id),
      { v: 2 },
      'after read repair, the default setting reads v2 too',
    )
  },
)

t.test(
  'a newest copy gone between its digest and its fetch is not traded for an older one',
  async (t) => {
    const { faulty: reader, proxies } = await grayManagers(t, cluster, [b.id, c.id], {
      copies: 2,
      failThreshold: 1,
      healthCheckIntervalMillis: 200,
      // c's digest must come back, late: a new connection's handshake and a statement's prepare
      // and execute are each a round trip through c's latency below.
      connectTimeoutMillis: 5000,
      queryTimeoutMillis: 8000,
    })
    const writer = await startManager(t, cluster, { copies: 3 })
    const id = idWithOrderPrefix(reader, [a.id, b.id, c.id])
    await writer.writeSession(id, { v: 1 })
    const v1 = (await rowsOnStores(cluster, id)).get(a.id)!
    await writer.writeSession(id, { v: 2 })
    // a missed v2 (v1 put back), and b is cut off for the reader: it reads a whole and c's digest.
    await a.query('UPDATE sessions SET version = ?, data = ?, expires_at = ? WHERE id = ?', [
      v1.version,
      v1.data,
      v1.expires_at,
      id,
    ])
    proxies.get(b.id)!.setFault({ kind: 'blackhole' })
    await waitFor('b down for the reader', () => storeState(reader, b.id) === 'down', 30_000)
    await waitFor('the reader to lose its lease', () => reader.stats().readLease?.holds !== true)
    // c's answers reach the reader 1.5 s late; c's copy is removed (handed off, say) once c has
    // answered the digest read and while its answer is on the way, so the fetch of the newest
    // copy finds nothing. The proxy says when c answered: fixed waits, and then c's general
    // log (which does not always show a statement's parameters), missed that moment on CI.
    const proxyOfC = proxies.get(c.id)!
    const digestAnswered = proxyOfC.answered((request) => request.includes(id))
    proxyOfC.setFault({ kind: 'latency', toStoreMillis: 0, toClientMillis: 1500 })
    const reading = reader.readSession(id).then(
      (data) => ({ data }),
      (error: unknown) => ({ refused: error instanceof NoStoreAvailableError }),
    )
    await digestAnswered
    await c.query('DELETE FROM sessions WHERE id = ?', [id])
    t.same(await reading, { refused: true }, 'the read fails rather than serve v1')
    for (const proxy of proxies.values()) proxy.heal()
  },
)
