import { createHmac } from 'node:crypto'
import t from 'tap'
import {
  createSessionManager,
  InvalidOptionError,
  InvalidSessionIdError,
  isValidSessionId,
} from '../lib/index.js'
import { startTestCluster } from './helpers/cluster.js'
import { startManager } from './helpers/manager.js'

const cluster = await startTestCluster(t, { stores: 3 })
const OLD_SECRET = 'old-secret-0123456789-0123456789-abcdef'
const NEW_SECRET = 'new-secret-0123456789-0123456789-abcdef'

/** Statements the manager has sent, over every store. */
function statements(manager: { stats(): { stores: { operations: number }[] } }): number {
  return manager.stats().stores.reduce((sum, store) => sum + store.operations, 0)
}

/** The servers' own count of prepared statements executed, over every store. */
async function serverStatements(): Promise<number> {
  let total = 0
  for (const store of cluster.stores) {
    const rows = await store.query<{ Value: string }>("SHOW GLOBAL STATUS LIKE 'Com_stmt_execute'")
    total += Number(rows[0]!.Value)
  }
  return total
}

t.test('generated ids: 192 random bits, URL-safe, fixed length, valid', async (t) => {
  const manager = await startManager(t, cluster)
  const ids = new Set(Array.from({ length: 1000 }, () => manager.generateId()))
  t.equal(ids.size, 1000)
  for (const id of ids) {
    t.match(id, /^[A-Za-z0-9_-]{32}$/)
    t.ok(isValidSessionId(id))
  }
})

t.test(
  'signed ids: forged, mangled or malformed ids are refused without a statement',
  async (t) => {
    const manager = await startManager(t, cluster, {
      secrets: [NEW_SECRET],
      // No background statements while the servers' counters are compared: no health, lease
      // or configuration rounds, no sweeps.
      healthCheckIntervalMillis: 3_600_000,
      readLeaseMillis: 0,
      sweepIntervalSeconds: 0,
    })
    const id = await manager.createSession({ user: 'ada' })
    t.match(id, /^[A-Za-z0-9_-]{32}\.[A-Za-z0-9_-]{43}$/, 'random part, a dot, an HMAC-SHA256')
    t.same(await manager.readSession(id), { user: 'ada' })

    const [random, signature] = id.split('.') as [string, string]
    const flipped =
      signature.slice(0, 10) + (signature[10] === 'A' ? 'B' : 'A') + signature.slice(11)
    const other = createSessionManager({ stores: cluster.storeConfigs(), secrets: [OLD_SECRET] })
    const foreignId = other.generateId()
    await other.close()
    const bad: unknown[] = [
      `${random}.${flipped}`, // mangled signature
      `${manager.generateId().split('.')[0]}.${signature}`, // signature of another id
      foreignId, // signed with a secret this manager does not know
      random, // unsigned
      '',
      'x'.repeat(10_000),
      `${random}.${signature}.x`,
      "' OR 1=1 --",
      42,
      null,
      { id },
    ]
    const before = statements(manager)
    // Background rounds a manager started (its first configuration round, a closed manager's
    // last statements) may still be finishing on a busy machine: start from a quiet count.
    let serverBefore = await serverStatements()
    for (let quiet = false; !quiet;) {
      await new Promise((resolve) => setTimeout(resolve, 300))
      const now = await serverStatements()
      quiet = now === serverBefore
      serverBefore = now
    }
    for (const candidate of bad) {
      await t.rejects(manager.readSession(candidate as string), InvalidSessionIdError)
      await t.rejects(manager.writeSession(candidate as string, { x: 1 }), InvalidSessionIdError)
      await t.rejects(manager.destroySession(candidate as string), InvalidSessionIdError)
      await t.rejects(manager.touch(candidate as string), InvalidSessionIdError)
      await t.rejects(manager.regenerateSession(candidate as string), InvalidSessionIdError)
    }
    t.equal(statements(manager), before, "the manager's counters: no statement sent")
    t.equal(
      await serverStatements(),
      serverBefore,
      "the servers' own counters: no statement executed",
    )
    t.same(await manager.readSession(id), { user: 'ada' }, 'the real session is untouched')
  },
)

