import fastifyCookie from '@fastify/cookie'
import fastifySession from '@fastify/session'
import Fastify from 'fastify'
import type { FastifyRequest } from 'fastify'
import type { Test } from 'tap'
import { SessionShardsStore } from '../../lib/adapters/fastify.js'
import type { SessionManager } from '../../lib/index.js'

declare module 'fastify' {
  interface Session {
    user?: string
    note?: string
    /** test/touch-throttle.ts: a privilege a request drops. */
    role?: string
  }
}

/** Secret @fastify/session signs its cookie with in these tests (at least 32 characters). */
const COOKIE_SECRET = 'fastify-cookie-secret-for-tests-only-0123456789'

export interface FastifyApp {
  /** `http://127.0.0.1:PORT` */
  url: string
  store: SessionShardsStore
}

export interface FastifyAppOptions {
  /** Awaited by `GET /slow` before it answers. */
  slow?: () => Promise<void>
}

/**
 * A Fastify 5 app with @fastify/cookie and @fastify/session over a {@link SessionShardsStore}
 * on `manager`, with the plugin's defaults (`saveUninitialized` and `rolling`: a save on every
 * request), listening on 127.0.0.1 on a free port, closed at teardown. Routes answer JSON:
 * `POST /login {user}`, `GET /me`, `POST /note {note}`, `POST /regenerate`, `POST /logout`,
 * `GET /slow` (waits for `options.slow`, then answers; the plugin saves the session it loaded).
 */
export async function startFastifyApp(
  t: Test,
  manager: SessionManager,
  options: FastifyAppOptions = {},
): Promise<FastifyApp> {
  const store = new SessionShardsStore({ manager })
  const app = await fastifyWithSessions(store, 60_000)
  const me = (request: FastifyRequest) => ({
    sessionId: request.session?.sessionId ?? null,
    user: request.session?.user ?? null,
    note: request.session?.note ?? null,
  })
  app.post<{ Body: { user: string } }>('/login', async (request) => {
    request.session.user = String(request.body.user)
    return me(request)
  })
  app.get('/me', async (request) => me(request))
  app.post<{ Body: { note: string } }>('/note', async (request) => {
    request.session.note = String(request.body.note)
    return me(request)
  })
  app.post('/regenerate', async (request) => {
    const { user } = request.session
    await request.session.regenerate()
    if (user !== undefined) request.session.user = user
    return me(request)
  })
  app.post('/logout', async (request) => {
    await request.session.destroy()
    return { loggedOut: true }
  })
  app.get('/slow', async (request) => {
    await options.slow?.()
    return me(request)
  })
  const address = await app.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(() => app.close())
  return { url: address, store }
}

/**
 * A Fastify 5 app with @fastify/cookie and @fastify/session over `store` (the store's ids, a
 * cookie of `maxAge`), which closes the store when it closes.
 */
export async function fastifyWithSessions(store: SessionShardsStore, maxAge: number) {
  const app = Fastify()
  await app.register(fastifyCookie)
  await app.register(fastifySession, {
    store,
    idGenerator: () => store.generateId(),
    secret: COOKIE_SECRET,
    cookieName: 'sid',
    cookie: { secure: false, maxAge },
  })
  app.addHook('onClose', () => store.close())
  return app
}
