import t from 'tap'
import type { Test } from 'tap'
import type { SessionManager } from '../lib/index.js'
import type { FaultProxy } from '../lib/local-cluster/index.js'
import { startTestCluster } from './helpers/cluster.js'
import { grayManagers } from './helpers/gray.js'
import type { RawRow } from './helpers/manager.js'
import { idWithOrderPrefix, rowsOnStores, startManager, storesOf } from './helpers/manager.js'
import { waitFor } from './helpers/wait.js'

// A write hedged around a slow store still heeds what that store answers, when the answer comes
// before the write is acknowledged (here: the write went past the span, so it waits for the
// stores it passed over): a version above the write's makes it go again above that version (as
// docs/design.md, "Versions only grow", has a write from an app server whose clock lags do),
// and a tombstone drops it. Both within the bound: one store fails for the writer.
const cluster = await startTestCluster(t, { stores: 4 })
const [a, b, c, d] = [
  cluster.stores[0]!,
  cluster.stores[1]!,
  cluster.stores[2]!,
  cluster.stores[3]!,
]

/**
 * The writer: it reaches a and b through fault proxies, and runs no health rounds (its
 * standing changes only by what its writes meet).
 */
async function slowWriter(t: Test): Promise<{
  writer: SessionManager
  proxies: Map<string, FaultProxy>
}> {
  const { faulty: writer, proxies } = await grayManagers(t, cluster, [a.id, b.id], {
    copies: 2,
    readLeaseMillis: 0,
    // a's answers, 300 ms a round trip, come well within it (a new connection's handshake and
    // a statement's prepare are round trips too); b's blackhole fails at it.
    queryTimeoutMillis: 2000,
    healthCheckIntervalMillis: 3_600_000,
  })
  return { writer, proxies }
}

t.test(
  'a hedged write whose slow store reports a higher version is made again above it',
  async (t) => {
    // The app server whose clock runs an hour ahead writes the session first, acknowledged
    // on a and b (no fault anywhere).
    const ahead = await startManager(t, cluster, {
      copies: 2,
      healthCheckIntervalMillis: 3_600_000,
      clock: { now: () => Date.now() + 3_600_000 },
    })
    const { writer, proxies } = await slowWriter(t)
    const id = idWithOrderPrefix(writer, [a.id, b.id, c.id, d.id])
    const first = await ahead.writeSession(id, { by: 'ahead' })
    t.same(first.storeIds, [a.id, b.id], 'the earlier write is on a and b')
    t.same(await writer.readSession(id), { by: 'ahead' }, 'the writer reads it')
    // For the writer, a is slow (within the query timeout, past any hedge delay) and b hangs:
    // the first lane hedges to c, the second times out on b and moves on to d. Only one store
    // (b) fails for the writer: within the bound of docs/guarantees.md, section 3.
    proxies.get(a.id)!.setFault({ kind: 'latency', toStoreMillis: 150, toClientMillis: 150 })
    proxies.get(b.id)!.setFault({ kind: 'blackhole' })
    const later = await writer.writeSession(id, { by: 'later' })
    for (const proxy of proxies.values()) proxy.heal()
    const rows = await rowsOnStores(cluster, id)
    const summary = [...rows].map(
      ([store, row]) => `${store}: ${row === null ? '-' : `${row.version} ${String(row.data)}`}`,
    )
    t.ok(
      later.version > first.version,
      `the later write is acknowledged above the earlier one (${later.version} vs ` +
        `${first.version}, on ${later.storeIds}; ${summary.join(', ')})`,
    )
    // A new app server that reaches every store reads the later, acknowledged write.
    const reader = await startManager(t, cluster, { copies: 2, readLeaseMillis: 0 })
    t.same(await reader.readSession(id), { by: 'later' }, 'the acknowledged write is visible')
  },
)

t.test(
  'a hedged write whose slow store reports a tombstone is dropped, not acknowledged',
  async (t) => {
    // The destroying app server cannot reach c and d (c is the only one of them within the
    // span): the destroy is acknowledged on a and b, with a hint for c.
    const { faulty: destroyer, proxies: destroyerProxies } = await grayManagers(
      t,
      cluster,
      [c.id, d.id],
      { copies: 2, queryTimeoutMillis: 1000, healthCheckIntervalMillis: 3_600_000 },
    )
    const { writer, proxies } = await slowWriter(t)
    const id = idWithOrderPrefix(writer, [a.id, b.id, c.id, d.id])
    await writer.writeSession(id, { v: 1 })
    for (const proxy of destroyerProxies.values()) proxy.setFault({ kind: 'blackhole' })
    await destroyer.destroySession(id)
    for (const proxy of destroyerProxies.values()) proxy.heal()
    // For the writer, a is slow (its late answer: a tombstone) and b hangs.
    proxies.get(a.id)!.setFault({ kind: 'latency', toStoreMillis: 150, toClientMillis: 150 })
    proxies.get(b.id)!.setFault({ kind: 'blackhole' })
    const late = await writer.writeSession(id, { v: 2 })
    for (const proxy of proxies.values()) proxy.heal()
    const rows = await rowsOnStores(cluster, id)
    const summary = [...rows].map(
      ([store, row]) => `${store}: ${row === null ? '-' : `${row.version} deleted=${row.deleted}`}`,
    )
    const reader = await startManager(t, cluster, { copies: 2, readLeaseMillis: 0 })
    t.equal(await reader.readSession(id), null, 'the destroyed session stays gone')
    t.equal(
      late.dropped,
      true,
      `the write after the destroy is reported dropped (${JSON.stringify(late)}; ` +
        `${summary.join(', ')})`,
    )
  },
)

