import t from 'tap'
import type { Test } from 'tap'
import { VersionConflictError } from '../lib/index.js'
import type { SessionManager } from '../lib/index.js'
import { startTestCluster } from './helpers/cluster.js'
import { idWithOrderPrefix, rowsOnStores, startManager } from './helpers/manager.js'

// Versions are the library's own: compare-and-set is equality, no caller value and no value read
// from one session moves the versions proposed for another, and versions are exact integers.
// Behind it all, the rule the guarantees rest on: every acknowledged write is seen by the next
// read from any app server, unless a later acknowledged write or destroy superseded it.
const cluster = await startTestCluster(t, { stores: 3 })
const MAX_SAFE = Number.MAX_SAFE_INTEGER

/** Writes `count` fresh sessions through `writer` and checks each through `reader`. */
async function acknowledgedMeansVisible(
  t: Test,
  writer: SessionManager,
  reader: SessionManager,
  count = 20,
): Promise<void> {
  for (let i = 0; i < count; i++) {
    const id = writer.generateId()
    await writer.writeSession(id, { i, first: true })
    const result = await writer.writeSession(id, { i, second: true })
    t.ok(result.storeIds.length > 0, 'acknowledged')
    const seen = await reader.readSession(id)
    if (JSON.stringify(seen) !== JSON.stringify({ i, second: true })) {
      t.fail(`session ${i}: the acknowledged write is not what the next read sees`, { seen })
      return
    }
  }
  t.pass(`${count} acknowledged writes, each seen by the next read`)
}

t.test('compare-and-set is equality with the stored version', async (t) => {
  const manager = await startManager(t, cluster, { copies: 2 })
  const id = await manager.createSession({ n: 1 })
  const { version } = (await manager.readSession(id, { withVersion: true }))!
  for (const expectedVersion of [version + 1000, version + 1, MAX_SAFE, version - 1, 1, 0]) {
    const error = await manager
      .writeSession(id, { n: 'wrong' }, { expectedVersion })
      .catch((e: unknown) => e)
    t.ok(error instanceof VersionConflictError, `expectedVersion ${expectedVersion}: conflict`)
    t.match(error, { code: 'VERSION_CONFLICT', actualVersion: version })
  }
  t.match(await manager.readSession(id, { withVersion: true }), { data: { n: 1 }, version })
  const written = await manager.writeSession(id, { n: 2 }, { expectedVersion: version })
  t.ok(written.version > version, 'the version read: written, with a higher version')
})

t.test('a caller value never moves the versions of other sessions', async (t) => {
  const manager = await startManager(t, cluster, { copies: 2 })
  const other = await startManager(t, cluster, { copies: 2 })
  const id = await manager.createSession({ n: 1 })
  await manager.writeSession(id, { n: 2 }, { expectedVersion: MAX_SAFE }).catch(() => {})
  await manager.writeSession(id, { n: 3 }, { expectedVersion: 2 ** 52 }).catch(() => {})
  const { version } = (await manager.readSession(id, { withVersion: true }))!
  t.ok(version < Date.now() * 1000 + 60e6, 'the session kept a version the clock minted')
  await acknowledgedMeansVisible(t, manager, other)
  await acknowledgedMeansVisible(t, other, manager)
})

t.test('a row with an absurd version poisons only its own session', async (t) => {
  const reader = await startManager(t, cluster, { copies: 2 })
  const writer = await startManager(t, cluster, { copies: 2 })
  const [a, b] = [cluster.stores[0]!, cluster.stores[1]!]
  for (const absurd of [String(MAX_SAFE - 1), '9007199254740993', '18446744073709551615']) {
    // A broken or hostile peer leaves a copy with an absurd version on the first two stores.
    const id = idWithOrderPrefix(reader, [a.id, b.id])
    await writer.writeSession(id, { before: true })
    for (const store of [a, b]) {
      await store.query('UPDATE sessions SET version = CAST(? AS UNSIGNED) WHERE id = ?', [
        absurd,
        id,
      ])
    }
    await reader.readSession(id).catch(() => null)
    // Neither the manager that read it nor any other proposes versions from it elsewhere.
    await acknowledgedMeansVisible(t, reader, writer, 5)
    await acknowledgedMeansVisible(t, writer, reader, 5)
    // The session itself is still writable (or refuses with a typed error): never dropped.
    const outcome = await writer.writeSession(id, { after: absurd }).then(
      () => 'written',
      (error: { code?: string }) => error.code ?? 'untyped',
    )
    if (outcome === 'written') {
      t.same(await reader.readSession(id), { after: absurd }, `${absurd}: the write is seen`)
    } else {
      t.match(outcome, /^[A-Z_]+$/, `${absurd}: a typed error (${outcome})`)
    }
  }
})

t.test('versions are exact integers: no floating-point rounding on read or compare', async (t) => {
  const manager = await startManager(t, cluster, { copies: 2 })
  const [a, b] = [cluster.stores[0]!, cluster.stores[1]!]
  const id = idWithOrderPrefix(manager, [a.id, b.id])
  await manager.writeSession(id, { v: 'library' })
  // Two copies whose versions differ only beyond double precision (2^53 + 1 and 2^53 + 2):
  // rounded to doubles they would look equal, and a newer write could look outdated.
  await a.query("UPDATE sessions SET version = CAST('9007199254740993' AS UNSIGNED) WHERE id = ?", [
    id,
  ])
  await b.query("UPDATE sessions SET version = CAST('9007199254740994' AS UNSIGNED) WHERE id = ?", [
    id,
  ])
  const written = await manager.writeSession(id, { v: 'after' })
  t.ok(Number.isSafeInteger(written.version), `reported version ${written.version} is exact`)
  t.same(await manager.readSession(id), { v: 'after' })
  const rows = await rowsOnStores(cluster, id)
  for (const storeId of written.storeIds) {
    t.equal(String(rows.get(storeId)!.version), String(written.version), `${storeId} holds it`)
  }
  const read = (await manager.readSession(id, { withVersion: true }))!
  t.equal(read.version, written.version, 'read back exactly')
})
