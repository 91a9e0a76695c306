import t from 'tap'
import type { Test } from 'tap'
import { NotEnoughStoresError, VersionConflictError } from '../lib/index.js'
import type { SessionManager, SessionManagerOptions } from '../lib/index.js'
import type { FaultProxy } from '../lib/local-cluster/index.js'
import { startTestCluster } from './helpers/cluster.js'
import { collidingServers as collidingManagers } from './helpers/colliding.js'
import { proxiesFor } from './helpers/gray.js'
import { idWithOrderPrefix, rowsOnStores, startManager, statementsSent } from './helpers/manager.js'
import { sleep } from './helpers/wait.js'

// Versions are microseconds plus a random offset per process, or a random step above the
// version found, so two app servers can propose the same version for one session: rarely, not
// never. A copy at the very version a write proposed may then be another write's, and never
// counts as this one (docs/design.md, "Versions only grow"). Here two app servers always
// propose the same versions: one frozen clock and one random offset for both.
const cluster = await startTestCluster(t, { stores: 4 })
const [a, b, c, d] = cluster.stores as [
  (typeof cluster.stores)[number],
  (typeof cluster.stores)[number],
  (typeof cluster.stores)[number],
  (typeof cluster.stores)[number],
]
const settings: Partial<SessionManagerOptions> = { copies: 2, ttlSeconds: 86_400 }

/** {@link collidingManagers} on this file's cluster and settings. */
function collidingServers(
  t: Test,
  through: [readonly string[], readonly string[]] = [[], []],
  frozen = Date.now() + 3_600_000,
  options: Partial<SessionManagerOptions> = {},
) {
  return collidingManagers(t, cluster, through, frozen, { ...settings, ...options })
}

/** The distinct data of `id`'s copies on every store. */
async function copiesData(id: string): Promise<string[]> {
  const rows = [...(await rowsOnStores(cluster, id)).values()]
  return [...new Set(rows.flatMap((row) => (row === null ? [] : [String(row.data)])))]
}

/** Whether every copy of `id` at one version holds the same data. */
async function oneDataPerVersion(id: string): Promise<boolean> {
  const byVersion = new Map<string, string>()
  for (const row of (await rowsOnStores(cluster, id)).values()) {
    if (row === null) continue
    const [version, data] = [String(row.version), String(row.data)]
    if ((byVersion.get(version) ?? data) !== data) return false
    byVersion.set(version, data)
  }
  return true
}

t.test('a compare-and-set that proposes the version another one took is a conflict', async (t) => {
  const creator = await startManager(t, cluster, settings)
  const { first, second } = await collidingServers(t)
  const id = await creator.createSession({ by: 'creator' })
  const created = (await creator.readSession(id, { withVersion: true }))!
  const taken = await first.writeSession(id, { by: 'a' }, { expectedVersion: created.version })
  const refused = await second
    .writeSession(id, { by: 'b' }, { expectedVersion: created.version })
    .catch((error: unknown) => error)
  t.ok(
    refused instanceof VersionConflictError,
    `the second is refused, not acknowledged (${JSON.stringify(refused)})`,
  )
  t.match(refused, { actualVersion: taken.version, expectedVersion: created.version })
  t.same(await creator.readSession(id), { by: 'a' }, 'the first one stands')
  t.same(await copiesData(id), [JSON.stringify({ by: 'a' })], 'no copy of the refused one')
})

t.test('a write that proposes the version another one took is made again above it', async (t) => {
  const creator = await startManager(t, cluster, settings)
  const { first, second } = await collidingServers(t)
  const id = creator.generateId()
  const one = await first.writeSession(id, { by: 'a' })
  const two = await second.writeSession(id, { by: 'b' })
  t.ok(two.version > one.version, 'the second write has a higher version')
  t.same(await creator.readSession(id), { by: 'b' }, 'the later acknowledged write is read')
  t.same(await copiesData(id), [JSON.stringify({ by: 'b' })], 'on every copy')
})

t.test('a batch read back tells another write at its own version from its own', async (t) => {
  const creator = await startManager(t, cluster, settings)
  const { first, second } = await collidingServers(t)
  const ids: string[] = []
  while (ids.length < 60) {
    const id = creator.generateId()
    if (creator.locate(id)[0] === a.id) ids.push(id)
  }
  // first's versions, one by one: V, V + 1, ...; second proposes the same ones, in batches.
  for (const id of ids) await first.writeSession(id, { by: 'a' })
  await Promise.all(ids.map((id) => second.writeSession(id, { by: 'b' })))
  t.ok(statementsSent(second, a.id, 'writtenVersions') > 0, 'written in batches, read back')
  const seen = await Promise.all(ids.map((id) => creator.readSession(id)))
  t.same(seen.filter((data) => data?.by !== 'b').length, 0, 'and read back as written')
})

