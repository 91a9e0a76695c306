// Conformance of our Express store with express-session's expectations of a store.
//
// The scenarios mirror the store-dependent behaviours that express-session's own test suite
// checks (github.com/expressjs/session, test/session.js at commit
// 00f2a891b2b41b5321a39c555d0a926d4d69d802, read for its scenarios only): the code and the
// wording here are written independently. Each test name is `<upstream describe>: <scenario>`.
// Every app runs express-session over a SessionShardsStore on 3 real stores holding 2 copies
// of each session; where upstream replaces a store method to make it fail, the failure here is
// real (the session table is dropped on every store), and where it counts store calls, the
// count is kept by a pass-through wrapper and the stores' rows are checked too. Scenarios that
// exercise only express-session's own cookie handling (proxy and cookie attributes, signing and
// secrets, cookie names, option validation, response patching) involve no store: not mirrored.
import { randomUUID } from 'node:crypto'
import type express from 'express'
import type { SessionOptions } from 'express-session'
import t from 'tap'
import type { Test } from 'tap'
import { SessionShardsStore } from '../lib/adapters/express.js'
import type { SessionManager, SessionManagerOptions } from '../lib/index.js'
import { startTestCluster } from './helpers/cluster.js'
import {
  cookieExpires,
  send,
  sessionIdOf,
  signedCookieValue,
  startConformanceApp,
  type Answer,
  type ConformanceApp,
  type ConformanceHandler,
} from './helpers/express-conformance-app.js'
import { proxiesFor } from './helpers/gray.js'
import { rowsOnStores, startManager, storeState, storesWithLiveCopy } from './helpers/manager.js'
import { sleep, waitFor } from './helpers/wait.js'

const cluster = await startTestCluster(t, { stores: 3 })
const crashTest = cluster.canCrash ? t.test.bind(t) : t.skip.bind(t)
const MINUTE = 60_000

/** Calls express-session made to the store, counted on the way through. */
interface StoreCalls {
  get: number
  set: number
  touch: number
  destroy: number
}

interface Subject {
  manager: SessionManager
  store: SessionShardsStore
  table: string
  calls: StoreCalls
}

/**
 * A store on its own table of the cluster, with 2 copies of each session, whose get, set,
 * touch and destroy are counted as they pass through to the real methods.
 */
async function subject(
  t: Test,
  table: string,
  options: Partial<SessionManagerOptions> = {},
): Promise<Subject> {
  const manager = await startManager(t, cluster, { copies: 2, table: `conf_${table}`, ...options })
  const store = new SessionShardsStore({ manager })
  t.teardown(() => store.close())
  const calls: StoreCalls = { get: 0, set: 0, touch: 0, destroy: 0 }
  for (const method of Object.keys(calls) as (keyof StoreCalls)[]) {
    const real = (store[method] as (...args: unknown[]) => unknown).bind(store)
    Object.defineProperty(store, method, {
      configurable: true,
      writable: true,
      value: (...args: unknown[]) => {
        calls[method] += 1
        return real(...args)
      },
    })
  }
  return { manager, store, table: `conf_${table}`, calls }
}

/**
 * An app over the subject's store. As in upstream's own harness, the cookie lasts a minute
 * unless the test gives a `cookie` option; every other option is the test's (or
 * express-session's default).
 */
function appOf(
  t: Test,
  { store }: Subject,
  session: Partial<SessionOptions>,
  handler?: ConformanceHandler,
): Promise<ConformanceApp> {
  const withCookie = 'cookie' in session ? session : { ...session, cookie: { maxAge: MINUTE } }
  return startConformanceApp(t, {
    session: { store, ...withCookie },
    ...(handler === undefined ? {} : { handler }),
  })
}

/** The session as a plain record, for the ad hoc fields these scenarios keep in it. */
function bag(req: express.Request): Record<string, unknown> {
  return req.session as unknown as Record<string, unknown>
}

/** Drops the subject's session table on every store: each statement on it then fails for real. */
async function dropTable({ table }: Subject): Promise<void> {
  for (const store of cluster.stores) await store.query(`DROP TABLE \`${table}\``)
}

/**
 * Whether `value` is `millis`, or up to 50 less: express-session derives `originalMaxAge` from
 * the clock twice in a row when maxAge is set (`expires = now + maxAge`, then `originalMaxAge =
 * expires - now`), so the time between the two reads is lost. Upstream allows 1 ms; on a
 * starved machine (the suite runs beside chaos tests on 2 cores) a pause between them cost 2 ms
 * or more in one CI run. 50 ms still tells apart every lifetime these tests set (150 ms at the
 * least, the others seconds apart), and the value can never be above `millis`.
 */
function setJustNow(value: unknown, millis: number): boolean {
  return typeof value === 'number' && value <= millis && value >= millis - 50
}

/** Whether every store failure an error carries is the dropped table (MySQL's ER_NO_SUCH_TABLE). */
function causedByMissingTable(error: unknown): boolean {
  const failures = (error as { failures?: { error: { code?: unknown } }[] }).failures ?? []
  return (
    failures.length > 0 && failures.every((failure) => failure.error.code === 'ER_NO_SUCH_TABLE')
  )
}

/** Stored sessions by id, as the store lists them. */
async function listed({ store }: Subject): Promise<Map<string, Record<string, unknown>>> {
  const all = await store.all()
  return new Map(all.map((session) => [session.id, session as unknown as Record<string, unknown>]))
}

/** What the store answers for `id`, read through its callback API as express-session does. */
function stored({ store }: Subject, id: string): Promise<Record<string, any> | null | undefined> {
  return new Promise((resolve, reject) =>
    store.get(id, (error, session) => (error ? reject(error) : resolve(session as any))),
  )
}

/**
 * Whether the answer's cookie expires `maxAge` ms after its Date header. Both are whole
 * seconds; the request starts early in a second (intoNextSecond), but on a starved machine
 * the Date header may fall in the next one: one second either way is allowed, which still
 * tells every lifetime these tests set apart.
 */
function sentFor(answer: Answer, maxAge: number): boolean {
  const expires = cookieExpires(answer)
  return expires !== undefined && Math.abs(expires - answer.date - maxAge) <= 1000
}

/** Waits until the wall clock is `offsetMillis` into a second (Set-Cookie expiries are in seconds). */
async function intoNextSecond(offsetMillis = 150): Promise<void> {
  const now = Date.now()
  await sleep(1000 - (now % 1000) + offsetMillis)
}

function idOf(answer: Answer): string {
  const id = sessionIdOf(answer)
  if (id === undefined) throw new Error(`no session cookie in the answer (status ${answer.status})`)
  return id
}

/** A handler keeping a per-session number: the first session it sees gets 1, the next 2, ... */
function numbering(): ConformanceHandler {
  let sessions = 0
  return (req, res) => {
    const data = bag(req)
    data.num ??= ++sessions
    res.end(`session ${String(data.num)}`)
  }
}

// ---------------------------------------------------------------------------------------------
// session()

