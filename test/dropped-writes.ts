import t from 'tap'
import { startTestCluster } from './helpers/cluster.js'
import { LineClient } from './helpers/line-client.js'
import { startManager, storesWithLiveCopy } from './helpers/manager.js'
import { startServer } from './helpers/session-server.js'

// A write that meets a destroyed session is dropped (the destroy wins), and nothing may report
// it as a success: the library says so in its result, both servers answer with an error.
const cluster = await startTestCluster(t, { stores: 3 })
const manager = await startManager(t, cluster, { copies: 2 })

t.test('writeSession: a write after a destroy resolves with dropped: true', async (t) => {
  const id = await manager.createSession({ user: 'ada' })
  const live = await manager.writeSession(id, { user: 'ada', step: 2 })
  t.equal(live.dropped, false, 'a write that is stored: dropped false')
  await manager.destroySession(id)
  const events: unknown[] = []
  manager.on('write-after-destroy', (event) => events.push(event))
  const late = await manager.writeSession(id, { user: 'ada', step: 3 })
  t.match(late, { dropped: true, storeIds: [] }, 'dropped, on no store')
  t.same(events, [{ sessionId: id }])
  t.equal(await manager.readSession(id), null)
  t.same(await storesWithLiveCopy(cluster, id), [])
})

t.test('HTTP: PUT to a destroyed session is 404, not 200 with an ETag', async (t) => {
  const server = await startServer(t, manager)
  const base = `http://127.0.0.1:${server.httpAddress!.port}`
  const id = await manager.createSession({ user: 'ada' })
  t.equal((await fetch(`${base}/sessions/${id}`, { method: 'DELETE' })).status, 204)
  const put = await fetch(`${base}/sessions/${id}`, {
    method: 'PUT',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ user: 'mallory' }),
  })
  t.equal(put.status, 404)
  t.equal(put.headers.get('etag'), null, 'no ETag')
  t.match(await put.json(), { error: { code: 'SESSION_NOT_FOUND', message: /destroyed/ } })
  t.equal((await fetch(`${base}/sessions/${id}`)).status, 404)
})

t.test('line protocol: commit to a session destroyed meanwhile is not-found', async (t) => {
  const server = await startServer(t, manager, { lockLeaseMillis: 30_000 })
  const holder = await LineClient.connect(server.lineAddress)
  const other = await LineClient.connect(server.lineAddress)
  t.teardown(() => {
    holder.destroy()
    other.destroy()
  })
  const id = (await holder.ok('new')).word as string
  await holder.ok('put user', 'ada')
  // Another app destroys it through the library (a logout elsewhere); the lock does not stop it.
  await manager.destroySession(id)
  t.match(await holder.request('commit'), { ok: false, code: 'SESSION_NOT_FOUND' })
  t.same(await other.ok(`exists ${id}`), { ok: true, word: '0' })
})
