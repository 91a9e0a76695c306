import type { AddressInfo } from 'node:net'
import express from 'express'
import session from 'express-session'
import type { Test } from 'tap'
import { SessionShardsStore } from '../../lib/adapters/express.js'
import type { SessionManager } from '../../lib/index.js'

declare module 'express-session' {
  interface SessionData {
    user?: string
    note?: string
    slowVisits?: number
  }
}

/** Secret express-session signs its cookie with in these tests. */
const COOKIE_SECRET = 'express-cookie-secret-for-tests-only'

export interface ExpressApp {
  /** `http://127.0.0.1:PORT` */
  url: string
  store: SessionShardsStore
}

export interface ExpressAppOptions {
  /** Awaited by `GET /slow` (and `GET /slow-read`) before it answers. */
  slow?: () => Promise<void>
  /** express-session's `genid`; the store's `generateId` when left out. */
  genid?: () => string
}

/**
 * An Express 5 app with express-session over a {@link SessionShardsStore} on `manager`
 * (`resave: false, saveUninitialized: false, rolling: true`), listening on 127.0.0.1 on a free
 * port, closed at teardown. Routes answer JSON with the session id and user:
 * `POST /login {user}`, `GET /me`, `POST /note {note}`, `POST /regenerate`, `POST /logout`,
 * `GET /slow` (changes the session, then waits for `options.slow`), `GET /slow-read` (waits
 * without changing the session).
 */
export async function startExpressApp(
  t: Test,
  manager: SessionManager,
  options: ExpressAppOptions = {},
): Promise<ExpressApp> {
  const store = new SessionShardsStore({ manager })
  t.teardown(() => store.close())
  const app = appWithSessions(store, { genid: options.genid ?? (() => store.generateId()) })
  app.use(express.json())
  const me = (req: express.Request) => ({
    sessionId: req.session === undefined ? null : req.sessionID,
    user: req.session?.user ?? null,
    note: req.session?.note ?? null,
  })
  app.post('/login', (req, res) => {
    req.session.user = String(req.body.user)
    res.json(me(req))
  })
  app.get('/me', (req, res) => {
    res.json(me(req))
  })
  app.post('/note', (req, res) => {
    req.session.note = String(req.body.note)
    res.json(me(req))
  })
  app.post('/regenerate', (req, res, next) => {
    const { user } = req.session
    req.session.regenerate((error) => {
      if (error) return next(error)
      if (user !== undefined) req.session.user = user
      res.json(me(req))
    })
  })
  app.post('/logout', (req, res, next) => {
    req.session.destroy((error) => (error ? next(error) : res.json({ loggedOut: true })))
  })
  app.get('/slow', async (req, res) => {
    req.session.slowVisits = (req.session.slowVisits ?? 0) + 1
    await options.slow?.()
    res.json(me(req))
  })
  app.get('/slow-read', async (req, res) => {
    await options.slow?.()
    res.json(me(req))
  })
  return { url: await listenForTest(t, app), store }
}

/**
 * An Express 5 app with express-session over `store`: `resave: false, saveUninitialized: false,
 * rolling: true`, a 60 s cookie, the store's ids; `options` override any of those.
 */
export function appWithSessions(
  store: SessionShardsStore,
  options: Partial<session.SessionOptions> = {},
): express.Express {
  const app = express()
  app.use(
    session({
      store,
      genid: () => store.generateId(),
      secret: COOKIE_SECRET,
      name: 'sid',
      resave: false,
      saveUninitialized: false,
      rolling: true,
      cookie: { maxAge: 60_000 },
      ...options,
    }),
  )
  return app
}

/** Serves `app` on a free port of 127.0.0.1 until the test ends; resolves its base URL. */
export async function listenForTest(t: Test, app: express.Express): Promise<string> {
  const server = app.listen(0, '127.0.0.1')
  await new Promise<void>((resolve, reject) => {
    server.once('listening', resolve)
    server.once('error', reject)
  })
  t.teardown(
    () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      }),
  )
  const { port } = server.address() as AddressInfo
  return `http://127.0.0.1:${port}`
}
