import express from 'express'
import t from 'tap'
import type { Test } from 'tap'
import { SessionShardsStore } from '../lib/adapters/express.js'
import type { SessionManager } from '../lib/index.js'
import { startTestCluster } from './helpers/cluster.js'
import { appWithSessions, listenForTest } from './helpers/express-app.js'
import { CookieClient } from './helpers/http-client.js'
import { startManager } from './helpers/manager.js'
import { gate, sleep } from './helpers/wait.js'

// A touch whose cookie lifetime the request changed since it loaded the session asks the
// stores before it rewrites the cookie: when another request has stored that lifetime since
// (an app that sets cookie.maxAge on each request), a long streamed response ends with a touch
// carrying the earlier expiry its headers fixed, which must neither shorten the session below
// the cookie the browser holds nor destroy it (see test/touch-throttle-apps.ts for the
// other side: a lifetime another app server changed since is rewritten).

const cluster = await startTestCluster(t, { stores: 3 })
const LONG = 3_600_000

async function app(t: Test, manager: SessionManager, short: number, hold: () => Promise<void>) {
  const store = new SessionShardsStore({ manager })
  t.teardown(() => store.close())
  const app = appWithSessions(store, { cookie: { maxAge: LONG } })
  const s = (req: express.Request) => req.session as unknown as { user?: string }
  // The app shortens the cookie of users who did not tick "remember me", on every request.
  app.use((req, _res, next) => {
    if (s(req).user !== undefined) req.session.cookie.maxAge = short
    next()
  })
  app.post('/login', (req, res) => {
    s(req).user = 'ada'
    res.json({ user: 'ada' })
  })
  app.get('/me', (req, res) => res.json({ user: s(req).user ?? null }))
  app.get('/stream', async (_req, res) => {
    res.write('[') // headers go out: express-session fixes the cookie now
    await hold()
    res.end(']')
  })
  return listenForTest(t, app)
}

for (const [what, short, idle] of [
  ['is not shortened', 60_000, 1_500],
  ['is not destroyed', 3_000, 3_500],
] as const) {
  for (const servers of ['one app server', 'two app servers'] as const) {
    t.test(
      `a session extended while a streamed response runs ${what} when it ends (${servers})`,
      async (t) => {
        const table = `r4_stream_${short}_${servers.split(' ')[0]}`
        const manager = await startManager(t, cluster, { copies: 2, table })
        const streaming = gate()
        const url = await app(t, manager, short, streaming.wait)
        // With two, the other tabs go to another app server, which stores the short lifetime:
        // the first one's memory still holds the long lifetime it loaded when the stream ends.
        const other =
          servers === 'one app server'
            ? url
            : await app(
                t,
                await startManager(t, cluster, { copies: 2, table }),
                short,
                async () => {},
              )
        const browser = new CookieClient()
        await browser.post(`${url}/login`) // stored with the long lifetime
        const id = decodeURIComponent(browser.cookie('sid')!).slice(2).split('.')[0]!
        const key = manager.sessionKey(id)
        // A download starts (loads the long lifetime, sets the short one, headers out).
        const download = browser.copy().get(`${url}/stream`)
        await streaming.entered
        // Other tabs go on using the site: the short lifetime is stored, the session extended.
        t.match((await browser.get(`${other}/me`)).body, { user: 'ada' })
        await sleep(Math.min(idle, short) - 1_000)
        const before = Date.now()
        t.match((await browser.get(`${other}/me`)).body, { user: 'ada' })
        const extended = (await manager.readSession(key, { withVersion: true }))!.expiresAt
        t.ok(extended >= before + short - 200, 'the last request extended the session')
        await sleep(idle - (Math.min(idle, short) - 1_000))
        streaming.release()
        await download
        const after = await manager.readSession(key, { withVersion: true })
        t.not(after, null, 'the session still lives (the browser holds a cookie until later)')
        t.ok(
          after !== null && after.expiresAt >= extended,
          `stored expiry ${after?.expiresAt} not moved before ${extended}`,
        )
        t.match((await browser.get(`${other}/me`)).body, { user: 'ada' }, 'still logged in')
      },
    )
  }
}
