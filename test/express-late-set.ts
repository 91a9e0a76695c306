// https://github.com/expressjs/session/issues/632
// https://github.com/tj/connect-redis/issues/328
// A request that loaded the session before the user logged out ends after the logout;
// express-session then saves (or touches) the session it holds. The session must stay
// destroyed, and the slow request must still be answered normally.
import t from 'tap'
import { startTestCluster } from './helpers/cluster.js'
import { startExpressApp } from './helpers/express-app.js'
import { CookieClient } from './helpers/http-client.js'
import { rowsOnStores, startManager, storesWithLiveCopy } from './helpers/manager.js'
import { gate } from './helpers/wait.js'

const cluster = await startTestCluster(t, { stores: 3 })

for (const route of ['/slow', '/slow-read']) {
  const what = route === '/slow' ? 'set (session changed)' : 'touch (session unchanged)'
  t.test(`a request ending after logout: ${what} does not bring the session back`, async (t) => {
    const manager = await startManager(t, cluster, { copies: 2 })
    const slowGate = gate()
    const app = await startExpressApp(t, manager, { slow: slowGate.wait })
    const events: unknown[] = []
    app.store.on('write-after-destroy', (event) => events.push(event))
    const client = new CookieClient()
    const { sessionId } = (await client.post(`${app.url}/login`, { user: 'ada' })).body
    const tab = client.copy()

    const slow = tab.get(`${app.url}${route}`)
    await slowGate.entered // the slow request has loaded the session
    t.same((await client.post(`${app.url}/logout`)).body, { loggedOut: true })
    t.same(await storesWithLiveCopy(cluster, sessionId), [], 'logged out everywhere')

    slowGate.release()
    const answer = await slow
    t.equal(answer.status, 200, 'the slow request still completes')
    t.match(answer.body, { sessionId, user: 'ada' }, 'with the session it started with')

    t.same(await storesWithLiveCopy(cluster, sessionId), [], 'no live copy on any store')
    const rows = [...(await rowsOnStores(cluster, sessionId)).values()]
    // A destroy leaves a tombstone on every store a read may ask (maxReadStores: all 3 here).
    t.equal(rows.filter((row) => row?.deleted === 1).length, 3, 'the tombstones are in place')
    t.match((await tab.get(`${app.url}/me`)).body, { user: null }, 'the old cookie: logged out')
    if (route === '/slow') t.same(events, [{ sessionId }], 'the store reported the dropped save')
    else t.same(events, [], 'a touch of a destroyed session writes nothing, reports nothing')
  })
}
