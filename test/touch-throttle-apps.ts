import express from 'express'
import t from 'tap'
import type { Test } from 'tap'
import { SessionShardsStore as ExpressStore } from '../lib/adapters/express.js'
import { SessionShardsStore as FastifyStore } from '../lib/adapters/fastify.js'
import type { SessionManager } from '../lib/index.js'
import { startTestCluster } from './helpers/cluster.js'
import { appWithSessions, listenForTest } from './helpers/express-app.js'
import { fastifyWithSessions } from './helpers/fastify-app.js'
import { CookieClient } from './helpers/http-client.js'
import { startManager } from './helpers/manager.js'
import { gate } from './helpers/wait.js'

// touchAfterSeconds skips a save that changes nothing, in real apps: "nothing" is relative to
// what the request loaded, not to what this app server last wrote. Two tabs of one browser
// make the same change on app server A; the first one's save is written; app server B undoes
// it; the second tab's save (begun after B's write was acknowledged) is the last, and must be
// stored: a skip judged against A's own last write left B's. Once for the data (a privilege
// drop after another app server's grant), once for the cookie ("remember me": a longer maxAge;
// Express touches, with or without the throttle; not for @fastify/session with a throttle,
// whose isModified() leaves the cookie out: README).
const cluster = await startTestCluster(t, { stores: 3 })

const SHORT = 3_600_000 // one hour
const LONG = 30 * 24 * 3_600_000 // thirty days

type Hold = (name: string) => Promise<void>

async function fastifyApp(t: Test, manager: SessionManager, throttle: number, hold: Hold) {
  const store = new FastifyStore({ manager, touchAfterSeconds: throttle })
  const app = await fastifyWithSessions(store, SHORT)
  type Request = {
    session: {
      get(key: string): unknown
      set(key: string, value: unknown): void
      options(options: { maxAge: number }): void
    }
  }
  const me = (request: Request) => ({
    user: request.session.get('user') ?? null,
    role: request.session.get('role') ?? null,
    lifetime: (request.session as unknown as { cookie: { originalMaxAge: number | null } }).cookie
      .originalMaxAge,
  })
  const route = (path: string, change: (request: Request) => void) =>
    app.post<{ Querystring: { hold?: string } }>(path, async (request) => {
      if (request.query.hold !== undefined) await hold(request.query.hold)
      change(request)
      return me(request)
    })
  route('/login', (request) => {
    request.session.set('user', 'ada')
    request.session.set('role', 'admin')
  })
  route('/elevate', (request) => request.session.set('role', 'admin'))
  route('/drop-role', (request) => delete (request.session as unknown as { role?: string }).role)
  route('/remember', (request) => request.session.options({ maxAge: LONG }))
  route('/forget', (request) => request.session.options({ maxAge: SHORT }))
  app.get('/me', async (request) => me(request))
  const url = await app.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(() => app.close())
  return url
}

async function expressApp(t: Test, manager: SessionManager, throttle: number, hold: Hold) {
  const store = new ExpressStore({ manager, touchAfterSeconds: throttle })
  t.teardown(() => store.close())
  const app = appWithSessions(store, { cookie: { maxAge: SHORT } })
  type Sess = { user?: string; role?: string }
  const me = (req: express.Request) => {
    const s = req.session as unknown as Sess
    return {
      user: s.user ?? null,
      role: s.role ?? null,
      lifetime: req.session.cookie.originalMaxAge,
    }
  }
  const route = (path: string, change: (req: express.Request) => void) =>
    app.post(path, async (req, res) => {
      if (typeof req.query.hold === 'string') await hold(req.query.hold)
      change(req)
      res.json(me(req))
    })
  route('/login', (req) => Object.assign(req.session, { user: 'ada', role: 'admin' }))
  route('/elevate', (req) => void ((req.session as unknown as Sess).role = 'admin'))
  route('/drop-role', (req) => delete (req.session as unknown as Sess).role)
  route('/remember', (req) => void (req.session.cookie.maxAge = LONG))
  route('/forget', (req) => void (req.session.cookie.maxAge = SHORT))
  app.get('/me', (req, res) => res.json(me(req)))
  return listenForTest(t, app)
}

const RACES = [
  {
    what: 'a privilege drop saved after another app server granted it again',
    onA: '/drop-role',
    onB: '/elevate',
    stored: { role: null },
  },
  {
    what: 'a cookie lifetime set after another app server set it back',
    onA: '/remember',
    onB: '/forget',
    stored: { lifetime: LONG },
  },
] as const

for (const [framework, startApp] of [
  ['fastify', fastifyApp],
  ['express', expressApp],
] as const) {
  for (const throttle of [0, 60]) {
    for (const race of RACES) {
      if (framework === 'fastify' && throttle > 0 && race.onA === '/remember') continue
      t.test(`${framework}, touchAfterSeconds ${throttle}: ${race.what} is stored`, async (t) => {
        const table = `race_${framework}_${throttle}_${race.onA.slice(1).replace('-', '_')}`
        const options = { copies: 2, table }
        const gates = new Map([
          ['one', gate()],
          ['two', gate()],
        ])
        const hold: Hold = (name) => gates.get(name)!.wait()
        const a = await startApp(t, await startManager(t, cluster, options), throttle, hold)
        const b = await startApp(t, await startManager(t, cluster, options), throttle, hold)
        const browser = new CookieClient()
        t.match((await browser.post(`${a}/login`)).body, { user: 'ada', role: 'admin' })
        // Two tabs of one browser make the change on A; both loaded the session before it.
        const first = browser.copy().post(`${a}${race.onA}?hold=one`)
        await gates.get('one')!.entered
        const second = browser.copy().post(`${a}${race.onA}?hold=two`)
        await gates.get('two')!.entered
        gates.get('one')!.release()
        t.match((await first).body, race.stored, 'the first change is saved')
        // Another tab, on B, undoes it (acknowledged).
        t.notMatch((await browser.post(`${b}${race.onB}`)).body, race.stored, 'undone on B')
        // The second tab's save begins after that was acknowledged: it is the last save.
        gates.get('two')!.release()
        const last = await second
        t.equal(last.status, 200)
        t.match(last.body, race.stored, 'A acknowledged the change')
        t.match((await browser.get(`${b}/me`)).body, race.stored, 'B reads it')
        t.match((await browser.get(`${a}/me`)).body, race.stored, 'so does A')
      })
    }
  }
}
