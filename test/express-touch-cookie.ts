// express-session hands the request's cookie to store.touch() instead of store.set() when the
// session's data did not change (resave: false), even when the app changed the cookie: an
// expiry in the past, maxAge null (a browser-session cookie), a shorter maxAge. The store must
// then do what a save would (express-session's MemoryStore keeps the cookie it is given): an
// expired cookie destroys the session, a new lifetime is stored. A cookie whose lifetime did
// not change but whose expiry is earlier than the stored one comes from a request that began
// before another one extended the session (a long streamed response: express-session fixes the
// cookie when the headers go out, and touches when the response ends): it must neither shorten
// the session below the cookie the browser holds nor rewrite it.
import type { SessionData } from 'express-session'
import t from 'tap'
import type { Test } from 'tap'
import { SessionShardsStore } from '../lib/adapters/express.js'
import type { SessionManager } from '../lib/index.js'
import { startTestCluster } from './helpers/cluster.js'
import {
  cookieExpires,
  parseSetCookie,
  send,
  sessionIdOf,
  startConformanceApp,
} from './helpers/express-conformance-app.js'
import { storesWithLiveCopy, startManager } from './helpers/manager.js'
import { gate, sleep } from './helpers/wait.js'

const cluster = await startTestCluster(t, { stores: 3 })
const MINUTE = 60_000
/** The cookie lifetime of a "remember me" request. */
const REMEMBERED = 30 * MINUTE

/** A session as express-session hands it to a store, with a cookie of `lifetime` ending at `expiresAt`. */
function session(
  lifetime: number | null,
  expiresAt: number | null,
  data: Record<string, unknown> = { user: 'ada' },
): SessionData {
  const cookie = {
    originalMaxAge: lifetime,
    expires: expiresAt === null ? null : new Date(expiresAt),
    httpOnly: true,
    path: '/',
  }
  return { ...data, cookie } as unknown as SessionData
}

/** The store's answer for `id`, with its cookie's lifetime and expiry in milliseconds. */
async function storedCookie(
  store: SessionShardsStore,
  id: string,
): Promise<{ lifetime: unknown; expires: number | null } | null> {
  const read = (await store.get(id)) as unknown as {
    cookie: { originalMaxAge: unknown; expires: string | null }
  } | null
  if (read === null) return null
  const { originalMaxAge, expires } = read.cookie
  return { lifetime: originalMaxAge, expires: expires === null ? null : Date.parse(expires) }
}

async function versionAndExpiry(manager: SessionManager, id: string) {
  const read = await manager.readSession(id, { withVersion: true })
  return read === null ? null : { version: read.version, expiresAt: read.expiresAt }
}

const stores = [
  ['no throttle', (manager: SessionManager) => new SessionShardsStore({ manager })],
  [
    'touchAfterSeconds 60',
    (manager: SessionManager) => new SessionShardsStore({ manager, touchAfterSeconds: 60 }),
  ],
] as const

