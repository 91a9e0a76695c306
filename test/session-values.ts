import t from 'tap'
import { InvalidOptionError, InvalidSessionDataError, SessionNotFoundError } from '../lib/index.js'
import { startTestCluster } from './helpers/cluster.js'
import { allStatementsSent, startManager } from './helpers/manager.js'

const cluster = await startTestCluster(t, { stores: 3 })

t.test('per-key get, set, remove, getAll, putAll', async (t) => {
  const manager = await startManager(t, cluster, { copies: 2 })
  const id = await manager.createSession({ a: 1 })
  t.equal(await manager.getValue(id, 'a'), 1)
  t.equal(await manager.getValue(id, 'missing'), undefined)
  await manager.setValue(id, 'b', { nested: [1, 2] })
  t.same(await manager.getValue(id, 'b'), { nested: [1, 2] })
  await manager.removeValue(id, 'a')
  t.same(await manager.getAll(id), { b: { nested: [1, 2] } })
  await manager.putAll(id, { c: 'three', d: null })
  t.same(await manager.getAll(id), { b: { nested: [1, 2] }, c: 'three', d: null })
  const missing = manager.generateId()
  t.equal(await manager.getValue(missing, 'a'), undefined)
  await t.rejects(manager.setValue(missing, 'a', 1), SessionNotFoundError)
  await t.rejects(manager.increment(missing, 'a'), SessionNotFoundError)
  await t.rejects(manager.setValue(id, '', 1), InvalidOptionError)
  await t.rejects(manager.setValue(id, '__proto__', 1), InvalidSessionDataError)
  await t.rejects(manager.putAll(id, [1] as never), InvalidSessionDataError)
  await t.rejects(manager.increment(id, 'c'), InvalidSessionDataError, 'not a number')
  t.same(await manager.getAll(missing), null)
})

t.test('"__proto__" is never a key of session data, on any path', async (t) => {
  const manager = await startManager(t, cluster, { copies: 2 })
  const id = await manager.createSession({ a: 1 })
  const polluted = JSON.parse('{"__proto__": {"isAdmin": true}, "user": "mallory"}') as object
  const attempts: [string, () => Promise<unknown>][] = [
    ['writeSession', () => manager.writeSession(id, polluted as never)],
    ['createSession', () => manager.createSession(polluted as never)],
    ['putAll', () => manager.putAll(id, polluted as never)],
    ['setValue', () => manager.setValue(id, '__proto__', { isAdmin: true })],
    ['updateSession', () => manager.updateSession(id, () => polluted as never)],
    ['getValue', () => manager.getValue(id, '__proto__')],
  ]
  for (const [name, attempt] of attempts) {
    await t.rejects(attempt(), InvalidSessionDataError, `${name}: InvalidSessionDataError`)
  }
  const stored = await manager.readSession(id)
  t.same(stored, { a: 1 }, 'nothing written')
  t.equal(Object.assign({}, stored).isAdmin, undefined, 'a copy of what is read is not polluted')
})

t.test('a missing key named like an Object.prototype member counts as 0', async (t) => {
  const manager = await startManager(t, cluster, { copies: 2 })
  const id = await manager.createSession({ user: 'eve' })
  for (const key of ['constructor', 'valueOf', 'toString', 'hasOwnProperty']) {
    t.equal(await manager.getValue(id, key), undefined, `${key}: getValue sees no value`)
    t.equal(await manager.increment(id, key), 1, `${key}: increment starts from 0`)
  }
  t.same(await manager.readSession(id), {
    user: 'eve',
    constructor: 1,
    valueOf: 1,
    toString: 1,
    hasOwnProperty: 1,
  })
})

t.test('increment is atomic under concurrent callers on two app servers', async (t) => {
  const a = await startManager(t, cluster, { copies: 2 })
  const b = await startManager(t, cluster, { copies: 2 })
  const id = await a.createSession({})
  const calls = Array.from({ length: 60 }, (_, i) => (i % 2 === 0 ? a : b).increment(id, 'hits'))
  const results = await Promise.all(calls)
  t.equal(await a.getValue(id, 'hits'), 60)
  t.same(
    [...results].sort((x, y) => x - y),
    Array.from({ length: 60 }, (_, i) => i + 1),
    'every caller saw a distinct value',
  )
  t.equal(await b.increment(id, 'hits', -10), 50)
  t.equal(await a.increment(id, 'score', 2.5), 2.5)
})

