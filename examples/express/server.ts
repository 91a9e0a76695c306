// A counter page with log in and log out; sessions live in session-shards. Run:
// SESSION_SHARDS_STORES='a=mysql://user:pass@db1/sessions,b=...' node --import tsx examples/express/server.ts
import express from 'express'
import session from 'express-session'
import { SessionShardsStore } from '../../lib/adapters/express.js' // in an app: 'session-shards/express'

declare module 'express-session' {
  interface SessionData {
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

const app = express()
app.use(express.urlencoded({ extended: false }))
app.use(
  session({
    store,
    genid: () => store.generateId(),
    secret: process.env.COOKIE_SECRET ?? 'not-a-secret: set COOKIE_SECRET',
    resave: false,
    saveUninitialized: false,
    rolling: true,
    cookie: { maxAge: 30 * 60_000, sameSite: 'lax' },
  }),
)
const escape = (text: string) => text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`)

app.get('/', (req, res) => {
  req.session.views = (req.session.views ?? 0) + 1
  const who = req.session.user === undefined ? 'nobody' : escape(req.session.user)
  res.send(`<p>Logged in: ${who}. Views: ${req.session.views}.</p>
    <form method="post" action="/login"><input name="user"><button>Log in</button></form>
    <form method="post" action="/logout"><button>Log out</button></form>`)
})
app.post('/login', (req, res, next) => {
  // A new id at login: a session id planted before login is worth nothing after it.
  req.session.regenerate((error) => {
    if (error) return next(error)
    req.session.user = String(req.body.user ?? 'anonymous')
    res.redirect('/')
  })
})
app.post('/logout', (req, res, next) => {
  req.session.destroy((error) => (error ? next(error) : res.redirect('/')))
})

const server = app.listen(Number(process.env.PORT ?? 3000), () =>
  console.log(`http://localhost:${process.env.PORT ?? 3000}/`),
)
process.once('SIGINT', () => server.close(() => void store.close()))
