import t from 'tap'
import { randomBytes } from 'node:crypto'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { request as httpRequest } from 'node:http'
import { connect, createServer } from 'node:net'
import type { AddressInfo } from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { inspect } from 'node:util'
import {
  LockTimeoutError,
  StoreBusyError,
  StoreDownError,
  StoreTimeoutError,
  WriteOutcomeUnknownError,
} from '../lib/index.js'
import type { SessionServerOptions } from '../lib/server/index.js'
import { errorReply } from '../lib/server/request-error.js'
import { finished, runCli, spawnCli } from './helpers/cli.js'
import { startTestCluster } from './helpers/cluster.js'
import { LineClient } from './helpers/line-client.js'
import { createManager, startManager } from './helpers/manager.js'
import { startServer, statementsSent } from './helpers/session-server.js'
import { sleep, waitFor } from './helpers/wait.js'

const cluster = await startTestCluster(t, { stores: 3 })
const manager = await startManager(t, cluster, { maxSessionBytes: 32 * 1024 })

/** What a request answered: status, headers and the JSON body (null when empty). */
interface Answer {
  status: number
  headers: Headers
  body: any
}

async function call(
  base: string,
  method: string,
  path: string,
  options: { body?: unknown; raw?: string; headers?: Record<string, string> } = {},
): Promise<Answer> {
  const headers: Record<string, string> = { ...options.headers }
  let body: string | undefined = options.raw
  if (options.body !== undefined) {
    body = JSON.stringify(options.body)
    headers['content-type'] ??= 'application/json'
  }
  const response = await fetch(base + path, {
    method,
    headers,
    ...(body === undefined ? {} : { body }),
  })
  const text = await response.text()
  return {
    status: response.status,
    headers: response.headers,
    body: text === '' ? null : JSON.parse(text),
  }
}

function baseUrl(address: AddressInfo | null): string {
  if (address === null) throw new Error('the server has no HTTP API')
  return `http://127.0.0.1:${address.port}`
}

t.test(
  'sessions as resources: create, read, replace, merge, keys, regenerate, delete',
  async (t) => {
    const base = baseUrl((await startServer(t, manager)).httpAddress)

    const created = await call(base, 'POST', '/sessions', { body: { user: 'ada' } })
    t.equal(created.status, 201)
    const id = created.body.id as string
    t.match(id, /^[A-Za-z0-9_-]{32}$/)
    t.equal(created.headers.get('location'), `/sessions/${id}`)
    t.same(await manager.readSession(id), { user: 'ada' }, 'the library reads it')
    const empty = await call(base, 'POST', '/sessions')
    t.equal(empty.status, 201, 'a body is optional')
    t.same(await manager.readSession(empty.body.id), {})

    const read = await call(base, 'GET', `/sessions/${id}`)
    t.equal(read.status, 200)
    t.match(read.body, { id, data: { user: 'ada' }, version: Number })
    t.equal(read.headers.get('etag'), `"${read.body.version}"`)
    t.equal(read.headers.get('cache-control'), 'no-store')

    const replaced = await call(base, 'PUT', `/sessions/${id}`, { body: { user: 'grace', n: 1 } })
    t.equal(replaced.status, 200)
    t.ok(replaced.body.version > read.body.version, 'a new version')
    t.same(await manager.readSession(id), { user: 'grace', n: 1 }, 'PUT replaces')

    const patched = await call(base, 'PATCH', `/sessions/${id}`, { body: { n: 2, cart: [1, 2] } })
    t.equal(patched.status, 204)
    t.same(await manager.readSession(id), { user: 'grace', n: 2, cart: [1, 2] }, 'PATCH merges')

    const key = encodeURIComponent('a key/with spaces & ✓')
    t.equal(
      (await call(base, 'PUT', `/sessions/${id}/keys/${key}`, { body: { deep: ['x'] } })).status,
      204,
    )
    t.same((await call(base, 'GET', `/sessions/${id}/keys/${key}`)).body, { deep: ['x'] })
    t.same((await call(base, 'GET', `/sessions/${id}/keys/n`)).body, 2)
    t.same((await manager.readSession(id))?.['a key/with spaces & ✓'], { deep: ['x'] })
    t.equal((await call(base, 'DELETE', `/sessions/${id}/keys/${key}`)).status, 204)
    t.match(await call(base, 'GET', `/sessions/${id}/keys/${key}`), {
      status: 404,
      body: { error: { code: 'KEY_NOT_FOUND' } },
    })

    const regenerated = await call(base, 'POST', `/sessions/${id}/regenerate`)
    t.equal(regenerated.status, 200)
    const newId = regenerated.body.id as string
    t.not(newId, id)
    t.match(await call(base, 'GET', `/sessions/${id}`), {
      status: 404,
      body: { error: { code: 'SESSION_NOT_FOUND' } },
    })
    t.same((await call(base, 'GET', `/sessions/${newId}`)).body.data, {
      user: 'grace',
      n: 2,
      cart: [1, 2],
    })

    t.equal((await call(base, 'DELETE', `/sessions/${newId}`)).status, 204)
    t.equal(await manager.readSession(newId), null)
    t.equal((await call(base, 'DELETE', `/sessions/${newId}`)).status, 204, 'DELETE is idempotent')
    t.equal((await call(base, 'GET', `/sessions/${newId}`)).status, 404)
  },
)

