/**
 * What a user of any framework adapter sees the same way: sessions shared between app servers,
 * a store killed under a logged-in user, a logout while a store is down. Each adapter's test
 * file runs these against its own test app (the same routes in every framework's).
 */
import type { Test } from 'tap'
import type { SessionManager } from '../../lib/index.js'
import type { TestCluster } from './cluster.js'
import { CookieClient } from './http-client.js'
import { startManager, storeState, storesWithLiveCopy } from './manager.js'
import { waitFor } from './wait.js'

/** Starts a framework's test app (`/login`, `/me`, `/note`, `/logout`) on a manager. */
export type StartApp = (t: Test, manager: SessionManager) => Promise<{ url: string }>

const fast = { copies: 2, healthCheckIntervalMillis: 100 }
const secrets = ['manager-id-signing-secret-for-tests-0123456789']

/** Registers the shared scenarios on `t`; the crash ones only where the cluster can crash. */
export function appScenarios(t: Test, cluster: TestCluster, startApp: StartApp): void {
  const crashTest = cluster.canCrash ? t.test.bind(t) : t.skip.bind(t)

  t.test('two app instances with their own managers share the sessions', async (t) => {
    const one = await startApp(t, await startManager(t, cluster, { ...fast, secrets }))
    const two = await startApp(t, await startManager(t, cluster, { ...fast, secrets }))
    const client = new CookieClient()
    const { sessionId } = (await client.post(`${one.url}/login`, { user: 'ada' })).body
    t.match((await client.get(`${two.url}/me`)).body, { sessionId, user: 'ada' }, 'seen on two')
    await client.post(`${two.url}/note`, { note: 'from two' })
    t.match((await client.get(`${one.url}/me`)).body, { user: 'ada', note: 'from two' })
    await client.post(`${one.url}/logout`)
    t.match((await client.get(`${two.url}/me`)).body, { user: null }, 'logout seen on two')
  })

  crashTest('a store killed between requests: the user stays logged in', async (t) => {
    const manager = await startManager(t, cluster, fast)
    const app = await startApp(t, manager)
    const client = new CookieClient()
    const { sessionId } = (await client.post(`${app.url}/login`, { user: 'ada' })).body
    const first = cluster.store(manager.locate(sessionId)[0]!)
    t.teardown(() => first.start())
    await first.kill()
    t.match((await client.get(`${app.url}/me`)).body, { sessionId, user: 'ada' }, 'still in')
    t.equal((await client.post(`${app.url}/note`, { note: 'during the outage' })).status, 200)
    t.match((await client.get(`${app.url}/me`)).body, { user: 'ada', note: 'during the outage' })
    await first.start()
    await waitFor('the store back in service', () => storeState(manager, first.id) === 'up')
    t.match((await client.get(`${app.url}/me`)).body, { user: 'ada', note: 'during the outage' })
  })

  crashTest('a store down during logout comes back: the old cookie stays logged out', async (t) => {
    const managers = [
      await startManager(t, cluster, { ...fast, secrets }),
      await startManager(t, cluster, { ...fast, secrets }),
    ]
    const apps = [await startApp(t, managers[0]!), await startApp(t, managers[1]!)]
    const client = new CookieClient()
    const { sessionId } = (await client.post(`${apps[0]!.url}/login`, { user: 'ada' })).body
    const holder = cluster.store(managers[0]!.locate(sessionId)[0]!)
    t.teardown(() => holder.start())
    const oldCookie = client.copy()

    await holder.kill()
    await waitFor('both managers to see the store down', () =>
      managers.every((manager) => storeState(manager, holder.id) === 'down'),
    )
    t.same((await client.post(`${apps[0]!.url}/logout`)).body, { loggedOut: true })
    await holder.start()
    // A copy per request: an answer's Set-Cookie must not replace the cookie under test.
    for (const app of apps) {
      t.match((await oldCookie.copy().get(`${app.url}/me`)).body, { user: null }, 'old cookie: out')
    }
    await waitFor('both managers to put the store back in service', () =>
      managers.every((manager) => storeState(manager, holder.id) === 'up'),
    )
    for (const app of apps) {
      t.match((await oldCookie.copy().get(`${app.url}/me`)).body, { user: null }, 'still out')
    }
    t.same(await storesWithLiveCopy(cluster, sessionId), [], 'no live copy anywhere')
  })
}