t.test('session(): a new session is written to the store', async (t) => {
  const s = await subject(t, 'new_session')
  const app = await appOf(t, s, {}, (req, res) => {
    bag(req).active = true
    res.end('session active')
  })
  const answer = await send(app.url)
  t.equal(answer.status, 200)
  t.equal(answer.text, 'session active')
  t.equal(answer.setCookie?.name, 'connect.sid')
  t.equal(await s.store.length(), 1, 'the store counts one session')
  const id = idOf(answer)
  const session = await stored(s, id)
  t.match(session, { active: true }, 'with its data')
  t.ok(
    setJustNow(session?.cookie.originalMaxAge, MINUTE),
    `and its cookie (${String(session?.cookie.originalMaxAge)})`,
  )
  t.ok(
    (await storesWithLiveCopy(cluster, id, s.table)).length >= 2,
    'on two stores (or three, hedged)',
  )
})

t.test('session(): the session named by the cookie is loaded from the store', async (t) => {
  const s = await subject(t, 'load_by_cookie')
  const app = await appOf(t, s, {}, numbering())
  const first = await send(app.url)
  t.equal(first.text, 'session 1')
  t.equal(first.setCookie?.name, 'connect.sid')
  const second = await send(app.url, { cookie: first.cookie })
  t.equal(second.text, 'session 1', 'the same session, read back from the store')
  t.equal(s.calls.get, 1, 'one read: the request that carried the cookie')
})

t.test('session(): a store failure while loading is passed to next(err)', async (t) => {
  const s = await subject(t, 'load_error')
  const app = await appOf(t, s, {}, (_req, res) => void res.end('hello, world'))
  const first = await send(app.url)
  t.equal(first.text, 'hello, world')
  t.equal(first.setCookie?.name, 'connect.sid')
  await dropTable(s)
  const second = await send(app.url, { cookie: first.cookie })
  t.equal(second.status, 500, 'the failed read is an error, not a missing session')
  t.equal(app.errors.length, 1)
  t.match(app.errors[0], { code: 'NO_STORE_AVAILABLE' })
  t.ok(causedByMissingTable(app.errors[0]), 'caused by the dropped table')
  t.equal(second.text, app.errors[0]?.message, 'the error the store rejected with')
  t.equal(second.setCookie, undefined, 'no new session in its place')
})

t.test('session(): an id the store cannot hold reads as no session, not an error', async (t) => {
  // Upstream: a fetch error with code ENOENT counts as "not found". Our store never fails a
  // read for a missing session; the case that could, an id its manager refuses (unsigned
  // while the manager signs its ids), must read as no session as well.
  const secrets = ['conformance-manager-id-secret-0123456789abcdef']
  const s = await subject(t, 'refused_id', { secrets })
  const app = await appOf(t, s, { genid: () => s.store.generateId() }, numbering())
  const first = await send(app.url)
  t.equal(first.text, 'session 1')
  const foreign = 'an-id-the-manager-never-signed-0123456789'
  const second = await send(app.url, {
    cookie: `connect.sid=${signedCookieValue(foreign)}`,
  })
  t.equal(second.status, 200)
  t.equal(second.text, 'session 2', 'a new session')
  t.not(idOf(second), foreign, 'under a new id')
  t.same(app.errors, [])
})

t.test('session(): two first requests at once make two sessions', async (t) => {
  const s = await subject(t, 'two_sessions')
  const app = await appOf(t, s, {}, (req, res) => {
    const data = bag(req)
    const fresh = data.num === undefined
    data.num ??= 1
    res.end(fresh ? 'session created' : 'session updated')
  })
  const answers = await Promise.all([send(app.url), send(app.url)])
  t.same(
    answers.map((answer) => answer.text),
    ['session created', 'session created'],
  )
  const all = await listed(s)
  t.equal(all.size, 2, 'two sessions listed')
  t.same([...all.keys()].sort(), answers.map(idOf).sort(), 'under the ids the cookies carry')
})

t.test('session(): stored data named like a Session method does not break loading', async (t) => {
  const s = await subject(t, 'reserved_names')
  let seenSave: unknown
  const app = await appOf(t, s, {}, (req, res) => {
    const data = bag(req)
    data.num ??= 1
    seenSave = typeof data.save
    res.end('session saved')
  })
  const first = await send(app.url)
  const id = idOf(first)
  const session = await stored(s, id)
  if (session === null || session === undefined) throw new Error('the session was not stored')
  session.save = 'nope'
  await new Promise<void>((resolve, reject) =>
    s.store.set(id, session as never, (error) => (error ? reject(error) : resolve())),
  )
  t.equal((await stored(s, id))?.save, 'nope', 'the store keeps the field')
  const second = await send(app.url, { cookie: first.cookie })
  t.equal(second.status, 200)
  t.equal(second.text, 'session saved')
  t.equal(seenSave, 'function', 'save is still the method')
})

t.test('session(): a loaded session exposes only its data and its cookie', async (t) => {
  const s = await subject(t, 'enumerable_data')
  const app = await appOf(t, s, {}, (req, res) => {
    const data = bag(req)
    data.test1 = 1
    data.test2 = 'b'
    res.end(Object.keys(data).sort().join(','))
  })
  const first = await send(app.url)
  t.equal(first.text, 'cookie,test1,test2')
  const second = await send(app.url, { cookie: first.cookie })
  t.equal(second.text, 'cookie,test1,test2', 'the store added no field')
})

t.test('session(): a session whose req.sessionID is not a string is not saved', async (t) => {
  const s = await subject(t, 'bogus_session_id')
  const app = await appOf(t, s, {}, (req, res) => {
    ;(req as { sessionID: unknown }).sessionID = () => undefined
    const data = bag(req)
    data.test1 = 1
    data.test2 = 'b'
    res.end()
  })
  const answer = await send(app.url)
  t.equal(answer.status, 200)
  t.equal(answer.setCookie, undefined, 'no cookie')
  t.equal(s.calls.set, 0, 'no write asked')
  t.equal(await s.store.length(), 0, 'nothing stored')
})

t.test('session(): rolling sends a later expiry after a slow response', async (t) => {
  const s = await subject(t, 'slow_write')
  const app = await appOf(t, s, { rolling: true }, async (req, res) => {
    bag(req).user = 'bob'
    res.write('hello, ')
    await sleep(200)
    res.end('world!')
  })
  const first = await send(app.url)
  t.equal(first.text, 'hello, world!')
  const firstExpires = cookieExpires(first)
  t.ok(firstExpires, 'an expiring cookie')
  await intoNextSecond()
  const second = await send(app.url, { cookie: first.cookie })
  t.equal(second.setCookie?.name, 'connect.sid')
  const secondExpires = cookieExpires(second)
  t.ok(secondExpires !== undefined && secondExpires > firstExpires!, 'a later expiry')
  const session = await stored(s, idOf(first))
  t.equal(
    new Date(session?.cookie.expires).toUTCString(),
    new Date(secondExpires!).toUTCString(),
    'the store has the expiry the cookie was sent with',
  )
})

// ---------------------------------------------------------------------------------------------
// when response ended

/** A fault proxy in front of each store, by store id: a latency fault slows every statement. */
const slowPath = await proxiesFor(
  t,
  cluster,
  cluster.stores.map((store) => store.id),
)

