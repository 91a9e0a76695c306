// A counter page with log in and log out; sessions live in session-shards. Run:
// SESSION_SHARDS_STORES='a=mysql://user:pass@db1/sessions,b=...' node --import tsx examples/fastify/server.ts
import fastifyCookie from '@fastify/cookie'
import fastifySession from '@fastify/session'
import Fastify from 'fastify'
import { SessionShardsStore } from '../../lib/adapters/fastify.js' // in an app: 'session-shards/fastify'

declare module 'fastify' {
  interface Session {
    views?: number
    user?: string
  }
}

const stores = (process.env.SESSION_SHARDS_STORES ?? '').split(',').filter(Boolean)
if (stores.length === 0)
  throw new Error('Set SESSION_SHARDS_STORES to id=mysql://...,id=mysql://...')
const store = new SessionShardsStore({
  managerOptions: {
    stores: stores.map((entry) => ({
      id: entry.split('=')[0]!,
      uri: entry.slice(entry.indexOf('=') + 1),
    })),
  },
})
await store.manager.applySchema() // creates the sessions table where it is missing

const app = Fastify({ logger: true })
app.addContentTypeParser(
  'application/x-www-form-urlencoded',
  { parseAs: 'string' },
  (_req, body, done) => done(null, Object.fromEntries(new URLSearchParams(String(body)))),
)
await app.register(fastifyCookie)
await app.register(fastifySession, {
  store,
  idGenerator: () => store.generateId(),
  secret: process.env.COOKIE_SECRET ?? 'not-a-secret: set COOKIE_SECRET (32+ characters)',
  cookie: { maxAge: 30 * 60_000, secure: 'auto', sameSite: 'lax' },
})
app.addHook('onClose', () => store.close())
const escape = (text: string) => text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`)

app.get('/', async (request, reply) => {
  request.session.views = (request.session.views ?? 0) + 1
  const who = request.session.user === undefined ? 'nobody' : escape(request.session.user)
  return reply.type('text/html').send(`<p>Logged in: ${who}. Views: ${request.session.views}.</p>
    <form method="post" action="/login"><input name="user"><button>Log in</button></form>
    <form method="post" action="/logout"><button>Log out</button></form>`)
})
app.post<{ Body: { user?: string } }>('/login', async (request, reply) => {
  await request.session.regenerate() // a new id at login: a planted id is worth nothing
  request.session.user = String(request.body.user ?? 'anonymous')
  return reply.redirect('/')
})
app.post('/logout', async (request, reply) => {
  await request.session.destroy()
  return reply.redirect('/')
})

await app.listen({ port: Number(process.env.PORT ?? 3000) })
process.once('SIGINT', () => void app.close())
