import t from 'tap'
import { createHash } from 'node:crypto'
import type { RowDataPacket } from 'mysql2'
import type { Test } from 'tap'
import type { SessionManager } from '../lib/index.js'
import { batchOutcomes } from '../lib/store/batch-outcomes.js'
import type { SessionWrite } from '../lib/store/rows.js'
import { ROW_GONE } from '../lib/store/rows.js'
import { startTestCluster } from './helpers/cluster.js'
import { proxiesFor } from './helpers/gray.js'
import { startManager, statementsSent } from './helpers/manager.js'
import { sleep } from './helpers/wait.js'

// A batch of writes is one multi-row upsert; when its OK packet counts rows it left as they
// were, the batch is read back (batch-outcomes.ts): a row at the batch's own version with its
// data is its own (docs/design.md, "Batched writes"). Ordinary refusals, two writes of one
// session in one batch and a batch resent after a broken connection must not make the batch's
// other writes again.
const cluster = await startTestCluster(t, { stores: 1 })
const store = cluster.stores[0]!

/** A manager (copies 1) whose clock is frozen: its versions are P, P + 1, P + 2, ... */
async function frozenManager(
  t: Test,
  extra: Record<string, unknown> = {},
): Promise<SessionManager> {
  const frozen = Date.now() + 3_600_000
  return startManager(t, cluster, {
    copies: 1,
    ttlSeconds: 86_400,
    sweepIntervalSeconds: 0,
    healthCheckIntervalMillis: 3_600_000,
    clock: { now: () => frozen },
    ...extra,
  })
}

/** The version the manager proposes next is this one + 1. */
async function lastVersion(manager: SessionManager): Promise<number> {
  return (await manager.writeSession(manager.generateId(), { probe: true })).version
}

t.test('batchOutcomes, from tables', async (t) => {
  const write = (sessionId: string, version: number, data = sessionId): SessionWrite => ({
    sessionId,
    data: Buffer.from(data),
    fields: {
      version,
      expiresAtMillis: 0,
      explicitExpiry: false,
      ttlSeconds: null,
      owner: null,
      expectedVersion: undefined,
      createsAbsent: false,
      now: 0,
    },
  })
  const row = (id: string, version: number, data = id) => ({
    id,
    version,
    deleted: 0,
    data_sha256: createHash('sha256').update(data).digest('hex'),
  })
  const W = { kind: 'written' }
  const O = (storedVersion: number) => ({ kind: 'outdated', storedVersion })
  const [x, y, x2] = [write('x', 10), write('y', 11), write('x', 12)]
  const table: [string, SessionWrite[], ReturnType<typeof row>[], unknown][] = [
    ['one refused, read back so', [x, y], [row('x', 10), row('y', 20)], [W, O(20)]],
    ['another write at its version', [x, y], [row('x', 10, 'other'), row('y', 11)], [O(10), W]],
    ['a copy of this write, there before it', [x], [row('x', 10)], [W]],
    [
      'two writes of a session: the newer one left',
      [x, y, x2],
      [row('x', 12), row('y', 11)],
      [W, W, W],
    ],
    // This write, or the tombstone or newer copy it did not apply over: sent again alone.
    ['no row left (swept or removed since)', [x], [], [ROW_GONE]],
    // Two writes of one session that proposed the same version (a random step above a version
    // ahead, one pair in a thousand): the row holds one of them, the other did not land.
    [
      'two writes of a session at one version: the first applied',
      [write('x', 10, 'first'), write('x', 10, 'second')],
      [row('x', 10, 'first')],
      [W, O(10)],
    ],
    [
      'two writes of a session at one version: the second applied',
      [write('x', 10, 'first'), write('x', 10, 'second')],
      [row('x', 10, 'second')],
      [O(10), W],
    ],
    ['two writes of a session, both refused', [x, x2], [row('x', 20, 'other')], [O(20), O(20)]],
  ]
  for (const [what, writes, rows, outcomes] of table) {
    t.same(batchOutcomes(rows as unknown as RowDataPacket[], writes), outcomes, what)
  }
})