for (const [throttle, makeStore] of stores) {
  t.test(`${throttle}: a touch with an expired cookie destroys the session`, async (t) => {
    const manager = await startManager(t, cluster, { copies: 2, table: 'touch_expired' })
    const store = makeStore(manager)
    for (const [what, lifetime, expiresAt] of [
      ['expires at the epoch', -Date.now(), 0],
      ['maxAge 0', 0, Date.now()],
      ['maxAge negative', -5000, Date.now() - 5000],
    ] as const) {
      const id = store.generateId()
      await store.set(id, session(MINUTE, Date.now() + MINUTE))
      await store.get(id)
      await store.touch(id, session(lifetime, expiresAt))
      t.equal(await store.get(id), null, `${what}: gone`)
      t.same(await storesWithLiveCopy(cluster, id, 'touch_expired'), [], `${what}: no live copy`)

      // The same through a store that has not read the session (or has forgotten it).
      const other = store.generateId()
      await store.set(other, session(MINUTE, Date.now() + MINUTE))
      await makeStore(manager).touch(other, session(lifetime, expiresAt))
      t.equal(await store.get(other), null, `${what}, not read by that store: gone`)
    }
    // A cookie that says nothing of its lifetime (no originalMaxAge) cannot be told stale.
    const id = store.generateId()
    const bare = (expires: number) => ({ user: 'ada', cookie: { expires: new Date(expires) } })
    await store.set(id, bare(Date.now() + MINUTE) as unknown as SessionData)
    await store.get(id)
    await store.touch(id, bare(0) as unknown as SessionData)
    t.equal(await store.get(id), null, 'no lifetime, expired: gone')
  })

  t.test(`${throttle}: a browser-session cookie given to touch is stored`, async (t) => {
    const manager = await startManager(t, cluster, {
      copies: 2,
      table: 'touch_browser',
      ttlSeconds: 600,
    })
    const store = makeStore(manager)
    for (const [what, toucher] of [
      ['read by the store', store],
      ['not read by the store', makeStore(manager)],
    ] as const) {
      const id = store.generateId()
      await store.set(id, session(MINUTE, Date.now() + MINUTE))
      await store.get(id)
      await toucher.touch(id, session(null, null))
      t.same(await storedCookie(store, id), { lifetime: null, expires: null }, what)
      const expiresAt = (await versionAndExpiry(manager, id))?.expiresAt ?? 0
      t.ok(expiresAt >= Date.now() + 590_000, `${what}: expires with the manager's ttlSeconds`)
      // And back: a persistent cookie again, through a touch.
      const back = Date.now() + 2 * MINUTE
      await toucher.touch(id, session(2 * MINUTE, back))
      t.same(
        await storedCookie(store, id),
        { lifetime: 2 * MINUTE, expires: back },
        `${what}: back`,
      )
    }
  })

  t.test(`${throttle}: a shorter lifetime given to touch is stored, read or not`, async (t) => {
    const manager = await startManager(t, cluster, { copies: 2, table: 'touch_shorter' })
    const store = makeStore(manager)
    for (const [what, toucher] of [
      ['read by the store', store],
      ['not read by the store', makeStore(manager)],
    ] as const) {
      const id = store.generateId()
      await store.set(id, session(MINUTE, Date.now() + MINUTE))
      await store.get(id)
      const shorter = Date.now() + 2000
      await toucher.touch(id, session(2000, shorter))
      t.same(await storedCookie(store, id), { lifetime: 2000, expires: shorter }, what)
      t.equal((await versionAndExpiry(manager, id))?.expiresAt, shorter, `${what}: expires then`)
    }
  })

  t.test(`${throttle}: a stale touch neither shortens nor rewrites the session`, async (t) => {
    const manager = await startManager(t, cluster, { copies: 2, table: 'touch_stale' })
    const store = makeStore(manager)
    for (const [what, toucher] of [
      ['read by the store', store],
      ['not read by the store', makeStore(manager)],
    ] as const) {
      const id = store.generateId()
      const start = Date.now() + MINUTE
      await store.set(id, session(MINUTE, start))
      await store.get(id)
      // A later request extends the session by two minutes (past any throttle).
      await store.touch(id, session(MINUTE, start + 2 * MINUTE))
      const extended = await versionAndExpiry(manager, id)
      t.equal(extended?.expiresAt, start + 2 * MINUTE, `${what}: extended`)
      // The earlier request ends: same lifetime (express-session may take a millisecond or
      // two off it when it recomputes it), an earlier expiry.
      for (const lifetime of [MINUTE, MINUTE - 1, MINUTE - 3]) {
        await toucher.touch(id, session(lifetime, start + 10_000))
        t.same(await versionAndExpiry(manager, id), extended, `${what}, ${lifetime}: unchanged`)
      }
      // Even when that earlier cookie has expired by now: the browser holds the later one.
      await toucher.touch(id, session(MINUTE, Date.now() - 1000))
      t.same(await versionAndExpiry(manager, id), extended, `${what}, expired: not destroyed`)
      t.same(
        await storedCookie(store, id),
        { lifetime: MINUTE, expires: start + 2 * MINUTE },
        `${what}: the stored cookie is the later one`,
      )
    }
  })
}