/** A subject whose manager reaches the stores through {@link slowPath}, slowed once ready. */
async function slowSubject(t: Test, table: string): Promise<Subject> {
  const stores = cluster
    .storeConfigs()
    .map((config) => ({ ...config, port: slowPath.get(config.id)!.port }))
  const s = await subject(t, table, { stores })
  for (const proxy of slowPath.values()) {
    proxy.setFault({ kind: 'latency', toStoreMillis: 150, toClientMillis: 0 })
  }
  t.teardown(() => {
    for (const proxy of slowPath.values()) proxy.setFault({ kind: 'none' })
  })
  return s
}

/** Ends a response in one of the ways upstream checks; the session is marked as used first. */
const endings: [string, string, ConformanceHandler][] = [
  ['plain', 'session saved', (_req, res) => void res.end('session saved')],
  [
    'empty, with Content-Length: 0',
    '',
    (_req, res) => {
      res.setHeader('Content-Length', '0')
      res.end()
    },
  ],
  [
    'written in two parts',
    'hello, world',
    (_req, res) => {
      res.setHeader('Content-Length', '12')
      res.write('hello, ')
      res.end('world')
    },
  ],
  [
    'not chunked, with its Content-Length',
    'session saved',
    (_req, res) => {
      res.setHeader('Content-Length', '13')
      res.end('session saved')
    },
  ],
]

for (const [index, [ending, body, end]] of endings.entries()) {
  t.test(
    `when response ended: the session is stored before it completes (${ending})`,
    async (t) => {
      const s = await slowSubject(t, `ended_${index}`)
      const app = await appOf(t, s, {}, (req, res) => {
        bag(req).hit = true
        return end(req, res)
      })
      const started = Date.now()
      const answer = await send(app.url)
      const took = Date.now() - started
      t.equal(answer.status, 200)
      t.equal(answer.text, body)
      t.equal(s.calls.set, 1, 'one write')
      const id = idOf(answer)
      // Straight to the stores, not through the slowed path, right after the response.
      t.ok((await storesWithLiveCopy(cluster, id, s.table)).length >= 2, 'both copies written')
      t.ok(took >= 150, `the response waited for the slowed write (${took} ms)`)
    },
  )
}

t.test('when response ended: the stored expiry is the one the cookie was sent with', async (t) => {
  const s = await subject(t, 'ended_expiry')
  const app = await appOf(t, s, { cookie: { maxAge: MINUTE } }, (req, res) => {
    bag(req).user = 'bob'
    res.end(req.session.id)
  })
  const first = await send(app.url)
  const id = first.text
  const before = await stored(s, id)
  t.ok(before, 'stored')
  t.equal(
    new Date(before?.cookie.expires).toUTCString(),
    new Date(cookieExpires(first)!).toUTCString(),
  )
  await intoNextSecond()
  const second = await send(app.url, { cookie: first.cookie })
  t.equal(second.text, id)
  const after = await stored(s, id)
  t.ok(after, 'still stored')
  t.not(
    new Date(after?.cookie.expires).toUTCString(),
    new Date(before?.cookie.expires).toUTCString(),
    'the stored expiry moved with the second request',
  )
})

// ---------------------------------------------------------------------------------------------
// when sid not in store

t.test('when sid not in store: a new session is made', async (t) => {
  const s = await subject(t, 'cleared_new')
  const app = await appOf(t, s, {}, numbering())
  const first = await send(app.url)
  t.equal(first.text, 'session 1')
  await new Promise<void>((resolve, reject) =>
    s.store.clear((error) => (error ? reject(error) : resolve())),
  )
  t.equal(await s.store.length(), 0, 'cleared')
  const second = await send(app.url, { cookie: first.cookie })
  t.equal(second.text, 'session 2')
})

t.test('when sid not in store: the new session has a new id', async (t) => {
  const s = await subject(t, 'cleared_new_id')
  const app = await appOf(t, s, {}, numbering())
  const first = await send(app.url)
  await s.store.clear()
  const second = await send(app.url, { cookie: first.cookie })
  t.equal(second.text, 'session 2')
  t.equal(second.setCookie?.name, 'connect.sid')
  t.not(idOf(second), idOf(first))
})

// ---------------------------------------------------------------------------------------------
// when session expired in store

/** An app whose sessions last `maxAgeMillis`; its first session is checked stored at once. */
async function expiringSession(t: Test, table: string, maxAgeMillis: number) {
  const s = await subject(t, table)
  const app = await appOf(t, s, { cookie: { maxAge: maxAgeMillis } }, numbering())
  const first = await send(app.url)
  t.equal(first.text, 'session 1')
  t.ok(await stored(s, idOf(first)), 'stored while its cookie lasts')
  await sleep(maxAgeMillis + 50)
  return { s, app, first }
}

t.test('when session expired in store: a new session is made', async (t) => {
  const { app, first } = await expiringSession(t, 'expired_new', 300)
  const second = await send(app.url, { cookie: first.cookie })
  t.equal(second.setCookie?.name, 'connect.sid')
  t.equal(second.text, 'session 2')
})

t.test('when session expired in store: the new session has a new id', async (t) => {
  const { app, first } = await expiringSession(t, 'expired_new_id', 300)
  const second = await send(app.url, { cookie: first.cookie })
  t.equal(second.text, 'session 2')
  t.not(idOf(second), idOf(first))
})

t.test('when session expired in store: the store no longer lists it', async (t) => {
  const { s, first } = await expiringSession(t, 'expired_gone', 300)
  t.equal((await listed(s)).size, 0, 'all() lists nothing')
  t.equal(await s.store.length(), 0)
  t.equal(await stored(s, idOf(first)), null, 'get: null')
})

// ---------------------------------------------------------------------------------------------
// when session without cookie property in store

t.test('when session without cookie property in store: loading it fails', async (t) => {
  const s = await subject(t, 'no_cookie')
  const app = await appOf(t, s, {}, numbering())
  const first = await send(app.url)
  t.equal(first.text, 'session 1')
  await s.store.set(idOf(first), { foo: 'bar' } as never)
  t.same(await stored(s, idOf(first)), { foo: 'bar' }, 'the store gives back what it was given')
  const second = await send(app.url, { cookie: first.cookie })
  t.equal(second.status, 500)
  t.match(second.text, /Cannot read prop/)
  t.type(app.errors[0], TypeError)
})

// ---------------------------------------------------------------------------------------------
// genid option

t.test('genid option: ids of the default generator are stored under themselves', async (t) => {
  const s = await subject(t, 'genid_default')
  const app = await appOf(t, s, {}, numbering())
  const first = await send(app.url)
  const id = idOf(first)
  t.equal(first.setCookie?.name, 'connect.sid')
  t.same(await s.store.ids(), [id], 'listed under its own id')
  t.ok((await storesWithLiveCopy(cluster, id, s.table)).length >= 2, 'two copies')
  t.equal((await send(app.url, { cookie: first.cookie })).text, 'session 1')
})

/** Ids a `genid` may return that are no ids of ours, and the path each is asked on. */
const oddIds: [string, string, (req: express.Request) => string][] = [
  ['a fixed word', '/', () => 'apple'],
  ['a character that needs encoding', '/', () => '%'],
  ['the request path, from the req argument', '/foo', (req) => req.url],
]

