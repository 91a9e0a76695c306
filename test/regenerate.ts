import t from 'tap'
import type { Test } from 'tap'
import { startTestCluster } from './helpers/cluster.js'
import { grayManagers } from './helpers/gray.js'
import { rowsOnStores, startManager, storesOf, storesWithLiveCopy } from './helpers/manager.js'
import type { FaultProxy } from '../lib/local-cluster/index.js'
import type { SessionManager } from '../lib/index.js'

const cluster = await startTestCluster(t, { stores: 3 })

t.test(
  'regenerate: same data, expiry and timeout under a new id; the old id is dead on every copy',
  async (t) => {
    const manager = await startManager(t, cluster, { copies: 2 })
    const oldId = await manager.createSession({ cart: [1, 2] })
    t.equal(await manager.setSessionTimeout(oldId, 120), true)
    const oldRows = await rowsOnStores(cluster, oldId)
    const newId = await manager.regenerateSession(oldId)
    t.ok(newId !== null && newId !== oldId)
    t.same(await manager.readSession(newId!), { cart: [1, 2] })
    t.equal(
      await manager.getSessionTimeout(newId!),
      120,
      'the per-session timeout moved with the data',
    )
    const newRows = await rowsOnStores(cluster, newId!)
    const oldExpiry = [...oldRows.values()].find((row) => row !== null)!.expires_at
    for (const storeId of manager.locate(newId!).slice(0, 2)) {
      t.equal(newRows.get(storeId)!.expires_at, oldExpiry, `${storeId}: same expiry`)
    }
    t.equal(await manager.readSession(oldId), null, 'the old id reads as gone')
    t.same(await storesWithLiveCopy(cluster, oldId), [], 'no live copy of the old id on any store')
    t.same(await storesWithLiveCopy(cluster, newId!), manager.locate(newId!).slice(0, 2).sort())
    await manager.writeSession(oldId, { attacker: 'fixation' })
    t.equal(await manager.readSession(oldId), null, 'a write to the old id does not bring it back')
    t.equal(await manager.regenerateSession(oldId), null, 'regenerating a dead id gives nothing')
  },
)

t.test(
  'regenerate with a lower maxSessionBytes than the data was written under: a typed error, the old session stays',
  async (t) => {
    const generous = await startManager(t, cluster, { copies: 2 })
    const strict = await startManager(t, cluster, { copies: 2, maxSessionBytes: 1_000 })
    const data = { blob: 'x'.repeat(2_000) }
    const oldId = await generous.createSession(data)
    await t.rejects(strict.regenerateSession(oldId), { code: 'SESSION_TOO_LARGE' })
    t.same(await strict.readSession(oldId), data, 'the old session is still there')
    t.ok(
      (await storesWithLiveCopy(cluster, oldId)).length >= 2,
      'on both of its copies (a hedge around a slow store may add a third)',
    )
  },
)

/** Statements delayed by a proxy must not time out on a loaded machine. */
const SETTINGS = { copies: 2, queryTimeoutMillis: 3000 }

/**
 * Two app servers: `regenerating` reaches every store through a proxy that, once armed (as
 * regenerate picks the new id, between its read and its write), delays its statements by
 * 150 ms, while `meanwhile` runs on the old session. Resolves what regenerate resolved and
 * the id it picked first.
 */
async function regenerateAround(
  t: Test,
  oldId: string,
  regenerating: SessionManager,
  proxies: Map<string, FaultProxy>,
  meanwhile: () => Promise<unknown>,
): Promise<{ result: string | null; picked: string }> {
  let picked = ''
  let other: Promise<unknown> = Promise.resolve()
  const generate = regenerating.generateId.bind(regenerating)
  regenerating.generateId = () => {
    // Once: a regenerate that starts over picks another id, with nothing meanwhile.
    if (picked !== '') return generate()
    for (const proxy of proxies.values()) {
      proxy.setFault({ kind: 'latency', toStoreMillis: 150, toClientMillis: 0 })
    }
    other = meanwhile()
    picked = generate()
    return picked
  }
  const result = await regenerating.regenerateSession(oldId)
  await other
  for (const proxy of proxies.values()) proxy.heal()
  t.ok(picked !== '', 'regenerate picked a new id')
  return { result, picked }
}