/**
 * An Express app (resave off, maxAge a minute) over a store on `table`, counting the store's
 * set and touch calls. Routes: `/login` stores a user; `/expire?how=` makes the cookie expire
 * (`date`: `cookie.expires = new Date(0)`, `zero`: `maxAge = 0`, `negative`: `maxAge = -1000`);
 * `/browser` sets `maxAge = null`; `/remember` sets `maxAge` to {@link REMEMBERED} (a minute with
 * `?forget`); `/stream` sends its headers, then waits for `streamGate`
 * before it ends; anything else answers the user. Only `/login` changes the session's data.
 */
async function expressApp(
  t: Test,
  table: string,
  options: { rolling?: boolean; streamGate?: () => Promise<void> } = {},
) {
  const manager = await startManager(t, cluster, { copies: 2, table, ttlSeconds: 600 })
  const store = new SessionShardsStore({ manager })
  t.teardown(() => store.close())
  const calls: string[] = []
  for (const method of ['set', 'touch'] as const) {
    const real = store[method].bind(store) as (...args: unknown[]) => Promise<void>
    Object.defineProperty(store, method, {
      value: (...args: unknown[]) => {
        calls.push(method)
        return real(...args)
      },
    })
  }
  const app = await startConformanceApp(t, {
    session: {
      store,
      resave: false,
      saveUninitialized: false,
      rolling: options.rolling ?? false,
      cookie: { maxAge: MINUTE },
    },
    handler: async (req, res) => {
      const url = new URL(req.url, 'http://localhost')
      const data = req.session as unknown as Record<string, unknown>
      if (url.pathname === '/login') data.user = 'ada'
      if (url.pathname === '/expire') {
        const how = url.searchParams.get('how')
        if (how === 'date') req.session.cookie.expires = new Date(0)
        else req.session.cookie.maxAge = how === 'zero' ? 0 : -1000
      }
      if (url.pathname === '/browser') req.session.cookie.maxAge = null as unknown as number
      if (url.pathname === '/remember') {
        req.session.cookie.maxAge = url.searchParams.has('forget') ? MINUTE : REMEMBERED
      }
      if (url.pathname === '/stream') {
        res.write('streaming ')
        await options.streamGate?.()
      }
      res.end(JSON.stringify({ user: data.user ?? null }))
    },
  })
  return { manager, store, calls, url: app.url }
}

async function logIn(url: string): Promise<{ id: string; cookie: string }> {
  const answer = await send(`${url}/login`)
  const id = sessionIdOf(answer)
  if (id === undefined || answer.cookie === undefined) throw new Error('no session cookie')
  return { id, cookie: answer.cookie }
}

for (const how of ['date', 'zero', 'negative']) {
  t.test(`express app: an expired cookie (${how}) without a data change logs out`, async (t) => {
    const { manager, calls, url } = await expressApp(t, `touch_app_expire_${how}`)
    const { id, cookie } = await logIn(url)
    calls.length = 0
    const answer = await send(`${url}/expire?how=${how}`, { cookie })
    t.equal(answer.status, 200)
    t.same(calls, ['touch'], 'express-session touched, did not save')
    t.equal(await manager.readSession(id), null, 'the session is gone')
    t.same(await storesWithLiveCopy(cluster, id, `touch_app_expire_${how}`), [])
    t.same(JSON.parse((await send(url, { cookie })).text), { user: null }, 'a replayed cookie: out')
  })
}

t.test('express app: maxAge null without a data change is stored', async (t) => {
  const { store, calls, url } = await expressApp(t, 'touch_app_browser')
  const { id, cookie } = await logIn(url)
  calls.length = 0
  await send(`${url}/browser`, { cookie })
  t.same(calls, ['touch'], 'express-session touched, did not save')
  t.same(await storedCookie(store, id), { lifetime: null, expires: null }, 'a browser session')
  const next = await send(url, { cookie })
  t.same(JSON.parse(next.text), { user: 'ada' }, 'still logged in')
  t.equal(next.setCookie, undefined, 'and no persistent cookie is sent again')
})

