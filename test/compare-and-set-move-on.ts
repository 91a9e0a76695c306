import t from 'tap'
import type { Test } from 'tap'
import { NotEnoughStoresError, WriteOutcomeUnknownError } from '../lib/index.js'
import type { SessionManager, SessionManagerOptions } from '../lib/index.js'
import type { FaultProxy } from '../lib/local-cluster/index.js'
import { startTestCluster } from './helpers/cluster.js'
import { collidingServers as collidingManagers } from './helpers/colliding.js'
import { proxiesFor } from './helpers/gray.js'
import { idWithOrderPrefix, rowsOnStores, startManager, storesOf } from './helpers/manager.js'
import { waitFor } from './helpers/wait.js'
import type { Store } from '../lib/store/store.js'

// A compare-and-set decided by one store whose follower holds another write (at the decided
// version, or above it: a write refused after reaching that store) moves on: a compare-and-set
// on the decided version, above the one found. These cases break that under gray faults.
const cluster = await startTestCluster(t, { stores: 4 })
const { stores } = cluster
const [a, b, c, d] = [stores[0]!, stores[1]!, stores[2]!, stores[3]!]
const settings: Partial<SessionManagerOptions> = { copies: 2, ttlSeconds: 86_400 }
const plainSettings: Partial<SessionManagerOptions> = { copies: 2 }

/**
 * Two managers whose versions collide (helpers/colliding.ts), ahead of the other managers
 * (their versions are below) by less than the 60 s an announcement lasts, with one connection
 * per store: the decision moving on goes out on the connection that prepared it.
 */
function collidingServers(t: Test, through: [readonly string[], readonly string[]]) {
  return collidingManagers(t, cluster, through, Date.now() + 20_000, {
    ...settings,
    connectionsPerStore: 1,
  })
}

/**
 * `writer` updates the session to `{ n: 1 }` on version `read`, and it moves on: either it says
 * the outcome is unknown, or, acknowledged (copies 2), `reader` cut off from a through `proxyA`
 * reads it.
 */
async function unknownOrVisibleWithoutA(
  t: Test,
  test: {
    id: string
    read: number
    writer: SessionManager
    moveOn: { movedOn: () => boolean }
    reader: SessionManager
    proxyA: FaultProxy
  },
): Promise<void> {
  const outcome = await test.writer
    .writeSession(test.id, { n: 1 }, { expectedVersion: test.read })
    .catch((e: unknown) => e)
  t.ok(test.moveOn.movedOn(), 'the write moved on')
  if (outcome instanceof Error) {
    t.type(outcome, WriteOutcomeUnknownError, 'reported as unknown')
    return
  }
  const rows = await summary(test.id)
  test.proxyA.setFault({ kind: 'reset' })
  t.same(
    await test.reader.readSession(test.id),
    { n: 1 },
    `an app server that cannot reach a reads the acknowledged write (${JSON.stringify(outcome)}; ${rows})`,
  )
}

/**
 * Runs `act` as `manager` sends its first compare-and-set expecting another version than
 * `read` (the decision moving on) to store `id`; resolves whether it did.
 */
function onMoveOn(
  manager: SessionManager,
  storeId: string,
  read: number,
  act: () => void,
): { movedOn: () => boolean } {
  const store = storesOf(manager).find((each) => each.id === storeId)!
  const write = store.write.bind(store)
  let movedOn = false
  store.write = async (written) => {
    const expected = written.fields.expectedVersion
    if (expected !== undefined && expected !== read && !movedOn) {
      movedOn = true
      act()
    }
    return write(written)
  }
  return { movedOn: () => movedOn }
}

/**
 * Withdraws every stale announcement: one a previous test's app server left (closed before its
 * store caught up, it stands for a minute) would keep the next test's writer from trusting a.
 */
async function clearAnnouncements(): Promise<void> {
  await Promise.all(stores.map((store) => store.query('DELETE FROM sessions_stale')))
}

async function summary(id: string): Promise<string> {
  const rows = await rowsOnStores(cluster, id)
  return [...rows]
    .map(([store, r]) => `${store}: ${r === null ? '-' : `${r.version} ${String(r.data)}`}`)
    .join(', ')
}

/** Whether `manager`'s read lease trusts store `id` alone now (lib/failure/read-lease.ts). */
function trusts(manager: SessionManager, id: string): boolean {
  const cluster = (manager as unknown as { cluster: { readLease: { trusts(s: Store): boolean } } })
    .cluster
  return cluster.readLease.trusts(storesOf(manager).find((store) => store.id === id)!)
}