t.test('compare-and-set with ETag / If-Match', async (t) => {
  const base = baseUrl((await startServer(t, manager)).httpAddress)
  const id = await manager.createSession({ n: 1 })
  const read = await call(base, 'GET', `/sessions/${id}`)
  const etag = read.headers.get('etag') as string
  const first = await call(base, 'PUT', `/sessions/${id}`, {
    body: { n: 2 },
    headers: { 'if-match': etag },
  })
  t.equal(first.status, 200, 'the version read: written')
  const stale = await call(base, 'PUT', `/sessions/${id}`, {
    body: { n: 3 },
    headers: { 'if-match': etag },
  })
  t.match(
    stale,
    { status: 409, body: { error: { code: 'VERSION_CONFLICT' } } },
    'a stale version: 409',
  )
  t.same(await manager.readSession(id), { n: 2 })
  const createOnly = await call(base, 'PUT', `/sessions/${id}`, {
    body: {},
    headers: { 'if-none-match': '*' },
  })
  t.equal(createOnly.status, 409, 'If-None-Match: * on an existing session')
  const fresh = manager.generateId()
  const created = await call(base, 'PUT', `/sessions/${fresh}`, {
    body: { new: true },
    headers: { 'if-none-match': '*' },
  })
  t.equal(created.status, 200, 'If-None-Match: * creates a new one')
  const unknown = manager.generateId()
  t.match(
    await call(base, 'PUT', `/sessions/${unknown}`, {
      body: { n: 1 },
      headers: { 'if-match': etag },
    }),
    { status: 409, body: { error: { code: 'VERSION_CONFLICT' } } },
    'If-Match on a session that does not exist: 409',
  )
  t.equal(await manager.readSession(unknown), null, 'and not created')
  t.equal(
    (await call(base, 'PUT', `/sessions/${id}`, { body: {}, headers: { 'if-match': 'W/"x"' } }))
      .status,
    400,
  )
  // A condition the server does not support is refused, never dropped: the write would be made
  // unconditionally.
  const conditions: Record<string, string>[] = [
    { 'if-none-match': etag },
    { 'if-match': etag, 'if-none-match': '*' },
  ]
  for (const headers of conditions) {
    const refused = await call(base, 'PUT', `/sessions/${id}`, { body: { n: 9 }, headers })
    t.match(refused, { status: 400, body: { error: { code: 'BAD_REQUEST' } } }, 'refused')
  }
  t.same(await manager.readSession(id), { n: 2 }, 'nothing written')
})

