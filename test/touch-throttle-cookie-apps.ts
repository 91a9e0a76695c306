import express from 'express'
import session from 'express-session'
import fastifyCookie from '@fastify/cookie'
import fastifySession from '@fastify/session'
import Fastify from 'fastify'
import t from 'tap'
import type { Test } from 'tap'
import { SessionShardsStore as ExpressStore } from '../lib/adapters/express.js'
import { SessionShardsStore as FastifyStore } from '../lib/adapters/fastify.js'
import type { SessionManager } from '../lib/index.js'
import { startTestCluster } from './helpers/cluster.js'
import { listenForTest } from './helpers/express-app.js'
import { CookieClient } from './helpers/http-client.js'
import { startManager } from './helpers/manager.js'
import { gate } from './helpers/wait.js'

// A request that changes only its session's cookie ("remember me": a longer maxAge) after
// another app server changed it: the last acknowledged lifetime is the one stored, judged
// against what the request loaded (Express: its touch, with or without the throttle). Not for
// @fastify/session with a throttle: its isModified() leaves the cookie out (README).
const cluster = await startTestCluster(t, { stores: 3 })

const SHORT = 3_600_000 // one hour
const LONG = 30 * 24 * 3_600_000 // thirty days

type Hold = (name: string) => Promise<void>

async function fastifyApp(t: Test, manager: SessionManager, throttle: number, hold: Hold) {
  const store = new FastifyStore({ manager, touchAfterSeconds: throttle })
  const app = Fastify()
  await app.register(fastifyCookie)
  await app.register(fastifySession, {
    store,
    idGenerator: () => store.generateId(),
    secret: 'fastify-cookie-secret-for-tests-only-0123456789',
    cookieName: 'sid',
    cookie: { secure: false, maxAge: SHORT },
  })
  app.addHook('onClose', () => store.close())
  const me = (request: { session: { get(key: string): unknown; cookie: unknown } }) => {
    const cookie = request.session.cookie as { originalMaxAge: number | null }
    return { user: request.session.get('user') ?? null, lifetime: cookie.originalMaxAge }
  }
  app.post('/login', async (request) => {
    request.session.set('user', 'ada')
    return me(request)
  })
  app.post<{ Querystring: { hold?: string } }>('/remember', async (request) => {
    if (request.query.hold !== undefined) await hold(request.query.hold)
    request.session.options({ maxAge: LONG })
    return me(request)
  })
  app.post('/forget', async (request) => {
    request.session.options({ maxAge: SHORT })
    return me(request)
  })
  app.get('/me', async (request) => me(request))
  const url = await app.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(() => app.close())
  return url
}

async function expressApp(t: Test, manager: SessionManager, throttle: number, hold: Hold) {
  const store = new ExpressStore({ manager, touchAfterSeconds: throttle })
  t.teardown(() => store.close())
  const app = express()
  app.use(
    session({
      store,
      genid: () => store.generateId(),
      secret: 'express-cookie-secret-for-tests-only',
      name: 'sid',
      resave: false,
      saveUninitialized: false,
      rolling: true,
      cookie: { maxAge: SHORT },
    }),
  )
  const me = (req: express.Request) => ({
    user: (req.session as unknown as { user?: string }).user ?? null,
    lifetime: req.session.cookie.originalMaxAge,
  })
  app.post('/login', (req, res) => {
    ;(req.session as unknown as { user?: string }).user = 'ada'
    res.json(me(req))
  })
  app.post('/remember', async (req, res) => {
    if (typeof req.query.hold === 'string') await hold(req.query.hold)
    req.session.cookie.maxAge = LONG
    res.json(me(req))
  })
  app.post('/forget', (req, res) => {
    req.session.cookie.maxAge = SHORT
    res.json(me(req))
  })
  app.get('/me', (req, res) => res.json(me(req)))
  return listenForTest(t, app)
}

for (const [framework, startApp] of [
  ['fastify', fastifyApp],
  ['express', expressApp],
] as const) {
  for (const throttle of [0, 60]) {
    if (framework === 'fastify' && throttle > 0) continue // not covered: see above
    t.test(
      `${framework}, touchAfterSeconds ${throttle}: a cookie lifetime set after another app server's change is stored`,
      async (t) => {
        const options = { copies: 2, table: `cookie_race_${framework}_${throttle}` }
        const gates = new Map([
          ['one', gate()],
          ['two', gate()],
        ])
        const hold: Hold = (name) => gates.get(name)!.wait()
        const a = await startApp(t, await startManager(t, cluster, options), throttle, hold)
        const b = await startApp(t, await startManager(t, cluster, options), throttle, hold)
        const browser = new CookieClient()
        t.match((await browser.post(`${a}/login`)).body, { user: 'ada', lifetime: SHORT })
        // Two tabs on A tick "remember me"; both loaded the session with the short lifetime.
        const first = browser.copy().post(`${a}/remember?hold=one`)
        await gates.get('one')!.entered
        const second = browser.copy().post(`${a}/remember?hold=two`)
        await gates.get('two')!.entered
        gates.get('one')!.release()
        t.match((await first).body, { lifetime: LONG }, 'the first remember is saved')
        // Another tab, on B, unticks it (acknowledged).
        t.match((await browser.post(`${b}/forget`)).body, { lifetime: SHORT }, 'forgotten on B')
        // The second tab's save begins after that was acknowledged: it is the last save.
        gates.get('two')!.release()
        const remembered = await second
        t.equal(remembered.status, 200)
        t.match(remembered.body, { lifetime: LONG }, 'A acknowledged the long lifetime')
        t.match((await browser.get(`${b}/me`)).body, { lifetime: LONG }, 'B reads it long')
      },
    )
  }
}