t.test('express app: a long streamed response does not cut the session short', async (t) => {
  const streamGate = gate()
  const { manager, calls, url } = await expressApp(t, 'touch_app_stream', {
    rolling: true,
    streamGate: streamGate.wait,
  })
  const { id, cookie } = await logIn(url)
  // R1: its headers (and its cookie's expiry) go out now; it ends later.
  const r1 = await fetch(`${url}/stream`, { headers: { cookie } })
  await streamGate.entered
  const r1Cookie = parseSetCookie(r1.headers.getSetCookie()[0] ?? '')
  const r1Expires = Date.parse(String(r1Cookie.attributes.get('expires')))
  await sleep(1100)
  // R2: a later request; the browser now holds a cookie that expires later.
  const r2 = await send(url, { cookie })
  t.ok(cookieExpires(r2)! > r1Expires, "R2's cookie expires later than R1's")
  const afterR2 = await versionAndExpiry(manager, id)
  t.ok(afterR2!.expiresAt >= cookieExpires(r2)!, "the stored expiry is R2's")
  calls.length = 0
  streamGate.release()
  t.equal(await r1.text(), 'streaming {"user":"ada"}')
  t.same(calls, ['touch'], 'R1 ended with a touch')
  t.same(await versionAndExpiry(manager, id), afterR2, 'not shortened, not rewritten')
})

/** Whether the stored cookie of `id` has the lifetime of a "remember me" request. */
async function remembered(store: SessionShardsStore, id: string): Promise<boolean> {
  const lifetime = (await storedCookie(store, id))?.lifetime
  return typeof lifetime === 'number' && Math.abs(lifetime - REMEMBERED) < 100
}

t.test(
  'express app: a slow request that changed nothing keeps a lifetime changed meanwhile',
  async (t) => {
    const streamGate = gate()
    const { manager, store, calls, url } = await expressApp(t, 'touch_app_remember', {
      rolling: true,
      streamGate: streamGate.wait,
    })
    const { id, cookie } = await logIn(url)
    // R1 loads the session (a minute's cookie) and streams; R2 asks to be remembered meanwhile.
    const r1 = await fetch(`${url}/stream`, { headers: { cookie } })
    await streamGate.entered
    calls.length = 0
    await send(`${url}/remember`, { cookie })
    t.same(calls, ['touch'], 'express-session touched, did not save')
    t.ok(await remembered(store, id), 'the new lifetime is stored')
    const afterR2 = await versionAndExpiry(manager, id)
    t.ok(afterR2!.expiresAt > Date.now() + 9 * MINUTE, 'and the expiry with it')
    // R1 ends with the lifetime it loaded: it changed nothing, so it undoes nothing.
    streamGate.release()
    t.equal(await r1.text(), 'streaming {"user":"ada"}')
    t.ok(await remembered(store, id), 'the lifetime stays')
    const afterR1 = await versionAndExpiry(manager, id)
    t.equal(afterR1?.version, afterR2?.version, 'not rewritten')
    t.ok(afterR1!.expiresAt >= afterR2!.expiresAt, 'not shortened')
  },
)

