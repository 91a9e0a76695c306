import t from 'tap'
import type { RepairNeededEvent, SessionManager } from '../lib/index.js'
import { startTestCluster } from './helpers/cluster.js'
import {
  createManager,
  idWithOrderPrefix,
  rowsOnStores,
  startManager,
  storeState,
} from './helpers/manager.js'
import { sleep, waitFor } from './helpers/wait.js'

// Hints are bounded in time (hintWindowMillis): past the window a store's missed writes leave
// one repair marker per holder, `repair-needed` is emitted, and the store serves no reads
// alone until a finished repair.
const cluster = await startTestCluster(t, { stores: 3 })
const crashTest = cluster.canCrash ? t.test.bind(t) : t.skip.bind(t)
const [a, b, c] = [cluster.stores[0]!, cluster.stores[1]!, cluster.stores[2]!]

interface HintRow {
  id: string
  version: number
}

async function hintsFor(storeId: string): Promise<Map<string, HintRow[]>> {
  const rows = new Map<string, HintRow[]>()
  for (const holder of [b, c]) {
    rows.set(
      holder.id,
      await holder.query<HintRow>(
        'SELECT CAST(id AS CHAR) AS id, version FROM sessions_hints WHERE target_store = ? ORDER BY id',
        [storeId],
      ),
    )
  }
  return rows
}

function state(manager: SessionManager, storeId: string): string {
  return manager.stats().stores.find((store) => store.id === storeId)!.state
}

function behind(manager: SessionManager, storeId: string): boolean {
  return manager.stats().stores.find((store) => store.id === storeId)!.behind
}

crashTest(
  'past the hint window: one marker instead of hints, repair-needed once, no reads until repair',
  async (t) => {
    const options = { copies: 2, hintWindowMillis: 600, healthCheckIntervalMillis: 100 }
    const writer = await startManager(t, cluster, options)
    const events: RepairNeededEvent[] = []
    writer.on('repair-needed', (event) => events.push(event))
    const ids = Array.from({ length: 3 }, () => idWithOrderPrefix(writer, [a.id]))
    for (const id of ids) await writer.writeSession(id, { v: 1 })

    await a.kill()
    t.teardown(() => (a.running ? undefined : a.start()))
    const early = await writer.writeSession(ids[0]!, { v: 2 })
    t.notOk(early.degraded, 'a hinted write is a full acknowledgement')
    t.same(
      [...(await hintsFor(a.id)).values()].map((rows) => rows.map((row) => row.id)),
      [[ids[0]], [ids[0]]],
      'inside the window: a hint on each store that took the write',
    )
    t.equal(events.length, 0)

    await sleep(700)
    const late1 = await writer.writeSession(ids[1]!, { v: 2 })
    const late2 = await writer.writeSession(ids[2]!, { v: 2 })
    t.notOk(late1.degraded || late2.degraded, 'a marked write is a full acknowledgement too')
    t.equal(events.length, 1, 'repair-needed is emitted once')
    t.equal(events[0]!.storeId, a.id)
    t.ok(events[0]!.missingForMillis > 600, `missing for ${events[0]!.missingForMillis} ms`)
    for (const [holder, rows] of await hintsFor(a.id)) {
      t.same(
        rows,
        [
          { id: '', version: 2 },
          { id: ids[0], version: early.version },
        ],
        `${holder}: the marker (set twice) and the hint from inside the window; no new hints`,
      )
    }

    await a.start()
    const fresh = createManager(t, cluster, options)
    await fresh.ready()
    await waitFor('a new manager to see A behind (the marker)', () => behind(fresh, a.id))
    await sleep(500) // several health rounds: no replay can bring A back
    t.ok(behind(writer, a.id), 'A stays behind for the writer')
    t.ok(behind(fresh, a.id), 'and for the new manager')
    t.equal(state(writer, a.id), 'up', 'A is up: it takes writes')
    const onA = await a.query<{ id: string; version: number }>(
      'SELECT CAST(id AS CHAR) AS id, version FROM sessions WHERE id IN (?, ?)',
      [ids[1], ids[2]],
    )
    t.ok(
      onA.every((row) => row.version < late1.version),
      'A still holds the old copies of the marked sessions',
    )
    for (const id of ids) t.same(await writer.readSession(id), { v: 2 })

    const result = await writer.repair()
    t.ok(result.done, 'the repair finished')
    await waitFor('A in service again', () => !behind(writer, a.id))
    t.same(
      [...(await hintsFor(a.id)).values()],
      [[], []],
      'the marker and the hints are gone once A caught up',
    )
    const after = await a.query<{ id: string; version: number }>(
      'SELECT CAST(id AS CHAR) AS id, version FROM sessions WHERE id IN (?, ?, ?) ORDER BY id',
      ids,
    )
    t.same(
      after.map((row) => row.version).sort(),
      [early.version, late1.version, late2.version].sort(),
      'A holds the newest copy of every session',
    )
    await waitFor('the other manager to put A in service too', () => !behind(fresh, a.id))

    // Inside the window again: a new outage is hinted as usual.
    await a.kill()
    await writer.writeSession(ids[0]!, { v: 3 })
    t.equal(events.length, 1, 'no repair-needed for a fresh outage')
    await a.start()
    await waitFor('A caught up by replay', () => !behind(writer, a.id))
  },
)