t.test(
  'a compare-and-set moving on whose decision timed out after applying is visible without its decider',
  async (t) => {
    // refused reaches a, c and d through proxies; deciding and reader reach a through the same
    // proxy of a; creator reaches b through a proxy of its own. No health rounds (no replay).
    const {
      first: refused,
      second: deciding,
      proxies,
    } = await collidingServers(t, [[a.id, c.id, d.id], [a.id]])
    const proxyA = proxies.get(a.id)!
    const ownB = (await proxiesFor(t, cluster, [b.id])).get(b.id)!
    const quiet = { ...settings, healthCheckIntervalMillis: 3_600_000 }
    const creator = await startManager(t, cluster, {
      ...quiet,
      stores: cluster
        .storeConfigs()
        .map((config) => (config.id === b.id ? { ...config, port: ownB.port } : config)),
    })
    const reader = await startManager(t, cluster, {
      ...quiet,
      stores: cluster
        .storeConfigs()
        .map((config) => (config.id === a.id ? { ...config, port: proxyA.port } : config)),
    })
    const id = idWithOrderPrefix(creator, [a.id, b.id, c.id])
    // Written on a and c: b missed it (hinted, announced stale), so that b follows but does
    // not decide.
    ownB.setFault({ kind: 'reset' })
    const created = await creator.writeSession(id, { n: 0 })
    t.same(created.storeIds, [a.id, c.id], 'written past b')
    ownB.heal()
    // A read restarts deciding's rounds of the announcements (they stop after ten idle leases).
    await waitFor('deciding to hear that b is stale', async () => {
      await deciding.readSession(id)
      return !trusts(deciding, b.id) && trusts(deciding, a.id)
    })
    t.ok(trusts(deciding, a.id), 'a is trusted alone')
    const read = (await deciding.readSession(id, { withVersion: true }))!
    // A plain write that reaches b only: refused, left on b at the version deciding proposes.
    for (const store of [a, c, d]) proxies.get(store.id)!.setFault({ kind: 'reset' })
    const error = await refused.writeSession(id, { n: 'refused' }).catch((e: unknown) => e)
    t.ok(error instanceof NotEnoughStoresError, 'a refused write left on b')
    for (const proxy of proxies.values()) proxy.heal()

    // The compare-and-set's move-on decision (expected: the decided version) reaches a and
    // applies there; its answer is held back past queryTimeoutMillis (a slow network to a).
    const moveOn = onMoveOn(deciding, a.id, read.version, () => {
      const ran = proxyA.answered((chunk) => chunk.includes(Buffer.from(id)))
      proxyA.setFault({ kind: 'latency', toStoreMillis: 0, toClientMillis: 3000 })
      void ran.then(() => proxyA.setFault({ kind: 'none' }))
    })
    // The move-on's own statement may have applied on a, with b not holding it yet: unknown,
    // and said so (success is only right if the write is visible without a).
    const writer = deciding
    await unknownOrVisibleWithoutA(t, { id, read: read.version, writer, moveOn, reader, proxyA })
  },
)

t.test(
  'a compare-and-set acknowledged over a refused write on its follower is the one read',
  async (t) => {
    await clearAnnouncements()
    // d too: the refused write must find no store to fail over to.
    const proxies = await proxiesFor(t, cluster, [a.id, c.id, d.id])
    const viaProxies = (ids: string[]) =>
      cluster
        .storeConfigs()
        .map((config) =>
          ids.includes(config.id) ? { ...config, port: proxies.get(config.id)!.port } : config,
        )
    const writer = await startManager(t, cluster, plainSettings)
    // An app server whose clock runs 5 s ahead, reaching a and c through proxies.
    const ahead = await startManager(t, cluster, {
      ...plainSettings,
      stores: viaProxies([a.id, c.id, d.id]),
      clock: { now: () => Date.now() + 5_000 },
    })
    // An app server that reaches a through the same proxy (cut off from a at the end).
    const reader = await startManager(t, cluster, { ...plainSettings, stores: viaProxies([a.id]) })
    const id = idWithOrderPrefix(writer, [a.id, b.id, c.id])
    await writer.writeSession(id, { n: 0 })
    const read = (await writer.readSession(id, { withVersion: true }))!
    t.same(read.data, { n: 0 })
    // A write that reaches b only: refused (never acknowledged), left on b.
    for (const store of [a, c, d]) proxies.get(store.id)!.setFault({ kind: 'reset' })
    const refused = await ahead.writeSession(id, { n: 'refused' }).catch((e: unknown) => e)
    t.ok(refused instanceof NotEnoughStoresError, 'refused')
    for (const proxy of proxies.values()) proxy.heal()
    // Then, a compare-and-set on the version read: decided at a, b its follower. (Until the
    // ahead app server has replayed what a missed, its announcement keeps the writer from
    // trusting a alone: the check then compares copies, and b's refused write is a conflict.)
    await waitFor('the writer to trust a alone', async () => {
      await writer.readSession(id)
      return trusts(writer, a.id)
    })
    const written = await writer.writeSession(id, { n: 1 }, { expectedVersion: read.version })
    const rows = await summary(id)
    t.same(
      await writer.readSession(id),
      { n: 1 },
      `the writer reads its acknowledged write (${JSON.stringify(written)}; ${rows})`,
    )
    proxies.get(a.id)!.setFault({ kind: 'reset' })
    t.same(
      await reader.readSession(id),
      { n: 1 },
      `an app server that cannot reach a reads it too (${JSON.stringify(written)}; ${rows})`,
    )
  },
)