for (const [index, [what, path, genid]] of oddIds.entries()) {
  t.test(`genid option: a custom id is stored and loaded (${what})`, async (t) => {
    const s = await subject(t, `genid_odd_${index}`)
    const app = await appOf(t, s, { genid }, numbering())
    const first = await send(`${app.url}${path}`)
    const id = genid({ url: path } as express.Request)
    t.equal(first.setCookie?.value, signedCookieValue(id), `cookie carries ${JSON.stringify(id)}`)
    t.match(await stored(s, id), { num: 1 }, 'the store answers for the id')
    t.same(await s.store.ids(), [s.manager.sessionKey(id)], 'kept under its derived key')
    const second = await send(`${app.url}${path}`, { cookie: first.cookie })
    t.equal(second.text, 'session 1', 'loaded on the next request')
  })
}

t.test('genid option: a UUID is stored under itself and loaded', async (t) => {
  const s = await subject(t, 'genid_uuid')
  const uuids: string[] = []
  const genid = () => {
    uuids.push(randomUUID())
    return uuids.at(-1)!
  }
  const app = await appOf(t, s, { genid }, numbering())
  const first = await send(app.url)
  t.equal(idOf(first), uuids[0])
  t.same(await s.store.ids(), uuids, 'a UUID follows the id rules: its own key')
  t.equal((await send(app.url, { cookie: first.cookie })).text, 'session 1')
  t.equal(uuids.length, 1, 'no second id was needed')
})

// ---------------------------------------------------------------------------------------------
// rolling option

const setUser: ConformanceHandler = (req, res) => {
  bag(req).user = 'bob'
  res.end()
}

t.test('rolling option: off by default, an unchanged session sends no cookie', async (t) => {
  const s = await subject(t, 'rolling_default')
  const app = await appOf(t, s, {}, setUser)
  const first = await send(app.url)
  t.equal(first.setCookie?.name, 'connect.sid')
  const second = await send(app.url, { cookie: first.cookie })
  t.equal(second.status, 200)
  t.equal(second.setCookie, undefined, 'no cookie')
  t.match(await stored(s, idOf(first)), { user: 'bob' })
})

t.test('rolling option: an unchanged session gets its cookie again', async (t) => {
  const s = await subject(t, 'rolling_on')
  const app = await appOf(t, s, { rolling: true }, setUser)
  const first = await send(app.url)
  const second = await send(app.url, { cookie: first.cookie })
  t.equal(second.setCookie?.name, 'connect.sid')
  t.equal(idOf(second), idOf(first), 'the same session')
})

t.test('rolling option: an uninitialized session is neither stored nor sent', async (t) => {
  const s = await subject(t, 'rolling_uninit')
  const app = await appOf(t, s, { rolling: true, saveUninitialized: false })
  const answer = await send(app.url)
  t.equal(answer.status, 200)
  t.equal(answer.setCookie, undefined, 'no cookie')
  t.equal(s.calls.set, 0, 'no write asked')
  t.equal(await s.store.length(), 0, 'nothing stored')
})

t.test(
  'rolling option: with saveUninitialized, an untouched session is stored and sent',
  async (t) => {
    const s = await subject(t, 'rolling_save_uninit')
    const app = await appOf(t, s, { rolling: true, saveUninitialized: true })
    const answer = await send(app.url)
    t.equal(answer.setCookie?.name, 'connect.sid')
    t.equal(s.calls.set, 1, 'one write')
    t.ok(await stored(s, idOf(answer)), 'stored')
  },
)

t.test(
  'rolling option: without saveUninitialized, a changed session is stored and sent',
  async (t) => {
    const s = await subject(t, 'rolling_modified')
    const app = await appOf(t, s, { rolling: true, saveUninitialized: false }, setUser)
    const answer = await send(app.url)
    t.equal(answer.setCookie?.name, 'connect.sid')
    t.equal(s.calls.set, 1, 'one write')
    t.match(await stored(s, idOf(answer)), { user: 'bob' })
  },
)

// ---------------------------------------------------------------------------------------------
// resave option

/** The version of the session's row on each store that holds it. */
async function versions({ table }: Subject, id: string): Promise<number[]> {
  const rows = await rowsOnStores(cluster, id, table)
  return [...rows.values()].flatMap((row) => (row === null ? [] : [row.version]))
}

for (const [name, resave] of [
  ['on by default', undefined],
  ['on', true],
] as const) {
  t.test(`resave option: ${name}, an unchanged session is written again`, async (t) => {
    const s = await subject(t, `resave_${resave === undefined ? 'default' : 'true'}`)
    const app = await appOf(t, s, resave === undefined ? {} : { resave }, setUser)
    const first = await send(app.url)
    t.equal(s.calls.set, 1, 'the first request writes')
    const id = idOf(first)
    const before = Math.max(...(await versions(s, id)))
    await send(app.url, { cookie: first.cookie })
    t.equal(s.calls.set, 2, 'the second request writes too')
    t.ok(Math.max(...(await versions(s, id))) > before, 'a new version on the stores')
  })
}

t.test('resave option: off, an unchanged session is touched, not written', async (t) => {
  const s = await subject(t, 'resave_false')
  const app = await appOf(t, s, { resave: false }, setUser)
  const first = await send(app.url)
  t.equal(s.calls.set, 1)
  const id = idOf(first)
  const before = await versions(s, id)
  await send(app.url, { cookie: first.cookie })
  t.equal(s.calls.set, 1, 'no second write asked')
  t.equal(s.calls.touch, 1, 'a touch instead')
  t.same(await versions(s, id), before, 'the rows keep their version')
})

t.test('resave option: off, a changed session is still written', async (t) => {
  const s = await subject(t, 'resave_false_modified')
  const app = await appOf(t, s, { resave: false }, (req, res) => {
    const data = bag(req)
    if (req.method === 'PUT') data.token = req.url.slice(1)
    res.end(`token=${String(data.token ?? '')}`)
  })
  const put = await send(`${app.url}/first-token`, { method: 'PUT' })
  t.equal(put.text, 'token=first-token')
  t.equal(s.calls.set, 1)
  const read = await send(app.url, { cookie: put.cookie })
  t.equal(read.text, 'token=first-token', 'read back from the store')
  t.equal(s.calls.set, 1, 'reading does not write')
  const change = await send(`${app.url}/second-token`, { method: 'PUT', cookie: put.cookie })
  t.equal(change.text, 'token=second-token')
  t.equal(s.calls.set, 2, 'the change is written')
  t.match(await stored(s, idOf(put)), { token: 'second-token' })
})

t.test('resave option: off, a change inside a field named "cookie" is written', async (t) => {
  const s = await subject(t, 'resave_false_cookie_field')
  const app = await appOf(t, s, { resave: false }, (req, res) => {
    const data = bag(req) as { user?: { name: string; cookie: number } }
    data.user ??= { name: 'bob', cookie: 0 }
    data.user.cookie += 1
    res.end()
  })
  const first = await send(app.url)
  await send(app.url, { cookie: first.cookie })
  t.equal(s.calls.set, 2, 'both requests write')
  t.match(await stored(s, idOf(first)), { user: { name: 'bob', cookie: 2 } })
})

