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

// touchAfterSeconds skips a save that changes nothing, in real apps: "nothing" is relative to
// what the request loaded, not to what this app server last wrote. Two requests of one browser
// on app server A both drop a privilege; the first one's save is written; app server B grants
// it again; the second request's save (begun after B's write was acknowledged) must be
// written: a skip, judged against A's own last write, left the privilege granted.
const cluster = await startTestCluster(t, { stores: 3 })

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
    cookie: { secure: false, maxAge: 3_600_000 },
  })
  app.addHook('onClose', () => store.close())
  const me = (request: { session: { get(key: string): unknown } }) => ({
    user: request.session.get('user') ?? null,
    role: request.session.get('role') ?? null,
  })
  app.post('/login', async (request) => {
    request.session.set('user', 'ada')
    request.session.set('role', 'admin')
    return me(request)
  })
  app.post('/elevate', async (request) => {
    request.session.set('role', 'admin')
    return me(request)
  })
  app.post<{ Querystring: { hold?: string } }>('/drop-role', async (request) => {
    if (request.query.hold !== undefined) await hold(request.query.hold)
    delete (request.session as unknown as { role?: string }).role
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
      cookie: { maxAge: 3_600_000 },
    }),
  )
  type Sess = { user?: string; role?: string }
  const me = (req: express.Request) => {
    const s = req.session as unknown as Sess
    return { user: s.user ?? null, role: s.role ?? null }
  }
  app.post('/login', (req, res) => {
    Object.assign(req.session, { user: 'ada', role: 'admin' })
    res.json(me(req))
  })
  app.post('/elevate', (req, res) => {
    ;(req.session as unknown as Sess).role = 'admin'
    res.json(me(req))
  })
  app.post('/drop-role', async (req, res) => {
    if (typeof req.query.hold === 'string') await hold(req.query.hold)
    delete (req.session as unknown as Sess).role
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
    t.test(
      `${framework}, touchAfterSeconds ${throttle}: a privilege drop saved after another app server's grant is stored`,
      async (t) => {
        const options = { copies: 2, table: `adapt_drop_${framework}_${throttle}` }
        const gates = new Map([
          ['one', gate()],
          ['two', gate()],
        ])
        const hold: Hold = (name) => gates.get(name)!.wait()
        const a = await startApp(t, await startManager(t, cluster, options), throttle, hold)
        const b = await startApp(t, await startManager(t, cluster, options), throttle, hold)
        const browser = new CookieClient()
        t.match((await browser.post(`${a}/login`)).body, { user: 'ada', role: 'admin' })
        // Two tabs of one browser drop the role on A; both loaded the session with the role.
        const first = browser.copy().post(`${a}/drop-role?hold=one`)
        await gates.get('one')!.entered
        const second = browser.copy().post(`${a}/drop-role?hold=two`)
        await gates.get('two')!.entered
        gates.get('one')!.release()
        t.match((await first).body, { role: null }, 'the first drop is saved')
        // Another tab, on B, grants the role again (acknowledged).
        t.match((await browser.post(`${b}/elevate`)).body, { role: 'admin' }, 'granted on B')
        // The second tab's save begins after that grant was acknowledged: it is the last save.
        gates.get('two')!.release()
        const dropped = await second
        t.equal(dropped.status, 200)
        t.match(dropped.body, { role: null }, 'A acknowledged the drop')
        t.match((await browser.get(`${b}/me`)).body, { role: null }, 'B reads the role dropped')
        t.match((await browser.get(`${a}/me`)).body, { role: null }, 'so does A')
      },
    )
  }
}
