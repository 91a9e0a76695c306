import t from 'tap'
import { InvalidOptionError, InvalidSessionDataError, SessionNotFoundError } from '../lib/index.js'
import { startTestCluster } from './helpers/cluster.js'
import { startManager } from './helpers/manager.js'

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