t.test('a condition on a route that does not honour it is refused, not dropped', async (t) => {
  // Only PUT /sessions/:id carries out If-Match / If-None-Match. Anywhere else a condition
  // would be dropped and the change made whatever version the session is at: the lost update
  // the client asked to be kept from.
  const base = baseUrl((await startServer(t, manager)).httpAddress)
  const routes: [string, (id: string) => string, Parameters<typeof call>[3]][] = [
    ['PATCH', (id) => `/sessions/${id}`, { body: { other: 'writer' } }],
    ['DELETE', (id) => `/sessions/${id}`, {}],
    ['PUT', (id) => `/sessions/${id}/keys/other`, { body: 'writer' }],
    ['DELETE', (id) => `/sessions/${id}/keys/user`, {}],
    ['POST', (id) => `/sessions/${id}/regenerate`, {}],
  ]
  for (const [method, path, options] of routes) {
    const conditions: Record<string, string>[] = [{ 'if-match': '"1"' }, { 'if-none-match': '*' }]
    for (const condition of conditions) {
      const id = await manager.createSession({ user: 'ada' })
      await manager.writeSession(id, { user: 'ada', step: 2 }) // past the version the client saw
      const before = statementsSent(manager)
      const answer = await call(base, method, path(id), {
        ...options,
        headers: { ...options?.headers, ...condition },
      })
      const what = `${method} ${path('ID')} with ${Object.keys(condition)[0]}`
      t.match(answer, { status: 400, body: { error: { code: 'BAD_REQUEST' } } }, what)
      t.equal(statementsSent(manager), before, `${what}: no store asked`)
      t.same(await manager.readSession(id), { user: 'ada', step: 2 }, `${what}: nothing changed`)
    }
  }
  const id = await manager.createSession({ user: 'ada' })
  const read = await call(base, 'GET', `/sessions/${id}`, { headers: { 'if-none-match': '"1"' } })
  t.equal(read.status, 200, 'a read ignores a condition: it changes nothing')
})

t.test('bad requests: JSON errors with sensible statuses, and no store is asked', async (t) => {
  const base = baseUrl((await startServer(t, manager)).httpAddress)
  const id = await manager.createSession({ ok: 1 })
  const before = statementsSent(manager)
  const cases: [string, string, Parameters<typeof call>[3], number, string][] = [
    ['GET', `/sessions/${id}/keys/__proto__`, {}, 400, 'INVALID_SESSION_DATA'],
    ['GET', `/sessions/%E0%A4%A`, {}, 400, 'BAD_REQUEST'],
    [
      'PUT',
      `/sessions/${id}`,
      { raw: '{"broken"', headers: { 'content-type': 'application/json' } },
      400,
      'INVALID_JSON',
    ],
    ['PUT', `/sessions/${id}`, { body: [1, 2] }, 400, 'INVALID_SESSION_DATA'],
    ['PUT', `/sessions/${id}`, {}, 400, 'INVALID_JSON'],
    // An empty body creates an empty session; JSON null is a body, and not an object.
    [
      'POST',
      '/sessions',
      { raw: 'null', headers: { 'content-type': 'application/json' } },
      400,
      'INVALID_SESSION_DATA',
    ],
    [
      'PUT',
      `/sessions/${id}`,
      { raw: 'user=ada', headers: { 'content-type': 'text/plain' } },
      415,
      'UNSUPPORTED_MEDIA_TYPE',
    ],
    ['GET', '/nowhere', {}, 404, 'NOT_FOUND'],
    ['GET', `/sessions/${id}/elsewhere`, {}, 404, 'NOT_FOUND'],
    ['POST', `/sessions/${id}`, {}, 405, 'METHOD_NOT_ALLOWED'],
    ['GET', '/sessions', {}, 405, 'METHOD_NOT_ALLOWED'],
  ]
  for (const [method, path, options, status, code] of cases) {
    const answer = await call(base, method, path, options)
    t.match(
      answer,
      { status, body: { error: { code, message: String } } },
      `${method} ${path.slice(0, 40)} → ${status} ${code}`,
    )
  }
  t.equal(statementsSent(manager), before, 'none of them reached a store')
  const notAllowed = await call(base, 'POST', `/sessions/${id}`)
  t.equal(notAllowed.headers.get('allow'), 'GET, PUT, PATCH, DELETE')

  const missing = manager.generateId()
  t.match(await call(base, 'PATCH', `/sessions/${missing}`, { body: { a: 1 } }), {
    status: 404,
    body: { error: { code: 'SESSION_NOT_FOUND' } },
  })
  t.match(await call(base, 'PUT', `/sessions/${missing}/keys/a`, { body: 1 }), { status: 404 })
  t.match(await call(base, 'POST', `/sessions/${missing}/regenerate`), { status: 404 })
  t.same(await manager.readSession(id), { ok: 1 }, 'the session is unchanged')
})