t.test('resave option: off, a store failure while touching is passed to next(err)', async (t) => {
  const s = await subject(t, 'touch_error')
  let failNow = false
  const app = await appOf(t, s, { resave: false }, async (req, res) => {
    bag(req).hit = true
    // Loaded already: the touch at the end of this response is the first statement to fail.
    if (failNow) await dropTable(s)
    res.end('session saved')
  })
  const first = await send(app.url)
  t.equal(first.text, 'session saved')
  failNow = true
  const second = await send(app.url, { cookie: first.cookie })
  t.equal(second.status, 200, 'the response had started')
  t.equal(second.text, 'session saved')
  t.equal(s.calls.touch, 1)
  await waitFor('the error to reach next()', () => app.errors.length > 0)
  t.equal(app.errors.length, 1)
  t.match(app.errors[0], { code: 'NO_STORE_AVAILABLE' })
  t.ok(causedByMissingTable(app.errors[0]), 'caused by the dropped table')
})

// ---------------------------------------------------------------------------------------------
// saveUninitialized option

for (const [name, saveUninitialized] of [
  ['on by default', undefined],
  ['on', true],
] as const) {
  t.test(`saveUninitialized option: ${name}, an untouched session is stored`, async (t) => {
    const s = await subject(
      t,
      `save_uninit_${saveUninitialized === undefined ? 'default' : 'true'}`,
    )
    const app = await appOf(t, s, saveUninitialized === undefined ? {} : { saveUninitialized })
    const answer = await send(app.url)
    t.equal(answer.setCookie?.name, 'connect.sid')
    t.equal(s.calls.set, 1)
    t.ok(await stored(s, idOf(answer)), 'stored')
  })
}

t.test('saveUninitialized option: off, an untouched session is not stored', async (t) => {
  const s = await subject(t, 'save_uninit_false')
  const app = await appOf(t, s, { saveUninitialized: false })
  const answer = await send(app.url)
  t.equal(answer.setCookie, undefined)
  t.equal(s.calls.set, 0)
  t.equal(await s.store.length(), 0)
})

t.test('saveUninitialized option: off, a changed session is stored', async (t) => {
  const s = await subject(t, 'save_uninit_false_modified')
  const app = await appOf(t, s, { saveUninitialized: false }, (req, res) => {
    const data = bag(req)
    data.count = Number(data.count ?? 0) + 1
    res.end()
  })
  const answer = await send(app.url)
  t.equal(answer.setCookie?.name, 'connect.sid')
  t.equal(s.calls.set, 1)
  t.match(await stored(s, idOf(answer)), { count: 1 })
})

t.test(
  'saveUninitialized option: a store failure while saving is passed to next(err)',
  async (t) => {
    const s = await subject(t, 'save_error')
    const app = await appOf(t, s, { saveUninitialized: true }, (_req, res) => {
      res.end('session saved')
    })
    await dropTable(s)
    const answer = await send(app.url)
    t.equal(answer.status, 200, 'the response had started')
    t.equal(answer.text, 'session saved')
    await waitFor('the error to reach next()', () => app.errors.length > 0)
    t.equal(app.errors.length, 1)
    t.match(app.errors[0], { code: 'NOT_ENOUGH_STORES' })
    t.ok(causedByMissingTable(app.errors[0]), 'caused by the dropped table')
  },
)

t.test('saveUninitialized option: off, an untouched session is not touched either', async (t) => {
  const s = await subject(t, 'save_uninit_no_touch')
  const app = await appOf(t, s, { saveUninitialized: false, cookie: { maxAge: MINUTE } })
  const answer = await send(app.url)
  t.equal(answer.status, 200)
  t.same(s.calls, { get: 0, set: 0, touch: 0, destroy: 0 }, 'the store was not called')
})

// ---------------------------------------------------------------------------------------------
// unset option

/** Counts requests in the session; on the second, sets req.session to null. */
const unsetOnSecond: ConformanceHandler = (req, res) => {
  const data = bag(req)
  data.count = Number(data.count ?? 0) + 1
  if (data.count === 2) (req as { session: unknown }).session = null
  res.end()
}

t.test('unset option: by default, req.session = null keeps the stored session', async (t) => {
  const s = await subject(t, 'unset_keep')
  const app = await appOf(t, s, {}, unsetOnSecond)
  const first = await send(app.url)
  t.equal(await s.store.length(), 1)
  await send(app.url, { cookie: first.cookie })
  t.equal(await s.store.length(), 1, 'still there')
  t.match(await stored(s, idOf(first)), { count: 1 }, 'as the first request left it')
  t.equal(s.calls.destroy, 0)
})

t.test('unset option: "destroy" destroys the session on req.session = null', async (t) => {
  const s = await subject(t, 'unset_destroy')
  const app = await appOf(t, s, { unset: 'destroy' }, unsetOnSecond)
  const first = await send(app.url)
  t.equal(await s.store.length(), 1)
  await send(app.url, { cookie: first.cookie })
  t.equal(await s.store.length(), 0, 'gone')
  t.same(await storesWithLiveCopy(cluster, idOf(first), s.table), [], 'no live copy anywhere')
  t.equal((await send(app.url, { cookie: first.cookie })).setCookie?.name, 'connect.sid', 'new')
})

t.test('unset option: "destroy" on a new session sends no cookie, stores nothing', async (t) => {
  const s = await subject(t, 'unset_destroy_new')
  const app = await appOf(t, s, { unset: 'destroy' }, (req, res) => {
    ;(req as { session: unknown }).session = null
    res.end()
  })
  const answer = await send(app.url)
  t.equal(answer.status, 200)
  t.equal(answer.setCookie, undefined)
  t.equal(s.calls.destroy, 1, 'destroy asked for an id never stored')
  t.equal(await s.store.length(), 0)
})

t.test('unset option: a store failure while destroying is passed to next(err)', async (t) => {
  const s = await subject(t, 'destroy_error')
  const app = await appOf(t, s, { unset: 'destroy' }, (req, res) => {
    ;(req as { session: unknown }).session = null
    res.end('session destroyed')
  })
  await dropTable(s)
  const answer = await send(app.url)
  t.equal(answer.status, 200, 'the response had started')
  t.equal(answer.text, 'session destroyed')
  await waitFor('the error to reach next()', () => app.errors.length > 0)
  t.equal(app.errors.length, 1)
  t.match(app.errors[0], { code: 'NOT_ENOUGH_STORES' })
  t.ok(causedByMissingTable(app.errors[0]), 'caused by the dropped table')
})

// ---------------------------------------------------------------------------------------------
// req.session

const countHits: ConformanceHandler = (req, res) => {
  const data = bag(req)
  data.count = Number(data.count ?? 0) + 1
  res.end(`hits: ${String(data.count)}`)
}