crashTest('a repair keeps a marker set while it ran', async (t) => {
  const options = { copies: 2, hintWindowMillis: 1, healthCheckIntervalMillis: 100 }
  const writer = await startManager(t, cluster, options)
  const id = idWithOrderPrefix(writer, [a.id])
  await writer.writeSession(id, { v: 1 })
  await a.kill()
  t.teardown(() => (a.running ? undefined : a.start()))
  await writer.writeSession(id, { v: 2 })
  await sleep(5)
  await writer.writeSession(id, { v: 3 }) // past the window: a marker
  await a.start()
  await waitFor('A up (behind)', () => state(writer, a.id) === 'up')
  // The repair reads the markers first; a write that misses A meanwhile sets them again.
  const repairing = writer.repair({
    batchSize: 1,
    onProgress: () => {
      void b.query('UPDATE sessions_hints SET version = version + 1 WHERE id = ?', [''])
    },
  })
  const result = await repairing
  t.ok(result.done)
  const markers = await b.query<{ version: number }>(
    'SELECT version FROM sessions_hints WHERE target_store = ? AND id = ?',
    [a.id, ''],
  )
  t.equal(markers.length, 1, 'the marker counted up during the repair stays')
  await sleep(400)
  t.ok(behind(writer, a.id), 'and A stays behind until the next repair')
  t.ok((await writer.repair()).done)
  await waitFor('A in service after the second repair', () => !behind(writer, a.id))
})