t.test('a logout while regenerating wins: the new id does not carry the session on', async (t) => {
  const ids = cluster.stores.map((store) => store.id)
  const { faulty, healthy, proxies } = await grayManagers(t, cluster, ids, SETTINGS)
  const oldId = await healthy.createSession({ user: 'alice' })
  const { result, picked } = await regenerateAround(t, oldId, faulty, proxies, () =>
    healthy.destroySession(oldId),
  )
  t.equal(result, null, 'regenerate reports the session gone')
  t.equal(await healthy.readSession(picked), null, 'the id it picked holds no session')
  // (A copy its write hedged to, past the first two stores, may stay live a while under the
  // tombstones: a tombstone anywhere wins.)
  const fresh = await startManager(t, cluster, SETTINGS)
  t.equal(await fresh.readSession(picked), null, 'nor for an app server started afterwards')
  t.equal(await healthy.readSession(oldId), null, 'the old id stays logged out')
})

t.test('a write while regenerating is carried to the new id', async (t) => {
  const ids = cluster.stores.map((store) => store.id)
  const { faulty, healthy, proxies } = await grayManagers(t, cluster, ids, SETTINGS)
  const oldId = await healthy.createSession({ cart: [1] })
  const { result, picked } = await regenerateAround(t, oldId, faulty, proxies, () =>
    healthy.writeSession(oldId, { cart: [1, 2] }),
  )
  t.ok(result !== null && result !== oldId, 'regenerated')
  t.same(await healthy.readSession(result!), { cart: [1, 2] }, 'with the data written meanwhile')
  if (picked !== result) {
    t.equal(await healthy.readSession(picked), null, 'the id given up holds no session')
  }
  t.equal(await healthy.readSession(oldId), null, 'the old id is gone')
})

t.test('a regenerate that fails after its copy leaves no session under the new id', async (t) => {
  const settings = { copies: 2, ownerKey: 'user', queryTimeoutMillis: 1000 }
  const regenerating = await startManager(t, cluster, settings)
  const other = await startManager(t, cluster, settings)
  const oldId = await other.createSession({ user: 'alice' })
  // Another app server logs the user out right after the copy under the new id is written;
  // then this one cannot read the old id for a moment (a reset on every store), so the
  // check that would see the logout fails.
  let newId = ''
  let cut = false
  const reset = (): never => {
    throw Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' })
  }
  for (const store of storesOf(regenerating)) {
    const write = store.write.bind(store)
    store.write = async (written) => {
      const outcome = await write(written)
      if (written.sessionId !== oldId && newId === '') {
        newId = written.sessionId
        await other.destroySession(oldId)
        cut = true
      }
      return outcome
    }
    const read = store.read.bind(store)
    store.read = async (id) => (cut && id === oldId ? reset() : read(id))
    const readDigest = store.readDigest.bind(store)
    store.readDigest = async (id) => (cut && id === oldId ? reset() : readDigest(id))
  }
  await t.rejects(regenerating.regenerateSession(oldId), { code: 'NO_STORE_AVAILABLE' })
  cut = false
  t.not(newId, '', 'the copy under a new id was written')
  t.equal(await other.readSession(oldId), null, 'the old id is logged out')
  t.equal(await other.readSession(newId), null, 'the new id holds no session')
  t.same(await other.findByOwner('alice'), [], 'the user has no live session')
})

t.test(
  'a regenerate whose copy lands with its answers lost leaves no session under the new id',
  async (t) => {
    const settings = { copies: 2, ownerKey: 'user', queryTimeoutMillis: 1000 }
    const regenerating = await startManager(t, cluster, settings)
    const other = await startManager(t, cluster, settings)
    const oldId = await other.createSession({ user: 'alice' })
    // Another app server logs the user out before the copy under the new id is written; each
    // store then runs the copy, but its answer is lost (a reset after the commit).
    let newId = ''
    for (const store of storesOf(regenerating)) {
      const write = store.write.bind(store)
      store.write = async (written) => {
        if (written.sessionId === oldId) return write(written)
        if (newId === '') {
          newId = written.sessionId
          await other.destroySession(oldId)
        }
        await write(written)
        throw Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' })
      }
    }
    await t.rejects(regenerating.regenerateSession(oldId))
    t.not(newId, '', 'the copy under a new id was written')
    t.equal(await other.readSession(oldId), null, 'the old id is logged out')
    t.same(await storesWithLiveCopy(cluster, newId), [], 'no live copy under the new id')
    t.same(await other.findByOwner('alice'), [], 'the user has no live session')
  },
)
