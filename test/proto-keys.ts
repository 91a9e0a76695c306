import t from 'tap'
import session from 'express-session'
import { startTestCluster } from './helpers/cluster.js'
import { startExpressApp } from './helpers/express-app.js'
import { startFastifyApp } from './helpers/fastify-app.js'
import { CookieClient } from './helpers/http-client.js'
import { startManager } from './helpers/manager.js'

// Session rows with an own `__proto__` key (JSON.parse makes one), planted straight into the
// stores by someone who can write to them, never reach a framework's restore, which copies
// keys with `this[key] = value` and so would replace the session object's prototype.
// `constructor` and `prototype` keys are ordinary data.
const cluster = await startTestCluster(t, { stores: 2 })
const table = 'proto_keys'
const manager = await startManager(t, cluster, { table, copies: 2 })

/** Gives session `id` the row `json` on every store. */
async function plantRow(id: string, json: string): Promise<void> {
  for (const store of cluster.stores) {
    await store.query(`UPDATE \`${table}\` SET data = ? WHERE id = ?`, [json, id])
  }
}

function cookieJson(extra = ''): string {
  const expires = new Date(Date.now() + 60_000).toISOString()
  return `{"originalMaxAge":60000,"expires":"${expires}","httpOnly":true,"path":"/"${extra}}`
}

function operations(): number {
  return manager.stats().stores.reduce((sum, store) => sum + store.operations, 0)
}

t.test('the manager: a stored top-level __proto__ key is an unreadable copy', async (t) => {
  const id = await manager.createSession({ user: 'eve' })
  await plantRow(id, '{"__proto__":{"role":"admin"},"user":"eve"}')
  const unreadable: { sessionId: string }[] = []
  manager.on('unreadable-copy', (event) => unreadable.push(event))
  t.teardown(() => manager.removeAllListeners('unreadable-copy'))
  t.equal(await manager.readSession(id), null, 'no session')
  t.ok(unreadable.length >= 1, 'reported as unreadable-copy')
  t.ok(
    unreadable.every((event) => event.sessionId === id),
    'for that session',
  )

  const before = operations()
  await t.rejects(
    manager.writeSession(id, JSON.parse('{"__proto__":{"role":"admin"}}')),
    { code: 'INVALID_SESSION_DATA' },
    'writing one is refused',
  )
  t.equal(operations(), before, 'before any statement')

  await plantRow(id, '{"constructor":{"a":1},"prototype":{"b":2},"user":"eve"}')
  const data = await manager.readSession(id)
  t.same(
    data,
    { constructor: { a: 1 }, prototype: { b: 2 }, user: 'eve' },
    'constructor, prototype: data',
  )
  t.equal(Object.getPrototypeOf(data), Object.prototype, 'a plain object')
})

t.test('a __proto__ key that reaches the encoding past the check is refused', async (t) => {
  const planted = () => JSON.parse('{"__proto__":{"isAdmin":true},"user":"eve"}') as object
  let asked = 0
  // Hides its __proto__ key from the first look only, which the check makes.
  const twoFaced = new Proxy({ user: 'eve' } as Record<string, unknown>, {
    ownKeys: (target) => [...Reflect.ownKeys(target), '__proto__'],
    getOwnPropertyDescriptor: (target, key) =>
      key !== '__proto__'
        ? Reflect.getOwnPropertyDescriptor(target, key)
        : asked++ === 0
          ? undefined
          : { value: { isAdmin: true }, enumerable: true, configurable: true, writable: true },
    get: (target, key) => (key === '__proto__' ? { isAdmin: true } : Reflect.get(target, key)),
  })
  const cases: [string, Record<string, unknown>][] = [
    ['a top-level toJSON returning one', { toJSON: planted }],
    ['a Proxy answering the check and the encoding differently', twoFaced],
  ]
  for (const [name, data] of cases) {
    const id = await manager.createSession({ user: 'eve', cart: [1, 2] })
    const before = operations()
    await t.rejects(manager.writeSession(id, data), { code: 'INVALID_SESSION_DATA' }, name)
    t.equal(operations(), before, `${name}: no statement sent`)
    t.same(await manager.readSession(id), { user: 'eve', cart: [1, 2] }, `${name}: unchanged`)
  }
  // The name inside a string value is text like any other.
  const id = await manager.createSession({ note: 'a "__proto__" key is refused' })
  t.same(await manager.readSession(id), { note: 'a "__proto__" key is refused' }, 'a value')
})

t.test('fastify: a planted __proto__ key never replaces the session prototype', async (t) => {
  const app = await startFastifyApp(t, manager)
  const client = new CookieClient()
  const id: string = (await client.post(`${app.url}/login`, { user: 'eve' })).body.sessionId
  await plantRow(id, `{"__proto__":{"user":"root"},"cookie":${cookieJson()}}`)
  const me = await client.get(`${app.url}/me`)
  t.equal(me.status, 200, 'the request is served')
  t.equal(me.body.user, null, 'as a new session: the planted row is unreadable')

  const other = new CookieClient()
  const ada: string = (await other.post(`${app.url}/login`, { user: 'ada' })).body.sessionId
  await plantRow(
    ada,
    `{"user":"ada","constructor":{"a":1},"prototype":{"b":2},"cookie":${cookieJson(',"__proto__":{"path":"/x"}')}}`,
  )
  const read = await other.get(`${app.url}/me`)
  t.equal(read.status, 200)
  t.same(read.body, { sessionId: ada, user: 'ada', note: null }, 'constructor, prototype: data')
  const noted = await other.post(`${app.url}/note`, { note: 'still a session' })
  t.equal(noted.status, 200, 'the session still saves')
  t.match(await manager.readSession(ada), { user: 'ada', note: 'still a session' })
})

t.test('express: a planted __proto__ key, top-level or in the cookie, is harmless', async (t) => {
  const app = await startExpressApp(t, manager)
  const client = new CookieClient()
  const id: string = (await client.post(`${app.url}/login`, { user: 'eve' })).body.sessionId
  await plantRow(id, `{"__proto__":{"user":"root"},"user":"eve","cookie":${cookieJson()}}`)
  const me = await client.get(`${app.url}/me`)
  t.equal(me.status, 200, 'the request is served')
  t.equal(me.body.user, null, 'as no session: the planted row is unreadable')

  const other = new CookieClient()
  const ada: string = (await other.post(`${app.url}/login`, { user: 'ada' })).body.sessionId
  // express-session's Cookie copies every key of the stored cookie with `this[key] = value`.
  await plantRow(
    ada,
    `{"user":"ada","prototype":{"b":2},"cookie":${cookieJson(',"__proto__":{"maxAge":1}')}}`,
  )
  const stored = await app.store.get(ada)
  const restored = app.store.createSession({ sessionID: ada } as never, stored!)
  t.equal(Object.getPrototypeOf(restored.cookie), session.Cookie.prototype, 'a real Cookie')
  t.equal(Object.getPrototypeOf(restored), session.Session.prototype, 'a real Session')
  const read = await other.get(`${app.url}/me`)
  t.equal(read.status, 200, 'the request is served')
  t.same(read.body, { sessionId: ada, user: 'ada', note: null }, 'the session reads')
  const noted = await other.post(`${app.url}/note`, { note: 'still a session' })
  t.equal(noted.status, 200, 'the session still saves')
  const saved = await manager.readSession(ada)
  t.match(saved, { user: 'ada', prototype: { b: 2 }, note: 'still a session' })
  const cookie = (saved as { cookie: object }).cookie
  t.notOk(Object.hasOwn(cookie, '_expires'), "the cookie saved through Cookie's toJSON")
})