t.test('with secrets, an unsigned id is refused before the body is read', async (t) => {
  const signing = await startManager(t, cluster, {
    secrets: ['http-id-signing-secret-for-tests-0123456789'],
  })
  const server = await startServer(t, signing)
  const base = baseUrl(server.httpAddress)
  const unsigned = 'an-unsigned-id-of-the-right-form'
  const before = statementsSent(signing)
  for (const [method, path] of [
    ['PUT', `/sessions/${unsigned}`],
    ['PATCH', `/sessions/${unsigned}`],
    ['PUT', `/sessions/${unsigned}/keys/k`],
  ] as const) {
    // A body that is not JSON: refused for the id, the body was never looked at.
    const answer = await call(base, method, path, {
      raw: 'not JSON',
      headers: { 'content-type': 'application/json' },
    })
    t.match(
      answer,
      { status: 400, body: { error: { code: 'INVALID_SESSION_ID' } } },
      `${method} ${path}: the id is refused, not the body`,
    )
  }
  t.equal(statementsSent(signing), before, 'no store asked')

  // A body announced and never sent: answered at once, not at the request timeout (30 s).
  const socket = connect(server.httpAddress!.port, '127.0.0.1')
  t.teardown(() => socket.destroy())
  let text = ''
  socket.setEncoding('utf8').on('data', (chunk: string) => (text += chunk))
  socket.on('error', () => {})
  const closed = new Promise((resolve) => socket.once('close', () => resolve('closed')))
  socket.write(
    `PUT /sessions/${unsigned} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n` +
      'Content-Length: 100\r\n\r\n',
  )
  t.equal(await Promise.race([closed, sleep(5000)]), 'closed', 'answered and closed at once')
  t.match(text, /^HTTP\/1\.1 400 [^]*"code":"INVALID_SESSION_ID"/, 'without the body it announced')

  const signed = signing.generateId()
  const written = [
    await call(base, 'PUT', `/sessions/${signed}`, { body: { a: 1 } }),
    await call(base, 'PATCH', `/sessions/${signed}`, { body: { b: 2 } }),
    await call(base, 'PUT', `/sessions/${signed}/keys/c`, { body: 3 }),
  ]
  t.same(
    written.map((answer) => answer.status),
    [200, 204, 204],
    'a signed id: PUT, PATCH, PUT of a key',
  )
  t.same(await signing.readSession(signed), { a: 1, b: 2, c: 3 }, 'a signed id is served')
})

t.test(
  'limits: 413 for a body over maxBodyBytes or a session over maxSessionBytes; 503 over maxConnections',
  async (t) => {
    const base = baseUrl((await startServer(t, manager, { maxBodyBytes: 16 * 1024 })).httpAddress)
    const id = await manager.createSession({ small: true })
    const big = { blob: 'x'.repeat(20 * 1024) }
    t.match(await call(base, 'PUT', `/sessions/${id}`, { body: big }), {
      status: 413,
      body: { error: { code: 'BODY_TOO_LARGE' } },
    })
    const huge = { blob: 'x'.repeat(1024 * 1024) }
    t.match(
      await call(base, 'PUT', `/sessions/${id}`, { body: huge }).catch((error: Error) => ({
        status: 0,
        error,
      })),
      {
        status: 413,
      },
      'a body far over the limit is refused without reading it',
    )
    const streamed = await fetch(`${base}/sessions/${id}`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: new ReadableStream({
        start(controller) {
          controller.enqueue(new TextEncoder().encode(JSON.stringify(big)))
          controller.close()
        },
      }),
      duplex: 'half',
    } as RequestInit)
    t.equal(streamed.status, 413, 'a chunked body without Content-Length')
    await streamed.text()

    const serverForSessions = baseUrl((await startServer(t, manager)).httpAddress)
    t.match(
      await call(serverForSessions, 'PUT', `/sessions/${id}`, {
        body: { blob: 'y'.repeat(40 * 1024) },
      }),
      {
        status: 413,
        body: { error: { code: 'SESSION_TOO_LARGE' } },
      },
      "the manager's maxSessionBytes",
    )
    t.same(await manager.readSession(id), { small: true })
    t.equal((await call(base, 'GET', `/sessions/${id}`)).status, 200, 'the server still serves')

    const single = (await startServer(t, manager, { maxConnections: 1 })).httpAddress as AddressInfo
    const holder = connect(single.port, '127.0.0.1')
    await new Promise((resolve) => holder.once('connect', resolve))
    t.teardown(() => holder.destroy())
    await sleep(50)
    t.match(
      await call(baseUrl(single), 'GET', `/sessions/${id}`),
      {
        status: 503,
        body: { error: { code: 'TOO_MANY_CONNECTIONS' } },
      },
      'a connection over maxConnections',
    )
    holder.destroy()
    await sleep(50)
    t.equal(
      (await call(baseUrl(single), 'GET', `/sessions/${id}`)).status,
      200,
      'served once a slot is free',
    )
  },
)