t.test(
  'a compare-and-set moving on whose decider fails before its move-on is not reported written by one store',
  async (t) => {
    await clearAnnouncements()
    // ahead's proxies (a, c, d) and the writer's own proxy of a, and reader's proxy of a.
    const aheadProxies = await proxiesFor(t, cluster, [a.id, c.id, d.id])
    const writerA = (await proxiesFor(t, cluster, [a.id])).get(a.id)!
    const readerA = (await proxiesFor(t, cluster, [a.id])).get(a.id)!
    const via = (proxy: Map<string, { port: number }>) =>
      cluster
        .storeConfigs()
        .map((config) =>
          proxy.has(config.id) ? { ...config, port: proxy.get(config.id)!.port } : config,
        )
    const writer = await startManager(t, cluster, {
      ...plainSettings,
      healthCheckIntervalMillis: 3_600_000,
      stores: via(new Map([[a.id, writerA]])),
    })
    const ahead = await startManager(t, cluster, {
      ...plainSettings,
      stores: via(aheadProxies),
      clock: { now: () => Date.now() + 5_000 },
    })
    const reader = await startManager(t, cluster, {
      ...plainSettings,
      stores: via(new Map([[a.id, readerA]])),
    })
    const id = idWithOrderPrefix(writer, [a.id, b.id, c.id])
    await writer.writeSession(id, { n: 0 })
    const read = (await writer.readSession(id, { withVersion: true }))!
    // A write that reaches b only: refused (never acknowledged), left on b, 5 s ahead.
    for (const proxy of aheadProxies.values()) proxy.setFault({ kind: 'reset' })
    const refused = await ahead.writeSession(id, { n: 'refused' }).catch((e: unknown) => e)
    t.ok(refused instanceof NotEnoughStoresError, 'refused')
    for (const proxy of aheadProxies.values()) proxy.heal()
    await waitFor('the writer to trust a alone', async () => {
      await writer.readSession(id)
      return trusts(writer, a.id)
    })
    // The compare-and-set is decided at a (b, its follower, holds the refused write above the
    // decided version); a becomes unreachable for the writer just before the move-on.
    const moveOn = onMoveOn(writer, a.id, read.version, () => writerA.setFault({ kind: 'reset' }))
    // b holds the refused write above the decided version, and a cannot be asked: whether a
    // later write superseded the decision cannot be told from b.
    const proxyA = readerA
    await unknownOrVisibleWithoutA(t, { id, read: read.version, writer, moveOn, reader, proxyA })
  },
)

// Without a fault: the move-on's check by quorum finds the deciding store still at the decided
// version (the concurrent write has not reached it yet), and decides there again.
t.test(
  'a compare-and-set superseded by a concurrent plain write (no failure) is not WriteOutcomeUnknownError',
  async (t) => {
    // Every read and compare-and-set check compares readQuorum (2) copies: no lease.
    const noLease: Partial<SessionManagerOptions> = { copies: 2, readLeaseMillis: 0 }
    const x = await startManager(t, cluster, noLease)
    // Another app server whose packets to a take 300 ms (a slow link, no failure).
    const proxyA = (await proxiesFor(t, cluster, [a.id])).get(a.id)!
    const y = await startManager(t, cluster, {
      ...noLease,
      stores: cluster
        .storeConfigs()
        .map((config) => (config.id === a.id ? { ...config, port: proxyA.port } : config)),
    })
    const id = idWithOrderPrefix(x, [a.id, b.id, c.id])
    await x.writeSession(id, { n: 0 })
    const read = (await x.readSession(id, { withVersion: true }))!
    proxyA.setFault({ kind: 'latency', toStoreMillis: 300, toClientMillis: 0 })
    // x's compare-and-set is decided at a; just before its follower write reaches b, y's plain
    // write (a concurrent, later write) lands on b, and is on its way to a.
    const storeB = storesOf(x).find((store) => store.id === b.id)!
    const write = storeB.write.bind(storeB)
    let yWrite: Promise<unknown> | undefined
    storeB.write = async (written) => {
      if (written.fields.expectedVersion === undefined && yWrite === undefined) {
        yWrite = y.writeSession(id, { n: 'y' }).catch((e: unknown) => e)
        await waitFor('y to land on b', async () => {
          const row = (await rowsOnStores(cluster, id)).get(b.id)
          return String(row?.data) === JSON.stringify({ n: 'y' })
        })
      }
      return write(written)
    }
    const outcome = await x
      .writeSession(id, { n: 1 }, { expectedVersion: read.version })
      .catch((e: unknown) => e)
    const yOutcome = await yWrite
    const rows = await summary(id)
    t.notOk(yOutcome instanceof Error, `y's plain write is acknowledged (${String(yOutcome)})`)
    t.notOk(
      outcome instanceof Error,
      `x's compare-and-set, decided and then superseded by y, resolves (${String(outcome)}; ${rows})`,
    )
  },
)