t.test("a slow store's late answer at the write's version is not a copy of it", async (t) => {
  const lease = { readLeaseMillis: 2000 }
  // refused reaches b, c and d through proxies, written reaches a through one.
  const {
    first: refused,
    second: written,
    proxies,
  } = await collidingServers(t, [[b.id, c.id, d.id], [a.id]], Date.now(), lease)
  const reader = await startManager(t, cluster, { ...settings, ...lease })
  const id = idWithOrderPrefix(reader, [a.id, b.id, c.id])
  // A write that reaches a only (b, c and d reset it): refused, never acknowledged.
  for (const store of [b, c, d]) proxies.get(store.id)!.setFault({ kind: 'reset' })
  const error = await refused.writeSession(id, { by: 'refused' }).catch((e: unknown) => e)
  t.ok(error instanceof NotEnoughStoresError, 'refused')
  // a is slow for the other app server: its write hedges to c, and a answers late, holding the
  // refused write at the same version.
  proxies.get(a.id)!.setFault({ kind: 'latency', toStoreMillis: 150, toClientMillis: 0 })
  await written.writeSession(id, { by: 'acknowledged' })
  proxies.get(a.id)!.heal()
  t.same(await reader.readSession(id), { by: 'acknowledged' }, 'the next read sees it')
  await sleep(300) // hand-offs and repairs settle
  t.same(await reader.readSession(id), { by: 'acknowledged' }, 'and still does')
})

/**
 * A session (order a, b, c) that `creator` wrote, read by `deciding`, and then a plain write of
 * `refused` (which reaches a, c and d through `proxies`) that reaches b only: refused, never
 * acknowledged, left on b at the version `deciding` proposes next. a is healed again; c and d
 * stay cut off from `refused` (and whoever shares their proxies).
 */
async function refusedOnB(
  t: Test,
  managers: Record<'creator' | 'refused' | 'deciding', SessionManager> & {
    proxies: Map<string, FaultProxy>
  },
): Promise<{ id: string; read: { version: number } }> {
  const { creator, refused, deciding, proxies } = managers
  const id = idWithOrderPrefix(creator, [a.id, b.id, c.id])
  await creator.writeSession(id, { n: 0 })
  const read = (await deciding.readSession(id, { withVersion: true }))!
  for (const store of [a, c, d]) proxies.get(store.id)!.setFault({ kind: 'reset' })
  const error = await refused.writeSession(id, { n: 'refused' }).catch((e: unknown) => e)
  t.ok(error instanceof NotEnoughStoresError, 'a refused write left on b')
  proxies.get(a.id)!.heal()
  return { id, read }
}

t.test("a compare-and-set's follower at the decided version moves the write on", async (t) => {
  const creator = await startManager(t, cluster, settings)
  // refused reaches a, c and d through proxies; a reader cannot reach a (one store of the
  // session's first two: within the bound).
  const {
    first: refused,
    second: deciding,
    proxies,
  } = await collidingServers(t, [[a.id, c.id, d.id], []])
  const reader = await startManager(t, cluster, {
    ...settings,
    stores: cluster
      .storeConfigs()
      .map((config) =>
        config.id === a.id ? { ...config, port: proxies.get(a.id)!.port } : config,
      ),
  })
  const { id, read } = await refusedOnB(t, { creator, refused, deciding, proxies })
  for (const store of [c, d]) proxies.get(store.id)!.heal()
  // Decided by a at the same version; its follower b holds the refused write there.
  const written = await deciding.writeSession(id, { n: 1 }, { expectedVersion: read.version })
  t.ok(written.version > read.version)
  t.same(await creator.readSession(id), { n: 1 }, 'a read that reaches every store sees it')
  proxies.get(a.id)!.setFault({ kind: 'reset' })
  t.same(await reader.readSession(id), { n: 1 }, 'a read that cannot reach a sees it too')
  t.same(
    await creator.readSession(id, { withVersion: true }).then((session) => session?.version),
    written.version,
    'at the version acknowledged',
  )
})

t.test('a compare-and-set moving on that finds its version superseded was made', async (t) => {
  // The creator reaches b through a proxy of its own; refused reaches a, c and d through
  // proxies, deciding b, c and d.
  const own = (await proxiesFor(t, cluster, [b.id])).get(b.id)!
  const creator = await startManager(t, cluster, {
    ...settings,
    healthCheckIntervalMillis: 3_600_000, // a round would replay the refused write's hints
    // Decides at the first store at once (no quorum check), and waits for b as its follower.
    readQuorum: 1,
    queryTimeoutMillis: 5000,
    stores: cluster
      .storeConfigs()
      .map((config) => (config.id === b.id ? { ...config, port: own.port } : config)),
  })
  const {
    first: refused,
    second: deciding,
    proxies,
  } = await collidingServers(t, [
    [a.id, c.id, d.id],
    [b.id, c.id, d.id],
  ])
  const { id, read } = await refusedOnB(t, { creator, refused, deciding, proxies })
  // The follower's answer (b, holding the refused write at the decided version) comes late,
  // and no other store can stand in for it; meanwhile another app server updates the session
  // over the decided version, its own follower past b.
  proxies.get(b.id)!.setFault({ kind: 'latency', toStoreMillis: 400, toClientMillis: 0 })
  const writing = deciding.writeSession(id, { n: 1 }, { expectedVersion: read.version })
  let decided = read.version
  while (decided === read.version) {
    await sleep(10)
    const rows = await a.query<{ version: number }>('SELECT version FROM sessions WHERE id = ?', [
      id,
    ])
    decided = Number(rows[0]!.version)
  }
  // Slower than the other app server's follower: that one meets the refused write on b.
  own.setFault({ kind: 'latency', toStoreMillis: 2000, toClientMillis: 0 })
  await creator.writeSession(id, { n: 2 }, { expectedVersion: decided })
  own.heal()
  const written = await writing.catch((e: unknown) => e)
  t.notOk(written instanceof Error, `the decided write is not reported failed (${String(written)})`)
  t.match(written, { version: decided, storeIds: [a.id], dropped: false }, 'made, on a')
  for (const proxy of proxies.values()) proxy.heal()
  t.same(await creator.readSession(id), { n: 2 }, 'the later update stands')
  t.ok(await oneDataPerVersion(id), 'no two copies of one version hold different data')
})