t.test('access: a token is required when configured; allow-list → 403', async (t) => {
  const token = 'http-token-0123456789abcdef'
  const base = baseUrl((await startServer(t, manager, { token })).httpAddress)
  const id = await manager.createSession({ secret: 1 })
  const before = statementsSent(manager)
  const none = await call(base, 'GET', `/sessions/${id}`)
  t.match(none, { status: 401, body: { error: { code: 'UNAUTHORIZED' } } }, 'no token: 401')
  t.match(none.headers.get('www-authenticate'), /^Bearer/)
  const wrong = await call(base, 'GET', `/sessions/${id}`, {
    headers: { authorization: 'Bearer wrong-token-0123456789abc' },
  })
  t.equal(wrong.status, 401, 'wrong token: 401')
  const prefix = await call(base, 'GET', `/sessions/${id}`, {
    headers: { authorization: `Bearer ${token.slice(0, -1)}` },
  })
  t.equal(prefix.status, 401, 'a prefix of the token: 401')
  const basic = await call(base, 'GET', `/sessions/${id}`, {
    headers: { authorization: `Basic ${token}` },
  })
  t.equal(basic.status, 401, 'another scheme: 401')
  t.equal(statementsSent(manager), before, 'nothing reached a store')
  const right = await call(base, 'GET', `/sessions/${id}`, {
    headers: { authorization: `Bearer ${token}` },
  })
  t.match(right, { status: 200, body: { data: { secret: 1 } } })

  const fenced = baseUrl(
    (await startServer(t, manager, { allow: ['192.0.2.0/24', '2001:db8::/32'] })).httpAddress,
  )
  t.match(await call(fenced, 'GET', `/sessions/${id}`), {
    status: 403,
    body: { error: { code: 'FORBIDDEN' } },
  })
  const open = baseUrl((await startServer(t, manager, { allow: ['127.0.0.0/8'] })).httpAddress)
  t.equal((await call(open, 'GET', `/sessions/${id}`)).status, 200)
})

t.test('options are checked before anything listens', async (t) => {
  const { startSessionServer } = await import('../lib/server/index.js')
  await t.rejects(
    startSessionServer({ manager, port: 0, host: '0.0.0.0' }),
    {
      code: 'INVALID_OPTION',
      option: 'token',
    },
    'a non-loopback host without a token',
  )
  await t.rejects(startSessionServer({ manager, port: 0, token: 'short' }), {
    code: 'INVALID_OPTION',
    option: 'token',
  })
  // HTTP header values arrive as Latin-1, so a token with other characters would never match
  // the `Authorization` header (and fetch refuses to send it): only printable ASCII is taken.
  await t.rejects(startSessionServer({ manager, port: 0, token: 'pässwörter-0123456789' }), {
    code: 'INVALID_OPTION',
    option: 'token',
  })
  await t.rejects(startSessionServer({ manager, port: 0, token: `${'x'.repeat(20)}\u0007` }), {
    code: 'INVALID_OPTION',
    option: 'token',
  })
  await t.rejects(startSessionServer({ manager, port: 0, token: 'x'.repeat(1025) }), {
    code: 'INVALID_OPTION',
    option: 'token',
  })
  // `auth <token>` must fit in a line, or no line client could ever authenticate.
  await t.rejects(
    startSessionServer({ manager, port: 0, maxLineBytes: 64, token: 'x'.repeat(60) }),
    { code: 'INVALID_OPTION', option: 'maxLineBytes' },
  )
  const longest = await startSessionServer({
    manager,
    port: 0,
    maxLineBytes: 64,
    token: 'x'.repeat(59),
  })
  await longest.close()
  await t.rejects(startSessionServer({ manager, port: 0, allow: ['10.0.0.0/33'] }), {
    code: 'INVALID_OPTION',
    option: 'allow[0]',
  })
  await t.rejects(startSessionServer({ manager, port: 0, allow: ['not-an-address'] }), {
    code: 'INVALID_OPTION',
    option: 'allow[0]',
  })
  await t.rejects(startSessionServer({ manager, port: 70_000 }), {
    code: 'INVALID_OPTION',
    option: 'port',
  })
  await t.rejects(startSessionServer({ manager, port: 0, maxBodyBytes: 0 }), {
    code: 'INVALID_OPTION',
    option: 'maxBodyBytes',
  })
  const server = await startSessionServer({
    manager,
    port: 0,
    host: '0.0.0.0',
    token: 'a-long-enough-token-123',
  })
  t.equal(server.httpAddress, null, 'no HTTP API without httpPort')
  await server.close()
})