t.test(
  'increment refuses a result it cannot store exactly, before anything is written',
  async (t) => {
    const manager = await startManager(t, cluster, { copies: 2 })
    // 1e308 + 1e308 is Infinity, which JSON stores as null: the next increment started from 0.
    const id = await manager.createSession({ n: 1e308, big: Number.MAX_SAFE_INTEGER, f: 0.5 })
    await t.rejects(manager.increment(id, 'n', 1e308), InvalidSessionDataError, 'not finite')
    await t.rejects(manager.increment(id, 'n', -Infinity), InvalidOptionError, 'by not finite')
    // Past 2^53 a counter cannot count by one: 2^53 + 1 would be stored as 2^53.
    await t.rejects(manager.increment(id, 'big', 1), InvalidSessionDataError, 'not a safe integer')
    t.same(
      await manager.getAll(id),
      { n: 1e308, big: Number.MAX_SAFE_INTEGER, f: 0.5 },
      'nothing written',
    )
    t.equal(await manager.increment(id, 'big', -1), Number.MAX_SAFE_INTEGER - 1, 'back in range')
    t.equal(await manager.increment(id, 'n', -1e308), 0, 'a finite result is fine')
    t.equal(await manager.increment(id, 'f', 1e300), 1e300, 'fractions add as floating point')
  },
)

t.test('putAll with a hostile value rejects with a typed error', async (t) => {
  const manager = await startManager(t, cluster, { copies: 2 })
  const id = await manager.createSession({ n: 1 })
  const { proxy: revoked, revoke } = Proxy.revocable({}, {})
  revoke()
  const throwingKeys = new Proxy(
    {},
    {
      ownKeys() {
        throw new Error('ownKeys trap')
      },
    },
  )
  const throwingGet = new Proxy(
    { a: 1 },
    {
      get() {
        throw new Error('get trap')
      },
    },
  )
  for (const [name, values] of [
    ['a revoked Proxy', revoked],
    ['a Proxy whose ownKeys trap throws', throwingKeys],
    ['a Proxy whose get trap throws', throwingGet],
  ] as const) {
    const error = await manager.putAll(id, values as never).catch((e: unknown) => e)
    t.ok(error instanceof InvalidSessionDataError, `${name}: got ${String(error)}`)
    t.match(error, { code: 'INVALID_SESSION_DATA', cause: Error }, name)
  }
  t.same(await manager.getAll(id), { n: 1 }, 'nothing written')
})

t.test('the per-key operations refuse bad arguments before any statement', async (t) => {
  const manager = await startManager(t, cluster, { copies: 2 })
  const sent = (): number => allStatementsSent(manager)
  // A session that is not there: a bad argument is the answer, not SessionNotFoundError.
  const missing = manager.generateId()
  const { proxy: revoked, revoke } = Proxy.revocable({}, {})
  revoke()
  const polluted = JSON.parse('{"__proto__": {"isAdmin": true}}') as object
  const before = sent()
  for (const [name, attempt, type] of [
    ['putAll of an array', () => manager.putAll(missing, [1] as never), InvalidSessionDataError],
    ['putAll of a revoked Proxy', () => manager.putAll(missing, revoked), InvalidSessionDataError],
    ['putAll with an empty key', () => manager.putAll(missing, { '': 1 }), InvalidOptionError],
    [
      'putAll with "__proto__"',
      () => manager.putAll(missing, polluted as never),
      InvalidSessionDataError,
    ],
    ['increment by NaN', () => manager.increment(missing, 'n', NaN), InvalidOptionError],
    [
      'increment by a string',
      () => manager.increment(missing, 'n', '1' as never),
      InvalidOptionError,
    ],
  ] as const) {
    await t.rejects(attempt() as Promise<unknown>, type, name)
  }
  t.equal(sent(), before, 'no statement was sent')
})