// A compare-and-set's follower b is slow for the writer (hedged to c). Before the writer's own
// follower statement reaches b, the decided version is copied there (as a read repair or a
// hint replay does): b's late answer is then `outdated` at the write's very version, which is
// this write's own copy, not a reason to go again (which reported the applied compare-and-set
// as a conflict, and updateSession ran its change twice).

async function casThroughSlowFollower(t: Test): Promise<{
  writer: SessionManager
  healthy: SessionManager
  proxies: Map<string, FaultProxy>
  id: string
}> {
  const {
    faulty: writer,
    healthy,
    proxies,
  } = await grayManagers(t, cluster, [b.id], {
    copies: 2,
    readQuorum: 2,
    readLeaseMillis: 5000,
    queryTimeoutMillis: 3000,
    healthCheckIntervalMillis: 3_600_000,
  })
  const id = idWithOrderPrefix(writer, [a.id, b.id, c.id, d.id])
  return { writer, healthy, proxies, id }
}

/** Waits for a's row to move past `above`, then copies it to b directly (a read repair). */
async function repairToB(healthy: SessionManager, id: string, above: number): Promise<RawRow> {
  let row: RawRow | null = null
  await waitFor('the decision on a', async () => {
    row = (await rowsOnStores(cluster, id)).get(a.id) ?? null
    return row !== null && row.version > above
  })
  const found = row as unknown as RawRow
  const storeB = storesOf(healthy).find((store) => store.id === b.id)!
  const repaired = await storeB.write({
    sessionId: id,
    data: found.data!,
    fields: {
      version: found.version,
      expiresAtMillis: found.expires_at,
      explicitExpiry: true,
      ttlSeconds: found.ttl_seconds,
      owner: null,
      expectedVersion: undefined,
      createsAbsent: false,
      now: Date.now(),
    },
  })
  if (repaired.kind !== 'written') throw new Error(`repair: ${JSON.stringify(repaired)}`)
  return found
}

async function summary(id: string): Promise<string> {
  const rows = await rowsOnStores(cluster, id)
  return [...rows]
    .map(([store, r]) => `${store}: ${r === null ? '-' : `${r.version} ${String(r.data)}`}`)
    .join(', ')
}

t.test(
  'a compare-and-set whose slow follower late-reports its own version is acknowledged, not a conflict',
  async (t) => {
    const { writer, healthy, proxies, id } = await casThroughSlowFollower(t)
    const first = await writer.writeSession(id, { v: 1 })
    t.same(first.storeIds, [a.id, b.id])
    proxies.get(b.id)!.setFault({ kind: 'latency', toStoreMillis: 400, toClientMillis: 0 })
    const pending = writer.writeSession(id, { v: 2 }, { expectedVersion: first.version }).then(
      (result) => result,
      (error: unknown) => error,
    )
    const decided = await repairToB(healthy, id, first.version)
    const settled = await pending
    proxies.get(b.id)!.heal()
    t.notOk(
      settled instanceof Error,
      `the applied compare-and-set is not reported as failed (${String(settled)}; decided ` +
        `${decided.version}; ${await summary(id)})`,
    )
  },
)

t.test(
  'updateSession applies its change once, even when the slow follower answers late',
  async (t) => {
    const { writer, healthy, proxies, id } = await casThroughSlowFollower(t)
    const first = await writer.writeSession(id, { visits: 1 })
    t.same(first.storeIds, [a.id, b.id])
    await writer.readSession(id)
    proxies.get(b.id)!.setFault({ kind: 'latency', toStoreMillis: 400, toClientMillis: 0 })
    let calls = 0
    const pending = writer.updateSession(id, (data) => {
      calls++
      return { visits: ((data?.visits as number | undefined) ?? 0) + 1 }
    })
    await repairToB(healthy, id, first.version)
    const result = await pending
    proxies.get(b.id)!.heal()
    const reader = healthy
    t.same(
      await reader.readSession(id),
      { visits: 2 },
      `one increment stored (change ran ${calls} times, resolved ${JSON.stringify(result)}; ` +
        `${await summary(id)})`,
    )
  },
)