t.test(
  'option errors name the option, never the value given, nor does the debug log',
  async (t) => {
    const { startSessionServer } = await import('../lib/server/index.js')
    // A secret pasted into the wrong option must not end up in a log (docs/errors.md).
    const canary = `canary${randomBytes(6).toString('hex')}`
    const token = 'a-long-enough-token-123'
    const cases: [string, Partial<SessionServerOptions>, string][] = [
      ['a non-loopback host without a token', { host: canary }, 'token'],
      ['a host that does not resolve', { host: canary, token }, 'host'],
      ['a host that is no address of this machine', { host: '192.0.2.77', token }, 'host'],
      ['an allow entry with a bad prefix', { allow: [`10.0.0.0/${canary}`] }, 'allow[0]'],
      ['an allow entry with a bad IPv6 prefix', { allow: ['::1', `::/${canary}`] }, 'allow[1]'],
      ['an allow entry that is no address', { allow: [`${canary}/8`] }, 'allow[0]'],
      ['a token with whitespace', { token: `${canary} ${canary}` }, 'token'],
      ['a port that is not a number', { port: canary as never }, 'port'],
      ['an httpPort that is not a number', { httpPort: canary as never }, 'httpPort'],
      ['a lease that is not a number', { lockLeaseMillis: canary as never }, 'lockLeaseMillis'],
    ]
    for (const [name, options, option] of cases) {
      const error = await startSessionServer({ manager, port: 0, ...options }).then(
        async (server) => {
          await server.close()
          return null
        },
        (error: unknown) => error,
      )
      t.match(error, { code: 'INVALID_OPTION', option }, `${name}: refused, naming ${option}`)
      const shown = inspect(error, { depth: 10, showHidden: true })
      t.notOk(shown.includes(canary), `${name}: the value is not repeated`)
      t.notOk(shown.includes('192.0.2.77'), `${name}: the address is not repeated`)
    }

    // The CLI prints these errors, and logs more with NODE_DEBUG: neither holds the value.
    const directory = await mkdtemp(path.join(os.tmpdir(), 'session-shards-serve-'))
    t.teardown(() => rm(directory, { recursive: true, force: true }))
    const config = path.join(directory, 'session-shards.config.json')
    await writeFile(config, JSON.stringify({ stores: cluster.storeConfigs() }))
    const runs: [string, string[], Record<string, string>][] = [
      ['--host without a token', ['--host', canary], {}],
      ['--host that does not resolve', ['--host', canary], { SESSION_SHARDS_SERVER_TOKEN: token }],
      ['--allow with a bad prefix', ['--allow', `10.0.0.0/${canary}`], {}],
    ]
    for (const [name, args, env] of runs) {
      const run = await runCli(['serve', '--port', '0', '--config', config, ...args], {
        env: { NODE_DEBUG: 'session-shards', ...env },
      })
      t.equal(run.code, 2, `${name}: a usage error`)
      t.notMatch(run.stdout, /store \S+ is (down|up)/, `${name}: before any store was asked`)
      t.match(run.stderr, /host|allow/, `${name}: the option is named`)
      t.notOk((run.stdout + run.stderr).includes(canary), `${name}: output and debug log`, {
        stderr: run.stderr.slice(-2000),
      })
    }
    // A token file is a line: one far longer is refused, not read whole.
    const tokenFile = path.join(directory, 'token')
    await writeFile(tokenFile, Buffer.alloc(1024 * 1024, 'a'))
    const huge = await runCli([
      'serve',
      '--port',
      '0',
      '--config',
      config,
      '--token-file',
      tokenFile,
    ])
    t.equal(huge.code, 2, 'a 1 MiB --token-file: a usage error')
    t.match(huge.stderr, /--token-file is larger than 4096 bytes/)
  },
)

