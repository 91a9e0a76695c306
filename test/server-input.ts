import t from 'tap'
import { startTestCluster } from './helpers/cluster.js'
import { LineClient } from './helpers/line-client.js'
import { startManager } from './helpers/manager.js'
import { startServer } from './helpers/session-server.js'

// Hostile bodies get the same typed error on both protocols, never INTERNAL_ERROR, and nothing
// stored changes.
const cluster = await startTestCluster(t, { stores: 3 })
const manager = await startManager(t, cluster)

const DEPTH = 100_000
const deep = {
  json: `{"deep":${'['.repeat(DEPTH)}${']'.repeat(DEPTH)}}`,
  name: 'nested 100,000 deep',
}
const proto = { json: '{"__proto__":{"isAdmin":true},"user":"mallory"}', name: 'a __proto__ key' }
// 0xC3 0x28 is not UTF-8 (a lead byte followed by a non-continuation byte).
const badUtf8 = Buffer.concat([
  Buffer.from('{"name":"'),
  Buffer.from([0xc3, 0x28]),
  Buffer.from('"}'),
])

t.test('the same hostile body gets the same code from the line protocol and HTTP', async (t) => {
  const server = await startServer(t, manager, { maxBodyBytes: 1024 * 1024 })
  const base = `http://127.0.0.1:${server.httpAddress!.port}`
  const client = await LineClient.connect(server.lineAddress)
  t.teardown(() => client.destroy())
  const id = await manager.createSession({ kept: true })
  await client.ok(`open ${id} w`)
  const cases: [string, Buffer, string][] = [
    [deep.name, Buffer.from(deep.json), 'INVALID_SESSION_DATA'],
    [proto.name, Buffer.from(proto.json), 'INVALID_SESSION_DATA'],
    ['invalid UTF-8', badUtf8, 'INVALID_JSON'],
    // Infinity once parsed, which JSON.stringify would store as null: a value never sent.
    ['a number beyond a double', Buffer.from('{"balance":1e400}'), 'INVALID_JSON'],
    ['a deep number beyond a double', Buffer.from('{"a":[{"b":[-1.5E+999]}]}'), 'INVALID_JSON'],
    ['a long number beyond a double', Buffer.from(`{"n":${'9'.repeat(300)}e10}`), 'INVALID_JSON'],
  ]
  for (const [name, body, code] of cases) {
    const line = await client.request('put_all', body)
    t.match(line, { ok: false, code }, `line put_all, ${name}: ${code}`)
    for (const method of ['PUT', 'PATCH']) {
      const answer = await fetch(`${base}/sessions/${id}`, {
        method,
        headers: { 'content-type': 'application/json' },
        body,
      })
      t.equal(answer.status, 400, `HTTP ${method}, ${name}: 400`)
      t.match(await answer.json(), { error: { code } }, `HTTP ${method}, ${name}: ${code}`)
    }
    const created = await fetch(`${base}/sessions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body,
    })
    t.match(await created.json(), { error: { code } }, `HTTP POST, ${name}: ${code}`)
  }
  const perKey = await fetch(`${base}/sessions/${id}/keys/balance`, {
    method: 'PUT',
    headers: { 'content-type': 'application/json' },
    body: '-1e400',
  })
  t.match(
    await perKey.json(),
    { error: { code: 'INVALID_JSON' } },
    'a per-key value beyond a double',
  )
  await client.ok('commit')
  t.same(await manager.readSession(id), { kept: true }, 'nothing stored changed')
  // Within range (and a string that only looks like one) is stored as sent.
  const fine = '{"big":1.7976931348623157e308,"text":"1e400","small":1e-400}'
  t.match(await client.request('put_all', fine), { ok: true })
  await client.ok('commit')
  t.same(await manager.readSession(id), {
    kept: true,
    big: Number.MAX_VALUE,
    text: '1e400',
    small: 0,
  })
})