t.test('rotation: every listed secret verifies, the first one signs', async (t) => {
  const before = await startManager(t, cluster, { secrets: [OLD_SECRET] })
  const oldId = await before.createSession({ signedWith: 'old' })
  const rotated = await startManager(t, cluster, { secrets: [NEW_SECRET, OLD_SECRET] })
  t.same(
    await rotated.readSession(oldId),
    { signedWith: 'old' },
    'an id signed with the old secret still works',
  )
  const newId = await rotated.createSession({ signedWith: 'new' })
  const after = await startManager(t, cluster, { secrets: [NEW_SECRET] })
  t.same(await after.readSession(newId), { signedWith: 'new' })
  await t.rejects(
    after.readSession(oldId),
    InvalidSessionIdError,
    'old ids die with the old secret',
  )
})

t.test('unsigned ids from before signing work only if acceptUnsignedIds says so', async (t) => {
  const unsigned = await startManager(t, cluster)
  const legacyId = await unsigned.createSession({ legacy: true })
  const strict = await startManager(t, cluster, { secrets: [NEW_SECRET] })
  await t.rejects(strict.readSession(legacyId), InvalidSessionIdError)
  const lenient = await startManager(t, cluster, { secrets: [NEW_SECRET], acceptUnsignedIds: true })
  t.same(await lenient.readSession(legacyId), { legacy: true })
  t.match(await lenient.createSession({}), /\./, 'new ids are still signed')
})

t.test('bad secrets are refused without echoing them', async (t) => {
  for (const secrets of [[], ['short-secret-visible'], 'not-an-array', [42]]) {
    let error: unknown
    try {
      createSessionManager({ stores: cluster.storeConfigs(), secrets: secrets as string[] })
    } catch (caught) {
      error = caught
    }
    t.ok(error instanceof InvalidOptionError)
    t.match(error, { option: 'secrets' })
    t.notMatch(String((error as Error).message), 'short-secret-visible')
  }
})

t.test('the secrets checked are the secrets that sign, however the array answers', async (t) => {
  // An element that answers the check with a good secret and every later read with '' (a
  // signer keyed with '' accepts ids that anyone can sign).
  let reads = 0
  const secrets: string[] = []
  Object.defineProperty(secrets, 0, {
    get: () => (reads++ === 0 ? NEW_SECRET : ''),
    enumerable: true,
  })
  const manager = createSessionManager({ stores: cluster.storeConfigs(), secrets })
  t.teardown(() => manager.close())
  const random = 'A'.repeat(32)
  const signedWith = (key: string): string =>
    `${random}.${createHmac('sha256', key).update(random).digest('base64url')}`
  t.throws(() => manager.locate(signedWith('')), InvalidSessionIdError, 'the empty key: refused')
  t.doesNotThrow(() => manager.locate(signedWith(NEW_SECRET)), 'the checked secret: accepted')
})

t.test(
  'exactly one string verifies for each signed id (no malleable signature bits)',
  async (t) => {
    const manager = createSessionManager({
      stores: cluster.storeConfigs(),
      secrets: [NEW_SECRET],
    })
    t.teardown(() => manager.close())
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'
    let accepted = 0
    for (let n = 0; n < 20; n++) {
      const id = manager.generateId()
      t.doesNotThrow(() => manager.locate(id), 'the id itself verifies')
      // 43 base64url characters carry 258 bits for a 256-bit signature: the last character's
      // two low bits are unused. Every variant of that character must be refused.
      for (const last of alphabet) {
        const variant = id.slice(0, -1) + last
        if (variant === id) continue
        try {
          manager.locate(variant)
          accepted++
        } catch (error) {
          if (!(error instanceof InvalidSessionIdError)) throw error
        }
      }
    }
    t.equal(accepted, 0, 'no other spelling of a signature verifies')
  },
)