t.test('req.session: persists between requests, and store.load gives it back', async (t) => {
  const s = await subject(t, 'persist')
  const app = await appOf(t, s, {}, countHits)
  const first = await send(app.url)
  t.equal(first.text, 'hits: 1')
  const loaded = await new Promise<unknown>((resolve, reject) =>
    s.store.load(idOf(first), (error, session) => (error ? reject(error) : resolve(session))),
  )
  t.match(loaded, { count: 1, id: idOf(first) }, 'a Session made from the stored data')
  t.equal((await send(app.url, { cookie: first.cookie })).text, 'hits: 2')
})

t.test('req.session: the cookie is sent again only when the session changed', async (t) => {
  const s = await subject(t, 'cookie_when_modified')
  let change = true
  const app = await appOf(t, s, {}, (req, res) => {
    const data = bag(req)
    if (change) data.count = Number(data.count ?? 0) + 1
    res.end(String(data.count))
  })
  const first = await send(app.url)
  t.equal(first.text, '1')
  const second = await send(app.url, { cookie: first.cookie })
  t.equal(second.text, '2')
  change = false
  const third = await send(app.url, { cookie: second.cookie })
  t.equal(third.text, '2', 'read back from the store')
  t.equal(third.setCookie, undefined, 'unchanged: no cookie')
  change = true
  const fourth = await send(app.url, { cookie: second.cookie })
  t.equal(fourth.text, '3')
  t.equal(fourth.setCookie?.name, 'connect.sid', 'changed: the cookie again')
})

t.test('req.session: a loaded session enumerates no method', async (t) => {
  const s = await subject(t, 'no_enumerable_methods')
  const app = await appOf(t, s, {}, (req, res) => {
    const data = bag(req)
    data.foo = 'foo'
    data.bar = 'bar'
    const keys: string[] = []
    for (const key in data) keys.push(key)
    res.end(keys.sort().join(','))
  })
  const first = await send(app.url)
  t.equal(first.text, 'bar,cookie,foo')
  t.equal((await send(app.url, { cookie: first.cookie })).text, 'bar,cookie,foo', 'loaded')
})

t.test('req.session .destroy(): the session is gone, and no cookie is sent', async (t) => {
  const s = await subject(t, 'session_destroy')
  const app = await appOf(t, s, {}, (req, res) => {
    if (req.url === '/login') {
      bag(req).user = 'bob'
      res.end('in')
      return
    }
    req.session.destroy((error) => {
      if (error) res.statusCode = 500
      res.end(String(req.session))
    })
  })
  const fresh = await send(app.url)
  t.equal(fresh.status, 200)
  t.equal(fresh.text, 'undefined', 'a new session destroyed at once')
  t.equal(fresh.setCookie, undefined)

  const login = await send(`${app.url}/login`)
  const id = idOf(login)
  t.ok(await stored(s, id), 'logged in')
  const logout = await send(app.url, { cookie: login.cookie })
  t.equal(logout.status, 200)
  t.equal(logout.text, 'undefined')
  t.equal(logout.setCookie, undefined)
  t.equal(await stored(s, id), null, 'an existing session destroyed')
  t.same(await storesWithLiveCopy(cluster, id, s.table), [])
})

t.test('req.session .regenerate(): the session is replaced under a new id', async (t) => {
  const s = await subject(t, 'session_regenerate')
  const app = await appOf(t, s, {}, (req, res) => {
    const id = req.session.id
    req.session.regenerate((error) => {
      if (error) res.statusCode = 500
      res.end(String(req.session.id === id))
    })
  })
  const first = await send(app.url)
  t.equal(first.setCookie?.name, 'connect.sid')
  const second = await send(app.url, { cookie: first.cookie })
  t.equal(second.status, 200)
  t.equal(second.text, 'false', 'a different id inside the request')
  t.not(idOf(second), idOf(first), 'and in the cookie')
  t.equal(await stored(s, idOf(first)), null, 'the old session is gone')
  t.ok(await stored(s, idOf(second)), 'the new one is stored')
})

t.test('req.session .reload(): picks up what another request stored meanwhile', async (t) => {
  const s = await subject(t, 'session_reload')
  let cookie: string | undefined
  const app: ConformanceApp = await appOf(t, s, {}, async (req, res) => {
    const data = bag(req)
    if (req.url === '/') {
      data.active = true
      res.end('session created')
      return
    }
    data.url = req.url
    if (req.url === '/bar') {
      res.end(`saw ${String(data.url)}`)
      return
    }
    const inner = await send(`${app.url}/bar`, { cookie })
    t.equal(inner.text, 'saw /bar')
    await new Promise<void>((resolve, reject) =>
      req.session.reload((error) => (error ? reject(error) : resolve())),
    )
    res.end(`saw ${String(bag(req).url)}`)
  })
  const first = await send(app.url)
  t.equal(first.text, 'session created')
  cookie = first.cookie
  const outer = await send(`${app.url}/foo`, { cookie })
  t.equal(outer.text, 'saw /bar', "the other request's change, read from the store")
})

t.test('req.session .reload(): fails when the session is no longer stored', async (t) => {
  const s = await subject(t, 'session_reload_missing')
  const app = await appOf(t, s, {}, async (req, res) => {
    if (req.url === '/') {
      bag(req).active = true
      res.end('session created')
      return
    }
    await s.store.clear()
    req.session.reload((error) => {
      res.statusCode = error ? 500 : 200
      res.end(error ? (error as Error).message : '')
    })
  })
  const first = await send(app.url)
  t.equal(first.text, 'session created')
  const second = await send(`${app.url}/foo`, { cookie: first.cookie })
  t.equal(second.status, 500)
  t.equal(second.text, 'failed to load session')
})

t.test('req.session .reload(): many failing reloads in a row do not pile up', async (t) => {
  const s = await subject(t, 'session_reload_loop')
  const app = await appOf(t, s, { resave: false }, async (req, res) => {
    if (req.url === '/') {
      bag(req).active = true
      res.end('session created')
      return
    }
    await s.store.clear()
    let left = 20
    const again = (): void => {
      left -= 1
      if (left === 0) {
        res.end('ok')
        return
      }
      try {
        req.session.reload(again)
      } catch (error) {
        res.statusCode = 500
        res.end((error as Error).message)
      }
    }
    again()
  })
  const first = await send(app.url)
  const second = await send(`${app.url}/foo`, { cookie: first.cookie })
  t.equal(second.status, 200)
  t.equal(second.text, 'ok')
  t.equal(s.calls.get, 1 + 19, 'the request read, then 19 reloads each asked the store')
})

t.test('req.session .save(): the session is in the store when save calls back', async (t) => {
  const s = await subject(t, 'session_save')
  const app = await appOf(t, s, {}, (req, res) => {
    bag(req).hit = true
    req.session.save((error) => {
      if (error) return void res.end((error as Error).message)
      s.store.get(req.session.id, (readError, session) => {
        if (readError) return void res.end((readError as Error).message)
        res.end(session ? 'stored' : 'empty')
      })
    })
  })
  t.equal((await send(app.url)).text, 'stored')
})

/** Marks the session, optionally reloads it, saves it, then answers "saved". */
function saveBeforeEnd(reload: boolean): ConformanceHandler {
  return (req, res) => {
    bag(req).hit = true
    const save = () =>
      req.session.save((error) => res.end(error ? (error as Error).message : 'saved'))
    if (reload) req.session.reload(() => save())
    else save()
  }
}