t.test('a copy of this very write that a read repair put there first is this write', async (t) => {
  // The writer reaches b slowly and c not at all (no hedge stands in for b); a quorum reader
  // meanwhile copies the write from a to b, before the writer's own statement gets there.
  const proxies = await proxiesFor(t, cluster, [b.id, c.id])
  const writer = await startManager(t, cluster, {
    ...settings,
    queryTimeoutMillis: 5000, // b's statements (and new connections) take 600 ms a trip
    stores: cluster
      .storeConfigs()
      .map((config) =>
        proxies.has(config.id) ? { ...config, port: proxies.get(config.id)!.port } : config,
      ),
  })
  const reader = await startManager(t, cluster, { ...settings, readLeaseMillis: 0 })
  const id = idWithOrderPrefix(reader, [a.id, b.id, c.id])
  const first = await writer.writeSession(id, { v: 1 })
  proxies.get(b.id)!.setFault({ kind: 'latency', toStoreMillis: 600, toClientMillis: 0 })
  proxies.get(c.id)!.setFault({ kind: 'reset' })
  const writing = writer.writeSession(id, { v: 2 })
  const versionOn = async (store: typeof a): Promise<number> =>
    Number(
      (await store.query<{ version: number }>('SELECT version FROM sessions WHERE id = ?', [id]))[0]
        ?.version,
    )
  while ((await versionOn(a)) === first.version) await sleep(10)
  const second = await versionOn(a)
  t.same(await reader.readSession(id), { v: 2 }, 'a quorum read finds it on a (and repairs b)')
  while ((await versionOn(b)) !== second) await sleep(10)
  const written = await writing
  t.same(
    { version: written.version, storeIds: written.storeIds },
    { version: second, storeIds: [a.id, b.id] },
    'acknowledged on a and b at its first version: not made again',
  )
  for (const proxy of proxies.values()) proxy.heal()
})

t.test(
  'a statement resent after a reset that finds its version holding another write',
  async (t) => {
    // The second app server's statements vanish, then their connections are reset: the driver
    // sends them again, and they find the version they propose, taken by the first meanwhile.
    const lostThenResent = async <T>(
      proxies: Map<string, FaultProxy>,
      write: () => Promise<T>,
    ): Promise<T | unknown> => {
      for (const proxy of proxies.values()) proxy.setFault({ kind: 'blackhole' })
      const pending = write().catch((error: unknown) => error)
      await sleep(100)
      for (const proxy of proxies.values()) proxy.heal()
      return pending
    }
    const plain = await collidingServers(t, [[], [a.id, b.id]])
    const id = idWithOrderPrefix(plain.first, [a.id, b.id])
    await plain.second.readSession(id) // open connections, so that the writes go out on them
    await plain.first.writeSession(id, { by: 'first' })
    const written = await lostThenResent(plain.proxies, () =>
      plain.second.writeSession(id, { by: 'second' }),
    )
    t.notOk(written instanceof Error, 'the plain write is acknowledged')
    t.same(await plain.first.readSession(id), { by: 'second' }, 'and it is the one a read sees')
    t.ok(await oneDataPerVersion(id), 'no version holds two writes')

    const creator = await startManager(t, cluster, settings)
    const updated = idWithOrderPrefix(creator, [a.id, b.id])
    const { version } = await creator.writeSession(updated, { n: 0 })
    const cas = await collidingServers(t, [[], [a.id, b.id]])
    await cas.second.readSession(updated)
    await cas.first.writeSession(updated, { n: 1, by: 'first' }, { expectedVersion: version })
    const outcome = await lostThenResent(cas.proxies, () =>
      cas.second.writeSession(updated, { n: 1, by: 'second' }, { expectedVersion: version }),
    )
    t.type(outcome, VersionConflictError, 'the compare-and-set on the same version: a conflict')
    t.same(await copiesData(updated), [JSON.stringify({ n: 1, by: 'first' })], 'nothing else')
  },
)