for (const [how, route, lifetime] of [
  ['a shorter maxAge', '/', MINUTE],
  ['a browser-session cookie', '/browser', 600_000],
] as const) {
  t.test(
    `express app: a slow request does not outlive a "forget me" (${how}) made meanwhile`,
    async (t) => {
      const streamGate = gate()
      const { manager, url } = await expressApp(t, 'touch_app_forget', {
        rolling: true,
        streamGate: streamGate.wait,
      })
      const { id, cookie } = await logIn(url)
      await send(`${url}/remember`, { cookie })
      // R1 loads the remembered session and streams; R2 asks to be forgotten meanwhile.
      const r1 = await fetch(`${url}/stream`, { headers: { cookie } })
      await streamGate.entered
      await send(`${url}${route === '/' ? '/remember?forget' : route}`, { cookie })
      const forgotten = await versionAndExpiry(manager, id)
      t.ok(forgotten!.expiresAt <= Date.now() + lifetime, 'the shorter lifetime is stored')
      // R1 ends with the remembered lifetime it loaded: the session lives the stored one.
      streamGate.release()
      await r1.text()
      const after = await versionAndExpiry(manager, id)
      t.equal(after?.version, forgotten?.version, 'not rewritten')
      t.ok(after!.expiresAt <= Date.now() + lifetime, 'not kept for the lifetime R1 loaded')
      t.ok(after!.expiresAt >= forgotten!.expiresAt, 'not shortened either')
    },
  )
}

/**
 * Makes another request's write land before each of the first `times` compare-and-set writes
 * through `manager` (a touch's write of a new cookie): it writes the stored data with `note`.
 * Resolves nothing; `races()` tells how many landed.
 */
function raceCookieWrites(manager: SessionManager, id: string, times: number) {
  const write = manager.writeSession.bind(manager)
  let raced = 0
  Object.defineProperty(manager, 'writeSession', {
    value: async (...args: Parameters<SessionManager['writeSession']>) => {
      if (raced < times && args[2]?.expectedVersion !== undefined) {
        raced += 1
        const current = await manager.readSession(id, { withVersion: true })
        const data = { ...current!.data, note: `written meanwhile ${raced}` }
        await write(id, data, { expiresAt: current!.expiresAt })
      }
      return write(...args)
    },
  })
  return { races: () => raced }
}

t.test(
  'express app: a new lifetime is stored even when a write lands during its touch',
  async (t) => {
    const { manager, store, url } = await expressApp(t, 'touch_app_remember_race')
    const { id, cookie } = await logIn(url)
    const { races } = raceCookieWrites(manager, id, 2)
    await send(`${url}/remember`, { cookie })
    t.equal(races(), 2, 'two writes landed during the touch')
    t.ok(await remembered(store, id), 'the new lifetime is stored')
    const stored = { user: 'ada', note: 'written meanwhile 2' }
    t.match(await manager.readSession(id), stored, 'over the last write')
  },
)

t.test('a touch that keeps meeting writes fails rather than drop its new lifetime', async (t) => {
  const manager = await startManager(t, cluster, { copies: 2, table: 'touch_remember_busy' })
  const store = new SessionShardsStore({ manager })
  const id = store.generateId()
  await store.set(id, session(MINUTE, Date.now() + MINUTE))
  const loaded = store.createSession({ sessionID: id } as never, (await store.get(id))!)
  loaded.cookie.maxAge = REMEMBERED
  const { races } = raceCookieWrites(manager, id, Infinity)
  await t.rejects(store.touch(id, loaded), { code: 'VERSION_CONFLICT' })
  t.equal(races(), 3, 'it tried three times')
  t.equal((await storedCookie(store, id))?.lifetime, MINUTE, 'the lifetime is as it was')
  t.match(await manager.readSession(id), { note: 'written meanwhile 3' }, 'the writes stand')
})

t.test('express app: a plain rolling touch reads nothing besides the load', async (t) => {
  const { manager, calls, url } = await expressApp(t, 'touch_app_reads', { rolling: true })
  const { cookie } = await logIn(url)
  const read = manager.readSession.bind(manager) as (...args: unknown[]) => unknown
  let reads = 0
  Object.defineProperty(manager, 'readSession', {
    value: (...args: unknown[]) => {
      reads++
      return read(...args)
    },
  })
  for (let i = 0; i < 3; i++) {
    reads = 0
    calls.length = 0
    t.same(JSON.parse((await send(url, { cookie })).text), { user: 'ada' })
    t.same(calls, ['touch'], `request ${i}: a touch`)
    t.equal(reads, 1, `request ${i}: one read, the load`)
  }
})