t.test('control: one row refused in a batch, the others are written once', async (t) => {
  const manager = await frozenManager(t)
  const s = manager.generateId()
  await manager.writeSession(s, { n: 0 })
  const p = await lastVersion(manager)
  // s far ahead: its row is refused, read back as refused (1 = 1).
  await store.query('UPDATE sessions SET version = ? WHERE id = ?', [p + 1_000_000, s])
  const others = Array.from({ length: 58 }, () => manager.generateId())
  const before = statementsSent(manager, store.id, 'writtenVersions')
  const results = await Promise.all([
    manager.writeSession(manager.generateId(), { lone: 0 }),
    manager.writeSession(manager.generateId(), { lone: 1 }),
    manager.writeSession(s, { n: 1 }),
    ...others.map((id, i) => manager.writeSession(id, { i })),
  ])
  t.ok(statementsSent(manager, store.id, 'writtenVersions') > before, 'the batch was read back')
  const again = results.slice(3).filter((result) => result.version > p + 61)
  t.equal(again.length, 0, 'no write but the refused one was made a second time')
})

t.test(
  'two writes of one session in a batch, the older refused: the other rows are written once',
  async (t) => {
    const manager = await frozenManager(t)
    const s = manager.generateId()
    await manager.writeSession(s, { n: 0 })
    const p = await lastVersion(manager)
    // Proposed in call order: two lone writes at p + 1 and p + 2, then the batch: s at p + 3,
    // the others at p + 4 ... p + 59, s again at p + 60. s stands at p + 10 meanwhile (another
    // app server's write, say): the older write of s is refused in the batch, the newer applies.
    await store.query('UPDATE sessions SET version = ? WHERE id = ?', [p + 10, s])
    const others = Array.from({ length: 56 }, () => manager.generateId())
    const writeManyBefore = statementsSent(manager, store.id, 'writeMany')
    const results = await Promise.all([
      manager.writeSession(manager.generateId(), { lone: 0 }),
      manager.writeSession(manager.generateId(), { lone: 1 }),
      manager.writeSession(s, { n: 'older' }),
      ...others.map((id, i) => manager.writeSession(id, { i })),
      manager.writeSession(s, { n: 'newer' }),
    ])
    const newer = results.at(-1)!
    t.equal(newer.version, p + 60, `the newer write of s applied at p + 60, reported as such`)
    const redone = results.slice(3, -1).filter((result) => result.version > p + 60)
    t.equal(
      redone.length,
      0,
      `no other session's write made twice (${redone.length} of 56 were; writeMany ` +
        `${statementsSent(manager, store.id, 'writeMany') - writeManyBefore})`,
    )
  },
)

t.test('a batch resent after a reset lost its answer: its rows are written once', async (t) => {
  const proxy = (await proxiesFor(t, cluster, [store.id])).get(store.id)!
  const manager = await frozenManager(t, {
    queryTimeoutMillis: 5000,
    stores: cluster.storeConfigs().map((config) => ({ ...config, port: proxy.port })),
  })
  // Warm the pool: the burst below needs no new connection.
  await Promise.all(
    Array.from({ length: 60 }, (_, i) => manager.writeSession(manager.generateId(), { i })),
  )
  const p = await lastVersion(manager)
  const ids = Array.from({ length: 60 }, () => manager.generateId())
  proxy.setFault({ kind: 'latency', toStoreMillis: 0, toClientMillis: 400 })
  const writing = Promise.all(ids.map((id, i) => manager.writeSession(id, { i, marker: 'x' })))
  // Once every row is stored, the batch's answer is still on its way back: lose it.
  for (;;) {
    const rows = await store.query<{ n: number }>(
      `SELECT COUNT(*) AS n FROM sessions WHERE id IN (${ids.map(() => '?').join(', ')})`,
      ids,
    )
    if (Number(rows[0]!.n) === ids.length) break
    await sleep(5)
  }
  proxy.setFault({ kind: 'reset' })
  proxy.setFault({ kind: 'none' })
  const results = await writing
  const redone = results.filter((result) => result.version > p + ids.length)
  t.equal(redone.length, 0, `no write made twice (${redone.length} of ${ids.length} were)`)
})