t.test('503 when the stores cannot answer', async (t) => {
  const deadPort = await new Promise<number>((resolve) => {
    const probe = createServer().listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as AddressInfo
      probe.close(() => resolve(port))
    })
  })
  const unreachable = createManager(t, cluster, {
    stores: [{ id: 'gone', uri: `mysql://nobody@127.0.0.1:${deadPort}/sessions` }],
  })
  const base = baseUrl((await startServer(t, unreachable)).httpAddress)
  const read = await call(base, 'GET', `/sessions/${unreachable.generateId()}`)
  t.match(read, { status: 503, body: { error: { code: 'NO_STORE_AVAILABLE' } } })
  t.equal(read.headers.get('retry-after'), '1')
  t.match(await call(base, 'POST', '/sessions', { body: {} }), {
    status: 503,
    body: { error: { code: 'NOT_ENOUGH_STORES' } },
  })
  t.notMatch(JSON.stringify(read.body), /nobody/, 'no user or URI in the message')
})

t.test('close(): requests in flight finish, then no new connection is accepted', async (t) => {
  const { startSessionServer } = await import('../lib/server/index.js')
  const server = await startSessionServer({ manager, port: 0, httpPort: 0 })
  const base = baseUrl(server.httpAddress)
  const id = await manager.createSession({ n: 0 })
  let send!: (text: string) => void
  const body = new ReadableStream<Uint8Array>({
    start(controller) {
      controller.enqueue(new TextEncoder().encode('{"n":'))
      send = (text) => {
        controller.enqueue(new TextEncoder().encode(text))
        controller.close()
      }
    },
  })
  const inFlight = fetch(`${base}/sessions/${id}`, {
    method: 'PUT',
    headers: { 'content-type': 'application/json' },
    body,
    duplex: 'half',
  } as RequestInit)
  await sleep(100)
  const closing = server.close()
  await sleep(100)
  send('1}')
  const answer = await inFlight
  t.equal(answer.status, 200, 'the request in flight was answered')
  t.equal(answer.headers.get('connection'), 'close')
  await answer.text()
  await closing
  t.same(await manager.readSession(id), { n: 1 }, 'and its write made')
  await t.rejects(fetch(`${base}/sessions/${id}`), 'no longer listening')
})

t.test(
  'session-shards serve: the configured stores over both protocols; SIGTERM shuts down cleanly',
  async (t) => {
    const directory = await mkdtemp(path.join(os.tmpdir(), 'session-shards-serve-'))
    t.teardown(() => rm(directory, { recursive: true, force: true }))
    const config = path.join(directory, 'session-shards.config.json')
    await writeFile(config, JSON.stringify({ stores: cluster.storeConfigs() }))
    const child = spawnCli([
      'serve',
      '--port',
      '0',
      '--http-port',
      '0',
      '--touch-after-seconds',
      '60',
      '--json',
      '--config',
      config,
    ])
    const exited = finished(child)
    t.teardown(() => child.kill('SIGKILL'))
    let stdout = ''
    const listening = await new Promise<{ line: string; http: string }>((resolve, reject) => {
      child.stdout?.on('data', (chunk: Buffer) => {
        stdout += chunk.toString('utf8')
        try {
          resolve((JSON.parse(stdout) as { listening: { line: string; http: string } }).listening)
        } catch {
          // Not the whole document yet.
        }
      })
      void exited.then((run) => reject(new Error(`serve exited early: ${run.stderr}`)))
    })
    t.match(listening, { line: /^127\.0\.0\.1:\d+$/, http: /^127\.0\.0\.1:\d+$/ })

    const created = await call(`http://${listening.http}`, 'POST', '/sessions', {
      body: { via: 'cli' },
    })
    t.equal(created.status, 201)
    t.same(await manager.readSession(created.body.id), { via: 'cli' })

    const [host, port] = listening.line.split(':') as [string, string]
    const client = await LineClient.connect({ address: host, port: Number(port), family: 'IPv4' })
    await client.ok(`open ${created.body.id} w`)
    const before = await manager.readSession(created.body.id, { withVersion: true })
    await client.ok('commit')
    t.same(
      await manager.readSession(created.body.id, { withVersion: true }),
      before,
      '--touch-after-seconds: a commit of what was just read is not written',
    )
    child.kill('SIGTERM')
    await client.closed
    const run = await exited
    t.equal(run.code, 0, 'exit code 0 after SIGTERM')
    t.match(run.stderr, /SIGTERM: finishing requests in flight/)
    const lock = await manager.lockSession(created.body.id, { waitMillis: 500 })
    t.pass('the lock its client held was released')
    await lock.release()
  },
)

