import { deserialize, serialize } from 'node:v8'
import t from 'tap'
import { sessionStatements } from '../lib/store/statements.js'
import { startTestCluster } from './helpers/cluster.js'
import { startManager, storeState, storesOf, storesWithLiveCopy } from './helpers/manager.js'
import { sleep, waitFor } from './helpers/wait.js'

const cluster = await startTestCluster(t, { stores: 3 })

t.test('findByOwner and destroyByOwner use the owner index on every store', async (t) => {
  const manager = await startManager(t, cluster, { copies: 2, ownerKey: 'userId' })
  const mine = await Promise.all(
    [1, 2, 3].map((device) => manager.createSession({ userId: 42, device })),
  )
  const others = await Promise.all([7, 8].map((userId) => manager.createSession({ userId })))
  await manager.createSession({ anonymous: true })
  t.same(await manager.findByOwner(42), [...mine].sort())
  t.same(
    await manager.findByOwner('42'),
    [...mine].sort(),
    'numbers and strings name the same owner',
  )
  // The lookup is an index lookup, never a scan, whatever the optimizer's statistics say.
  for (const store of cluster.stores) {
    const plan = await store.query<{ key: string | null; type: string }>(
      `EXPLAIN ${sessionStatements('sessions').byOwner.text()}`,
      ['42'],
    )
    t.equal(plan[0]!.key, 'sessions_owner', `${store.id} uses the owner index`)
  }
  // A user who changed owner in a later write no longer counts.
  await manager.writeSession(mine[2]!, { userId: 43 })
  t.same(await manager.findByOwner(42), [mine[0]!, mine[1]!].sort())

  if (cluster.canCrash) {
    // Log user 42 out everywhere while a store is down; it comes back with the old copies.
    const down = cluster.stores[0]!
    await down.kill()
    t.equal(await manager.destroyByOwner(42), 2)
    await down.start()
    await waitFor('the store to be back in service', () => storeState(manager, down.id) === 'up')
  } else {
    t.equal(await manager.destroyByOwner(42), 2)
  }
  for (const id of mine.slice(0, 2)) {
    t.equal(await manager.readSession(id), null, 'logged out')
  }
  await manager.repair()
  for (const id of mine.slice(0, 2)) {
    t.equal(
      await manager.readSession(id),
      null,
      'still logged out after the store returned and a repair',
    )
    t.same(await storesWithLiveCopy(cluster, id), [])
  }
  for (const id of others) t.not(await manager.readSession(id), null, 'other users untouched')
})

t.test('an owner a codec stores as a bigint is found and logged out by it', async (t) => {
  // JSON has no bigint, but a codec may (node:v8 here): the write stores its digits, and the
  // lookups take the bigint as they take a number.
  const manager = await startManager(t, cluster, {
    ownerKey: 'userId',
    codec: { encode: (data) => serialize(data), decode: (bytes) => deserialize(bytes) },
  })
  const id = await manager.createSession({ userId: 9_007_199_254_740_993n })
  t.same(await manager.findByOwner(9_007_199_254_740_993n), [id])
  t.same(await manager.findByOwner('9007199254740993'), [id], 'its digits name it too')
  t.equal(await manager.destroyByOwner(9_007_199_254_740_993n), 1)
  t.equal(await manager.readSession(id), null, 'logged out')
})

t.test('a logout everywhere by an app server whose clock runs ahead sticks', async (t) => {
  // It used to destroy only what its own clock counted live: an app server whose clock runs
  // behind then touched the session it skipped, and kept it alive for a whole new lifetime.
  const AHEAD_MILLIS = 2000
  const ahead = await startManager(t, cluster, {
    copies: 2,
    ownerKey: 'userId',
    clock: { now: () => Date.now() + AHEAD_MILLIS },
  })
  const behind = await startManager(t, cluster, { copies: 2, ownerKey: 'userId' })

  // A session of user 42 near the end of its life: 3 s left on the real clock.
  const id = await behind.createSession({ userId: 42 }, { ttlSeconds: 3 })
  await sleep(1500)
  // 1.5 s left for `behind`, 0.5 s past for `ahead`.
  t.not(await behind.readSession(id), null, 'still live for the app server behind')

  // The user logs out everywhere through the app server ahead.
  await ahead.destroyByOwner(42)

  // A request of another device of the user reaches the app server behind, which still sees
  // the session live, and touches it (express-session does on every request).
  const touched = await behind.touch(id)
  t.equal(touched, false, 'a touch after the logout everywhere finds no session')

  await sleep(2500)
  t.equal(await behind.readSession(id), null, 'logged out for the app server behind')
  t.equal(await ahead.readSession(id), null, 'logged out for the app server ahead')
  t.same(await storesWithLiveCopy(cluster, id), [], 'no live copy left')
})