t.test('two writes of one session that propose the same version in one batch', async (t) => {
  // An app server an hour ahead wrote the session; two writes of it meet that version and
  // propose the same one above it (the random step stubbed to collide), in one batch.
  const ahead = await frozenManager(t)
  const proxies = await proxiesFor(t, cluster, [store.id])
  const writer = await startManager(t, cluster, {
    copies: 1,
    healthCheckIntervalMillis: 3_600_000,
    stores: cluster
      .storeConfigs()
      .map((config) => ({ ...config, port: proxies.get(store.id)!.port })),
  })
  const id = writer.generateId()
  await ahead.writeSession(id, { by: 'ahead' })
  const fillers = [writer.generateId(), writer.generateId()]
  await Promise.all([id, ...fillers].map((each) => writer.readSession(each)))
  proxies.get(store.id)!.setFault({ kind: 'latency', toStoreMillis: 30, toClientMillis: 30 })
  const random = Math.random
  Math.random = () => 0.5
  let results: { version: number }[]
  try {
    results = await Promise.all([
      ...fillers.map((filler) => writer.writeSession(filler, { filler: true })),
      writer.writeSession(id, { by: 'first' }),
      writer.writeSession(id, { by: 'second' }),
    ])
  } finally {
    Math.random = random
  }
  proxies.get(store.id)!.heal()
  const [row] = await store.query<{ version: number; data: Buffer }>(
    'SELECT version, data FROM sessions WHERE id = ?',
    [id],
  )
  for (const [index, by] of ['first', 'second'].entries()) {
    const { version } = results[fillers.length + index]!
    const landed =
      Number(row!.version) > version ||
      (Number(row!.version) === version && String(row!.data) === JSON.stringify({ by }))
    t.ok(landed, `${by} (${version}) is on the store, or superseded there (${row!.version})`)
  }
})

// A batched write that met a tombstone is read back; a sweep (any app server's: the tombstone
// had expired) may delete the row in between. No row then says nothing about whose it was: the
// write goes again alone, and is reported as what that statement finds.
t.test('a batched write dropped on a tombstone swept before the read back', async (t) => {
  const proxy = (await proxiesFor(t, cluster, [store.id])).get(store.id)!
  const opts = {
    copies: 1,
    sweepIntervalSeconds: 0,
    healthCheckIntervalMillis: 3_600_000,
    queryTimeoutMillis: 5000,
  }
  const manager = await startManager(t, cluster, {
    ...opts,
    stores: cluster.storeConfigs().map((config) => ({ ...config, port: proxy.port })),
  })
  const sweeper = await startManager(t, cluster, { ...opts, sweepGraceSeconds: 0 })
  const s = manager.generateId()
  await manager.writeSession(s, { before: 'logout' })
  await manager.destroySession(s)
  // An old logout: its tombstone has expired (a sweep may delete it).
  await store.query('UPDATE sessions SET expires_at = 1 WHERE id = ?', [s])
  // Warm the pool so that the burst below needs no new connection.
  await Promise.all(
    Array.from({ length: 8 }, (_, i) => manager.writeSession(manager.generateId(), { i })),
  )
  const readBacks = statementsSent(manager, store.id, 'writtenVersions')
  proxy.setFault({ kind: 'latency', toStoreMillis: 0, toClientMillis: 300 })
  // The batch's answer is on its way back: the store already ran it.
  const batchRan = proxy.answered((chunk) => chunk.includes(Buffer.from(s)))
  const writes = Promise.all([
    manager.writeSession(manager.generateId(), { lone: 0 }),
    manager.writeSession(manager.generateId(), { lone: 1 }),
    manager.writeSession(s, { after: 'logout' }),
    manager.writeSession(manager.generateId(), { other: 1 }),
  ])
  await batchRan
  const [row] = await store.query<{ deleted: number }>(
    'SELECT deleted FROM sessions WHERE id = ?',
    [s],
  )
  t.equal(row?.deleted, 1, 'the batch met the tombstone')
  const swept = await sweeper.sweep()
  t.ok(
    JSON.stringify(swept).includes('"deleted":1'),
    `the sweep deleted the tombstone: ${JSON.stringify(swept)}`,
  )
  const results = await writes
  proxy.setFault({ kind: 'none' })
  t.ok(statementsSent(manager, store.id, 'writtenVersions') > readBacks, 'the batch was read back')
  const result = results[2]!
  const read = await manager.readSession(s)
  t.ok(
    result.dropped || read !== null,
    `the write is reported dropped (${String(result.dropped)}) or the session is there (${JSON.stringify(read)})`,
  )
})