for (const [name, options, reload] of [
  ['an explicit save replaces the end-of-request save', {}, false],
  ['also after a reload', {}, true],
  ['also when saveUninitialized is off', { saveUninitialized: false }, false],
] as const) {
  t.test(`req.session .save(): ${name}`, async (t) => {
    const s = await subject(
      t,
      `save_once_${reload ? 'reload' : 'uninit' in options ? 'uninit' : 'plain'}`,
    )
    const app = await appOf(t, s, options, saveBeforeEnd(reload))
    const first = await send(app.url)
    t.equal(first.text, 'saved')
    t.equal(s.calls.set, 1, 'one write for the first request')
    const second = await send(app.url, { cookie: first.cookie })
    t.equal(second.text, 'saved')
    t.equal(s.calls.set, 2, 'one write for the second')
    t.match(await stored(s, idOf(first)), { hit: true })
  })
}

t.test('req.session .touch(): a touch moves the expiry the store gives back', async (t) => {
  const s = await subject(t, 'session_touch')
  const app = await appOf(t, s, { resave: false, cookie: { maxAge: MINUTE } }, (req, res) => {
    bag(req).hit = true
    req.session.touch()
    res.end()
  })
  const first = await send(app.url)
  const id = idOf(first)
  const before = new Date((await stored(s, id))?.cookie.expires).getTime()
  await sleep(100)
  const touchedAt = Date.now()
  await send(app.url, { cookie: first.cookie })
  t.equal(s.calls.touch, 1, 'a touch, not a write')
  t.equal(s.calls.set, 1)
  const after = new Date((await stored(s, id))?.cookie.expires).getTime()
  t.not(after, before, 'the stored expiry changed')
  t.ok(after >= touchedAt + MINUTE - 50, 'to a minute after the touch')
})

// ---------------------------------------------------------------------------------------------
// req.session .cookie

t.test('req.session .cookie: a browser-session cookie is sent once', async (t) => {
  const s = await subject(t, 'browser_session_once', { ttlSeconds: 600 })
  const app = await appOf(t, s, { cookie: { path: '/admin' } })
  const first = await send(`${app.url}/admin/foo`)
  t.equal(first.setCookie?.name, 'connect.sid')
  t.notOk(first.setCookie?.attributes.has('expires'), 'no Expires')
  const second = await send(`${app.url}/admin`, { cookie: first.cookie })
  t.equal(second.status, 200)
  t.equal(second.setCookie, undefined, 'not sent again')
  const session = await stored(s, idOf(first))
  t.equal(session?.cookie.expires, null, 'the store gives back a cookie without expiry')
  const rows = await rowsOnStores(cluster, idOf(first), s.table)
  const expiries = [...rows.values()].flatMap((row) => (row === null ? [] : [row.expires_at]))
  t.ok(
    expiries.length >= 2 && expiries.every((at) => Math.abs(at - Date.now() - 600_000) < 5000),
    "stored with the manager's ttlSeconds",
  )
})

t.test('req.session .cookie .originalMaxAge: the same on every request', async (t) => {
  const s = await subject(t, 'original_max_age')
  const app = await appOf(t, s, { cookie: { maxAge: 2000 } }, (req, res) => {
    res.end(JSON.stringify(req.session.cookie.originalMaxAge))
  })
  const first = await send(app.url)
  t.ok(setJustNow(Number(first.text), 2000), `2000 (${first.text})`)
  await sleep(100)
  const second = await send(app.url, { cookie: first.cookie })
  t.equal(second.text, first.text, 'as loaded from the store, 100 ms later')
})

t.test('req.session .cookie .originalMaxAge: the same after a touch', async (t) => {
  // Upstream repeats the scenario with a store that gives back `expires` as a Date; ours
  // gives back the stored expiry, moved by touches: check it after one.
  const s = await subject(t, 'original_max_age_touch')
  const app = await appOf(t, s, { resave: false, cookie: { maxAge: 2000 } }, (req, res) => {
    res.end(JSON.stringify(req.session.cookie.originalMaxAge))
  })
  const first = await send(app.url)
  t.ok(setJustNow(Number(first.text), 2000), `2000 (${first.text})`)
  await sleep(100)
  const second = await send(app.url, { cookie: first.cookie })
  t.equal(second.text, first.text)
  t.equal(s.calls.touch, 1, 'the second request touched')
  await sleep(100)
  t.equal((await send(app.url, { cookie: first.cookie })).text, first.text, 'after the touch')
})

t.test('req.session .cookie .maxAge: the cookie and the store follow maxAge', async (t) => {
  const s = await subject(t, 'max_age')
  const app = await appOf(t, s, { cookie: { maxAge: 2000 } }, (req, res) => {
    const data = bag(req)
    data.count = Number(data.count) + 1
    if (data.count === 2) req.session.cookie.maxAge = 5000
    else if (data.count === 3) req.session.cookie.maxAge = 3_000_000_000
    else if (data.count !== 1) data.count = 0
    res.end(String(data.count))
  })
  const start = await send(app.url)
  t.equal(start.text, '0')
  const id = idOf(start)
  for (const [count, maxAge] of [
    ['1', 2000],
    ['2', 5000],
    ['3', 3_000_000_000],
  ] as const) {
    // At the start of a second, so the Date header and Expires fall in the same second.
    await intoNextSecond(100)
    const answer = await send(app.url, { cookie: start.cookie })
    t.equal(answer.text, count)
    t.ok(sentFor(answer, maxAge), `cookie expires ${maxAge} ms later`)
    const session = await stored(s, id)
    t.ok(
      setJustNow(session?.cookie.originalMaxAge, maxAge),
      `stored originalMaxAge (${String(session?.cookie.originalMaxAge)})`,
    )
    const storedExpiry = new Date(session?.cookie.expires).getTime()
    t.ok(
      Math.abs(storedExpiry - (answer.date + maxAge)) < 1100,
      `stored expiry ${maxAge} ms after the request`,
    )
  }
})

/**
 * An app with rolling sessions of 2 s (resave off) whose handler never changes the data after
 * the first request, and sets `req.session.cookie.maxAge` to the `maxAge` query parameter when
 * there is one; it answers the session's `originalMaxAge`. express-session then hands such a
 * request's cookie to touch(), not set().
 */
async function lifetimeChangedInTouch(t: Test, table: string) {
  const s = await subject(t, table)
  const app = await appOf(
    t,
    s,
    { resave: false, rolling: true, cookie: { maxAge: 2000 } },
    (req, res) => {
      bag(req).user ??= 'bob'
      const wanted = Number(new URL(req.url, 'http://localhost').searchParams.get('maxAge'))
      if (wanted > 0) req.session.cookie.maxAge = wanted
      res.end(String(req.session.cookie.originalMaxAge))
    },
  )
  const first = await send(app.url)
  t.ok(setJustNow(Number(first.text), 2000), `2000 (${first.text})`)
  return { s, app, first, id: idOf(first) }
}