t.test('the owner lookup stays on the index where a scan looks cheaper', async (t) => {
  // A table whose every row has the owner looked up: the optimizer's own choice is a scan.
  const table = 'owner_only'
  const manager = await startManager(t, cluster, { copies: 3, ownerKey: 'userId', table })
  await Promise.all(Array.from({ length: 5 }, () => manager.createSession({ userId: 42 })))
  for (const store of cluster.stores) {
    await store.query(`ANALYZE TABLE \`${table}\``)
    const plan = await store.query<{ key: string | null }>(
      `EXPLAIN ${sessionStatements(table).byOwner.text()}`,
      ['42'],
    )
    t.equal(plan[0]!.key, `${table}_owner`, `${store.id} uses the owner index`)
  }
  t.equal((await manager.findByOwner(42)).length, 5)
})

const crashTest = cluster.canCrash ? t.test.bind(t) : t.skip.bind(t)

crashTest('copies made by hint replay and repair keep the owner', async (t) => {
  const manager = await startManager(t, cluster, {
    copies: 2,
    ownerKey: 'userId',
    healthCheckIntervalMillis: 100,
  })
  const down = cluster.stores[0]!
  await down.kill()
  await waitFor('the store to be out of service', () => storeState(manager, down.id) !== 'up')
  // Written while a store is down: the copies its order gave that store are replayed to it.
  const ids = await Promise.all(
    Array.from({ length: 8 }, (_, device) => manager.createSession({ userId: 42, device })),
  )
  await down.start()
  await waitFor('the store to be back in service', () => storeState(manager, down.id) === 'up')
  await manager.repair()
  const owners = await Promise.all(
    cluster.stores.map((store) =>
      store.query<{ owner: Buffer | null }>(
        `SELECT CAST(owner AS CHAR) AS owner FROM sessions WHERE deleted = 0 AND id IN (${ids.map(() => '?').join(', ')})`,
        ids,
      ),
    ),
  )
  const rows = owners.flat()
  t.ok(owners[0]!.length > 0, 'some copies were replayed to the store that was down')
  t.same(
    rows.filter((row) => String(row.owner) !== '42'),
    [],
    'every copy names its owner',
  )
  t.equal(await manager.destroyByOwner(42), ids.length, 'a logout everywhere finds them all')
  for (const id of ids) t.equal(await manager.readSession(id), null, 'logged out')
})

t.test(
  'a session of the owner that cannot be read fails findByOwner and destroyByOwner',
  async (t) => {
    const manager = await startManager(t, cluster, { copies: 2, ownerKey: 'userId' })
    const kept = await manager.createSession({ userId: 7 })
    const unreadable = await manager.createSession({ userId: 7 })
    // Every read of one session is reset, as by a network blip on every store.
    const reset = (): never => {
      throw Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' })
    }
    const restore: (() => void)[] = []
    for (const store of storesOf(manager)) {
      const { read, readDigest } = store
      store.read = async (id) => (id === unreadable ? reset() : read.call(store, id))
      store.readDigest = async (id) => (id === unreadable ? reset() : readDigest.call(store, id))
      restore.push(() => Object.assign(store, { read, readDigest }))
    }
    await t.rejects(manager.findByOwner(7), { code: 'NO_STORE_AVAILABLE' }, 'not a short list')
    await t.rejects(manager.destroyByOwner(7), { code: 'NO_STORE_AVAILABLE' })
    for (const undo of restore) undo()
    // destroyByOwner stopped at the unreadable one: what it destroyed before stays destroyed.
    const found = await manager.findByOwner(7)
    t.ok(found.includes(unreadable), 'the unreadable one was not destroyed')
    t.equal(await manager.destroyByOwner(7), found.length)
    t.same(await manager.findByOwner(7), [], 'once readable, every session of the owner goes')
    t.equal(await manager.readSession(kept), null)
  },
)

t.test(
  'the owner indexed is the one the stored data names, however the object answers',
  async (t) => {
    const manager = await startManager(t, cluster, { copies: 2, ownerKey: 'userId' })
    // An object that says one owner when encoded and another when asked again (a getter with
    // state, as a Proxy or an ORM object can be), and one whose toJSON stores another owner.
    let asked = 0
    const changing = {
      get userId() {
        return asked++ === 0 ? 'alice' : 'mallory'
      },
    }
    const converted = { userId: 'mallory', toJSON: () => ({ userId: 'alice' }) }
    const ids = [await manager.createSession(changing), await manager.createSession(converted)]
    for (const id of ids) t.same(await manager.readSession(id), { userId: 'alice' })
    t.same(await manager.findByOwner('alice'), [...ids].sort(), 'listed under the owner stored')
    t.same(await manager.findByOwner('mallory'), [])
    t.equal(await manager.destroyByOwner('alice'), 2, "alice's logout everywhere")
    for (const id of ids) t.equal(await manager.readSession(id), null, 'ends both sessions')
  },
)