crashTest('a repair run by another process (the CLI) puts the store back in service', async (t) => {
  const options = { copies: 2, hintWindowMillis: 1, healthCheckIntervalMillis: 100 }
  const app = await startManager(t, cluster, options)
  const id = idWithOrderPrefix(app, [a.id])
  await app.writeSession(id, { v: 1 })
  await a.kill()
  t.teardown(() => (a.running ? undefined : a.start()))
  await app.writeSession(id, { v: 2 })
  await sleep(5)
  const last = await app.writeSession(id, { v: 3 }) // past the window: a marker
  await a.start()
  await waitFor('A up (behind)', () => state(app, a.id) === 'up')

  // docs/operations.md: once every store is back, run `session-shards repair`, its own manager.
  const markers = async () =>
    [...(await hintsFor(a.id)).values()].flatMap((rows) => rows.filter((row) => row.id === ''))
  const cli = createManager(t, cluster, options)
  await cli.ready()
  // A write that misses A while the repair runs sets the markers again: they stay.
  const first = await cli.repair({
    batchSize: 1,
    onProgress: () => {
      void b.query('UPDATE sessions_hints SET version = version + 1 WHERE id = ?', [''])
    },
  })
  t.ok(first.done, 'a first repair finished')
  t.equal((await markers()).length, 1, 'the marker counted up while it ran stays')
  await sleep(400)
  t.ok(behind(app, a.id), 'and A stays behind for the app server')

  t.ok((await cli.repair()).done, 'a second repair finished')
  await cli.close()
  t.same(await markers(), [], 'it cleared the markers')
  await waitFor('A in service again for the app server', () => !behind(app, a.id), 5000).then(
    () => t.pass('A serves the app server again'),
    (error: Error) => t.fail(error.message),
  )
  const onA = await a.query<{ version: number }>('SELECT version FROM sessions WHERE id = ?', [id])
  t.same(onA, [{ version: last.version }], 'A holds the newest copy')
  t.same(await app.readSession(id), { v: 3 })

  // The window starts afresh: a new outage is hinted as usual and replayed.
  await a.kill()
  await app.writeSession(id, { v: 4 })
  const left = [...(await hintsFor(a.id)).values()].flat().map((row) => row.id)
  t.ok(
    left.includes(id) && !left.includes(''),
    `a write A misses now leaves a hint, no marker: ${JSON.stringify(left)}`,
  )
  await a.start()
  await waitFor('A caught up by replay', () => !behind(app, a.id))
})

crashTest(
  'a store that missed a write is back in service while another first store of the session is lost, which a hint then catches up',
  async (t) => {
    const fast = { copies: 2, healthCheckIntervalMillis: 100 }
    const manager = await startManager(t, cluster, fast)
    const observer = await startManager(t, cluster, fast)
    // The session's first stores are c and b; a is its third.
    const id = idWithOrderPrefix(manager, [c.id, b.id, a.id])
    await manager.writeSession(id, { v: 1 })
    await b.kill()
    const v2 = await manager.writeSession(id, { v: 2 })
    t.same([...v2.storeIds].sort(), [a.id, c.id].sort(), 'v2 failed over past b: a hint for b')
    await waitFor('the manager to see b down', () => storeState(manager, b.id) === 'down')

    // c is lost (one store: within what copies 2 survives); b comes back and is caught up from
    // a, though c, the session's other first store, cannot be read.
    await c.kill()
    t.teardown(() => c.start())
    await b.start()
    await waitFor('b back in service for the manager that hinted it', () => {
      return storeState(manager, b.id) === 'up'
    })
    await waitFor('b back in service for the other manager (the durable hint)', () => {
      return storeState(observer, b.id) === 'up'
    })
    const held = async (): Promise<Map<string, string | null>> =>
      new Map(
        [...(await rowsOnStores(cluster, id))].map(([store, row]) => [
          store,
          row?.data?.toString() ?? null,
        ]),
      )
    t.equal((await held()).get(b.id), JSON.stringify({ v: 2 }), 'b holds v2')
    t.same(await manager.readSession(id), { v: 2 }, 'the write survived the loss of c')
    const hintsFor = async (target: string): Promise<number> => {
      const rows = await a.query<{ n: number }>(
        'SELECT COUNT(*) AS n FROM sessions_hints WHERE target_store = ? AND id = ?',
        [target, id],
      )
      return Number(rows[0]?.n)
    }
    t.equal(await hintsFor(b.id), 0, "b's hint was replayed and deleted")
    t.ok((await hintsFor(c.id)) > 0, 'c, which could not be read, got a hint instead')

    // c comes back: its hint catches it up, and a's copy (past the first two) goes.
    await c.start()
    await waitFor('c back in service', () => storeState(manager, c.id) === 'up')
    await waitFor(
      "a's copy past the first stores removed",
      async () => (await held()).get(a.id) === null,
    )
    t.equal(await hintsFor(c.id), 0, "c's hint was replayed and deleted")
  },
)
