import t from 'tap'
import type { StoredCopy } from '../lib/store/rows.js'
import { upkeepStatements } from '../lib/store/upkeep-statements.js'
import { startTestCluster } from './helpers/cluster.js'
import { rowsOnStores, startManager } from './helpers/manager.js'

// Every copy of a session carries the same expiry: the operation reads the clock once, not once
// per store. A clock that moves 1 ms at every reading makes a per-store reading show at once
// (on a real clock it shows only when the stores' statements straddle a millisecond).
const cluster = await startTestCluster(t, { stores: 3 })

function tickingClock(): { now(): number } {
  let now = Date.now()
  return { now: () => now++ }
}

/** The expiries of the session's copies, on its first two stores. */
async function copyExpiries(
  manager: { locate(id: string): string[] },
  id: string,
): Promise<number[]> {
  const rows = await rowsOnStores(cluster, id)
  return manager
    .locate(id)
    .slice(0, 2)
    .map((storeId) => Number(rows.get(storeId)!.expires_at))
}

t.test('setTimeout, touch and writes under a session timeout agree on every copy', async (t) => {
  const manager = await startManager(t, cluster, { copies: 2, clock: tickingClock() })
  const id = await manager.createSession({ n: 1 })
  const [first, second] = await copyExpiries(manager, id)
  t.equal(first, second, 'created: one expiry')

  t.equal(await manager.setSessionTimeout(id, 120), true)
  const afterTimeout = await copyExpiries(manager, id)
  t.equal(afterTimeout[0], afterTimeout[1], 'setTimeout: one expiry')

  t.equal(await manager.touch(id), true)
  const afterTouch = await copyExpiries(manager, id)
  t.equal(afterTouch[0], afterTouch[1], 'touch under the session timeout: one expiry')

  // Concurrent writes are batched per store; each row keeps its own operation's expiry.
  const ids = await Promise.all(Array.from({ length: 20 }, () => manager.createSession({})))
  await Promise.all(ids.map((other) => manager.setSessionTimeout(other, 60)))
  await Promise.all(ids.map((other, i) => manager.writeSession(other, { i })))
  for (const other of ids) {
    const [a, b] = await copyExpiries(manager, other)
    t.equal(a, b, 'write under a session timeout: one expiry')
  }
})

t.test('regenerate carries the stored expiry to every copy of the new id', async (t) => {
  const manager = await startManager(t, cluster, { copies: 2, clock: tickingClock() })
  const oldId = await manager.createSession({ cart: [1, 2] })
  t.equal(await manager.setSessionTimeout(oldId, 120), true)
  const [oldExpiry] = await copyExpiries(manager, oldId)
  const newId = (await manager.regenerateSession(oldId))!
  t.same(await copyExpiries(manager, newId), [oldExpiry, oldExpiry])
})

t.test(
  'a copy of the same version brings only a later expiry, and not past a timeout',
  async (t) => {
    const manager = await startManager(t, cluster, { copies: 1 })
    const store = cluster.store(manager.locate(manager.generateId())[0]!)
    const { copy } = upkeepStatements('sessions')
    const copyOf = (expiresAtMillis: number, ttlSeconds: number | null): StoredCopy => ({
      version: 7,
      expiresAtMillis,
      deleted: false,
      data: Buffer.from('{}'),
      owner: null,
      ttlSeconds,
    })
    const send = (id: string, source: StoredCopy) =>
      store.query(copy.text(), copy.params({ sessionId: id, copy: source }))
    const expiry = async (id: string) =>
      Number(
        (await store.query('SELECT expires_at FROM sessions WHERE id = ?', [id]))[0]!.expires_at,
      )

    const untimed = manager.generateId()
    await send(untimed, copyOf(1_000_000, null))
    await send(untimed, copyOf(2_000_000, null))
    t.equal(await expiry(untimed), 2_000_000, 'a later expiry of the same version is taken')
    await send(untimed, copyOf(1_500_000, null))
    t.equal(await expiry(untimed), 2_000_000, 'an earlier one is not')

    const timed = manager.generateId()
    await send(timed, copyOf(1_000_000, 60))
    await send(timed, copyOf(3_000_000, null))
    t.equal(await expiry(timed), 1_000_000, 'one without the session timeout does not extend it')
    await send(timed, copyOf(2_000_000, 60))
    t.equal(await expiry(timed), 2_000_000, 'one with it does')
  },
)