// Upstream changes maxAge together with the data, so its store sees a save (mirrored above).
// With resave off and the data unchanged, express-session gives the changed cookie to
// touch(): express-session's MemoryStore keeps it, longer or shorter. These two check that
// ours does too.
t.test('req.session .cookie .maxAge: a longer maxAge given to touch() is kept', async (t) => {
  const { s, app, first, id } = await lifetimeChangedInTouch(t, 'max_age_touch_longer')
  await intoNextSecond(100)
  const longer = await send(`${app.url}/?maxAge=5000`, { cookie: first.cookie })
  t.ok(setJustNow(Number(longer.text), 5000), `5000 (${longer.text})`)
  t.same([s.calls.set, s.calls.touch], [1, 1], 'express-session touched, did not save')
  t.ok(sentFor(longer, 5000), 'cookie sent for 5 s')
  const storedExpiry = new Date((await stored(s, id))?.cookie.expires).getTime()
  t.ok(storedExpiry - longer.date >= 4000, 'the stored expiry moved to about 5 s')
  await intoNextSecond(100)
  const next = await send(app.url, { cookie: first.cookie })
  t.ok(setJustNow(Number(next.text), 5000), `the next request still has 5 s (${next.text})`)
  t.ok(sentFor(next, 5000), 'and sends the cookie for 5 s')
  const lifetime = (await stored(s, id))?.cookie.originalMaxAge
  t.ok(setJustNow(lifetime, 5000), `the store has the new lifetime (${String(lifetime)})`)
})

t.test('req.session .cookie .maxAge: a shorter maxAge given to touch() is kept', async (t) => {
  const { s, app, first, id } = await lifetimeChangedInTouch(t, 'max_age_touch_shorter')
  const shorter = await send(`${app.url}/?maxAge=150`, { cookie: first.cookie })
  t.ok(setJustNow(Number(shorter.text), 150), `150 (${shorter.text})`)
  t.same([s.calls.set, s.calls.touch], [1, 1], 'express-session touched, did not save')
  await sleep(300)
  t.notOk(await stored(s, id), 'gone once the 150 ms cookie has expired')
  const replayed = await send(app.url, { cookie: first.cookie })
  t.not(idOf(replayed), id, 'the expired cookie, sent again, gets a new session')
})

t.test(
  'req.session .cookie .expires: a date in the past is sent, nothing stays stored',
  async (t) => {
    const s = await subject(t, 'expires_past')
    const app = await appOf(t, s, {}, (req, res) => {
      req.session.cookie.expires = new Date(0)
      res.end()
    })
    const answer = await send(app.url)
    t.equal(answer.setCookie?.attributes.get('expires'), 'Thu, 01 Jan 1970 00:00:00 GMT')
    t.equal(s.calls.set, 1, 'express-session asked to save it')
    t.equal(await stored(s, idOf(answer)), null, 'an expired session is not kept')
    t.equal(await s.store.length(), 0)
  },
)

/** Sets a browser-session cookie (expires = null), optionally counting hits. */
function browserSession(count: boolean): ConformanceHandler {
  return (req, res) => {
    req.session.cookie.expires = null as unknown as Date
    if (count) bag(req).hit = Number(bag(req).hit ?? 0) + 1
    res.end()
  }
}

t.test('req.session .cookie .expires: null makes a browser-session cookie', async (t) => {
  const s = await subject(t, 'expires_null', { ttlSeconds: 600 })
  const app = await appOf(t, s, {}, browserSession(false))
  const answer = await send(app.url)
  t.equal(answer.setCookie?.name, 'connect.sid')
  t.notOk(answer.setCookie?.attributes.has('expires'), 'no Expires')
  const session = await stored(s, idOf(answer))
  t.equal(session?.cookie.expires, null, 'stored without expiry')
  t.equal(session?.cookie.originalMaxAge, null)
})

for (const count of [false, true]) {
  t.test(
    `req.session .cookie .expires: null, the cookie is not sent again${count ? ' after a change' : ''}`,
    async (t) => {
      const s = await subject(t, `expires_null_again_${String(count)}`)
      const app = await appOf(t, s, {}, browserSession(count))
      const first = await send(app.url)
      t.notOk(first.setCookie?.attributes.has('expires'), 'no Expires')
      const second = await send(app.url, { cookie: first.cookie })
      t.equal(second.status, 200)
      t.equal(second.setCookie, undefined, 'not sent again')
      if (count) t.match(await stored(s, idOf(first)), { hit: 2 }, 'the change is stored')
    },
  )
}

// ---------------------------------------------------------------------------------------------
// synchronous store (upstream: a store calling back synchronously; ours answers asynchronously)

t.test('synchronous store: the response is right when the session is saved', async (t) => {
  const s = await subject(t, 'respond_on_save')
  const app = await appOf(t, s, {}, countHits)
  const answer = await send(app.url)
  t.equal(answer.text, 'hits: 1')
  t.match(await stored(s, idOf(answer)), { count: 1 })
})

t.test('synchronous store: the response is right when the session is destroyed', async (t) => {
  const s = await subject(t, 'respond_on_destroy')
  const app = await appOf(t, s, { unset: 'destroy' }, (req, res) => {
    const data = bag(req)
    const count = Number(data.count ?? 0) + 1
    data.count = count
    if (count > 1) {
      ;(req as { session: unknown }).session = null
      res.write('destroyed\n')
    }
    res.end(`hits: ${count}`)
  })
  const first = await send(app.url)
  t.equal(first.text, 'hits: 1')
  const second = await send(app.url, { cookie: first.cookie })
  t.equal(second.text, 'destroyed\nhits: 2')
  t.equal(await stored(s, idOf(first)), null, 'destroyed in the store')
})

// ---------------------------------------------------------------------------------------------
// req.session with the store disconnected (every store down; kills and restarts the stores)

crashTest('req.session: absent while the store is disconnected, back on reconnect', async (t) => {
  const s = await subject(t, 'disconnect', { healthCheckIntervalMillis: 100 })
  const events: string[] = []
  s.store.on('disconnect', () => events.push('disconnect'))
  s.store.on('connect', () => events.push('connect'))
  const app = await appOf(t, s, {}, (req, res) => void res.end(typeof req.session))
  t.teardown(async () => {
    for (const store of cluster.stores) if (!store.running) await store.start()
  })
  t.equal((await send(app.url)).text, 'object', 'connected: a session')

  await Promise.all(cluster.stores.map((store) => store.kill()))
  await waitFor('the store to disconnect', () => events.includes('disconnect'))
  const cut = await send(app.url)
  t.equal(cut.status, 200)
  t.equal(cut.text, 'undefined', 'disconnected: no session')
  t.equal(cut.setCookie, undefined, 'and no cookie')

  await cluster.stores[0]!.start()
  await waitFor('the store to connect', () => events.includes('connect'))
  const back = await send(app.url)
  t.equal(back.text, 'object', 'reconnected: a session again')
  t.equal(back.setCookie?.name, 'connect.sid')
  await Promise.all(cluster.stores.slice(1).map((store) => store.start()))
  await waitFor('every store back in service', () =>
    cluster.stores.every((store) => storeState(s.manager, store.id) === 'up'),
  )
})
