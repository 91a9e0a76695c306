import t from 'tap'
import { startTestCluster } from './helpers/cluster.js'
import { LineClient } from './helpers/line-client.js'
import type { SessionManager } from '../lib/index.js'
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
/** Makes `racing`'s next versioned read of `id` be followed by a destroy (another app's logout). */
function destroyAfterNextVersionedRead(racing: SessionManager, id: string): void {
  const original = racing.readSession.bind(racing) as (...args: unknown[]) => Promise<unknown>
  let armed = true
  ;(racing as unknown as { readSession: unknown }).readSession = async (...args: unknown[]) => {
    const result = await original(...args)
    const options = args[1] as { withVersion?: boolean } | undefined
    if (armed && args[0] === id && options?.withVersion === true) {
      armed = false
      await manager.destroySession(id)
    }
    return result
  }
}

t.test('HTTP PATCH and key PUT that race a destroy answer 404, not 204', async (t) => {
  const racing = await startManager(t, cluster)
  const server = await startServer(t, racing)
  const base = `http://127.0.0.1:${server.httpAddress?.port}`
  for (const [method, path, body] of [
    ['PATCH', '', JSON.stringify({ b: 2 })],
    ['PUT', '/keys/b', '2'],
  ] as const) {
    const id = await manager.createSession({ a: 1 })
    destroyAfterNextVersionedRead(racing, id)
    const res = await fetch(`${base}/sessions/${id}${path}`, {
      method,
      headers: { 'content-type': 'application/json' },
      body,
    })
    await res.arrayBuffer()
    t.equal(await manager.readSession(id), null, `${method}: the session stays destroyed`)
    t.equal(res.status, 404, `${method}: the write was dropped, SESSION_NOT_FOUND`)
  }
})

t.test('regenerate_id is fenced like a commit against a change made behind the lock', async (t) => {
  const server = await startServer(t, manager)
  const client = await LineClient.connect(server.lineAddress)
  t.teardown(() => client.destroy())
  const id = await manager.createSession({ n: 1 })
  await client.ok(`open ${id} w`)
  // An app that does not lock writes the session while this client holds it.
  await manager.writeSession(id, { n: 'written without the lock' })
  // Moved, the change would be under the new id, and the next commit would write this
  // client's older data over it at the version the new lock read.
  const answer = await client.request('regenerate_id')
  t.match(answer, { ok: false, code: 'VERSION_CONFLICT' }, 'refused, as a commit would be')
  t.same(await manager.readSession(id), { n: 'written without the lock' }, 'nothing moved')
  await client.request('close')
})

t.test('updateSession and withSessionLock: a write a destroy dropped is no success', async (t) => {
  const id = await manager.createSession({ n: 1 })
  // The change runs between the read and the write: a logout elsewhere comes in between.
  const destroyFirst = async (data: Record<string, unknown> | null) => {
    await manager.destroySession(id)
    return { ...data, n: 2 }
  }
  await t.rejects(manager.updateSession(id, destroyFirst), { code: 'SESSION_NOT_FOUND' })
  const other = await manager.createSession({ n: 1 })
  await t.rejects(
    manager.withSessionLock(other, async (data) => {
      await manager.destroySession(other)
      return { ...data, n: 2 }
    }),
    { code: 'SESSION_NOT_FOUND' },
  )
  t.same(await storesWithLiveCopy(cluster, id), [], 'nothing written')
  t.same(await storesWithLiveCopy(cluster, other), [], 'nothing written under the lock')
})