t.test('a store in trouble is a 503 whose message names no store', async (t) => {
  for (const error of [
    new StoreBusyError('store-secret-name', 64),
    new StoreDownError('store-secret-name'),
    new StoreTimeoutError('store-secret-name', 1000, 0, 'query'),
  ]) {
    const reply = errorReply(error)
    t.equal(reply.status, 503, `${error.code}: 503`)
    t.equal(reply.code, error.code)
    t.notMatch(reply.message, 'store-secret-name', `${error.code}: the store is not named`)
  }
})

t.test('a lock timeout a failing store ended names no store either', async (t) => {
  const driverError = new Error(
    "connect ECONNREFUSED 10.1.2.3:3306 (Access denied for user 'app'@'db-host')",
  )
  const failed = new LockTimeoutError(5000, { storeId: 'store-secret-name', error: driverError })
  t.match(failed.message, 'store-secret-name', 'the library names the store, for the app log')
  const reply = errorReply(failed)
  t.equal(reply.code, 'LOCK_TIMEOUT', 'the code is kept')
  t.equal(reply.status, 409)
  t.notMatch(reply.message, /store-secret-name|10\.1\.2\.3|Access denied|db-host/, reply.message)
  t.match(reply.message, /lock/i, 'it still says what failed')
  const held = errorReply(new LockTimeoutError(5000))
  t.match(held.message, /another holder/, 'a lock held by another holder is told as it is')
})

t.test('a write whose outcome is unknown is a 409 that says to read first', async (t) => {
  const reply = errorReply(new WriteOutcomeUnknownError())
  t.equal(reply.status, 409)
  t.equal(reply.code, 'WRITE_OUTCOME_UNKNOWN')
  t.match(reply.message, /read the session/i)
})

t.test('without a token, only requests for a loopback host name are answered', async (t) => {
  // A page loaded from evil.example whose name then resolves to 127.0.0.1 (DNS rebinding)
  // reaches the server with its own name in Host; browsers always send Host.
  const id = await manager.createSession({ secret: 1 })
  const get = (address: AddressInfo, host: string): Promise<{ status: number; body: string }> =>
    new Promise((resolve, reject) => {
      const request = httpRequest(
        { host: '127.0.0.1', port: address.port, path: `/sessions/${id}`, headers: { host } },
        (response) => {
          let body = ''
          response.on('data', (chunk: Buffer) => (body += chunk.toString()))
          response.on('end', () => resolve({ status: response.statusCode ?? 0, body }))
        },
      )
      request.on('error', reject)
      request.end()
    })
  const open = (await startServer(t, manager)).httpAddress!
  // The write's background work (a hedge's hand-off, on a loaded machine) settles first.
  let before = statementsSent(manager)
  await waitFor('the statements of the write to settle', async () => {
    await sleep(100)
    const settled = statementsSent(manager) === before
    before = statementsSent(manager)
    return settled
  })
  for (const host of ['evil.example', `evil.example:${open.port}`, '192.0.2.1', '[2001:db8::1]']) {
    const answer = await get(open, host)
    t.equal(answer.status, 403, `Host ${host}: 403`)
    t.match(answer.body, /FORBIDDEN/)
    t.notMatch(answer.body, /secret/, 'no session data')
  }
  t.equal(statementsSent(manager), before, 'nothing reached a store')
  for (const host of [`127.0.0.1:${open.port}`, 'localhost', `LOCALHOST:${open.port}`, '[::1]:1']) {
    t.equal((await get(open, host)).status, 200, `Host ${host}: answered`)
  }
  // With a token, the token decides, whatever the name (a server behind a proxy or a DNS name).
  const token = 'http-token-0123456789abcdef'
  const fenced = (await startServer(t, manager, { token })).httpAddress!
  t.equal((await get(fenced, 'sessions.internal')).status, 401, 'no token: 401, not 403')
})
