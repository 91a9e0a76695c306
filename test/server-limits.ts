import t from 'tap'
import { connect } from 'node:net'
import type { AddressInfo, Socket } from 'node:net'
import { startTestCluster } from './helpers/cluster.js'
import { LineClient, frame } from './helpers/line-client.js'
import { createManager, startManager } from './helpers/manager.js'
import { startServer } from './helpers/session-server.js'
import { waitFor } from './helpers/wait.js'

// The session server under slow, stalled and unauthenticated clients: every connection's
// buffers and time are bounded, and a client that stalls loses its lock.
const cluster = await startTestCluster(t, { stores: 3 })
const manager = await startManager(t, cluster)
const TOKEN = 'limits-test-token-0123456789'

/** A raw TCP connection; resolves once connected. */
function rawSocket(address: AddressInfo): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ port: address.port, host: '127.0.0.1' })
    socket.once('connect', () => resolve(socket))
    socket.once('error', reject)
  })
}

/** Everything the server sends until it closes the connection. */
function received(socket: Socket): Promise<string> {
  let text = ''
  socket.setEncoding('utf8').on('data', (chunk: string) => (text += chunk))
  socket.on('error', () => {})
  return new Promise((resolve) => socket.once('close', () => resolve(text)))
}

t.test('a line client that stops reading is disconnected and its lock released', async (t) => {
  const maxBodyBytes = 1024 * 1024
  const server = await startServer(t, manager, {
    maxBodyBytes,
    sendTimeoutMillis: 500,
    lockWaitMillis: 5000,
  })
  const staller = await LineClient.connect(server.lineAddress)
  t.teardown(() => staller.destroy())
  const id = (await staller.ok('new')).word as string
  const big = Buffer.alloc(800 * 1024, 'x')
  await staller.ok('put big', big)
  // From here on it reads nothing, and keeps sending: large answers (get_all) and large
  // requests (put), far more than the socket buffers hold.
  staller.socket.pause()
  const requests: Buffer[] = []
  for (let i = 0; i < 40; i++) requests.push(frame('get_all'), frame(`put k${i % 4}`, big))
  let peak = 0
  const sampler = setInterval(() => (peak = Math.max(peak, server.stats().bufferedBytes)), 5)
  t.teardown(() => clearInterval(sampler))
  staller.socket.write(Buffer.concat(requests))
  await waitFor(
    'the server to disconnect the stalled client',
    () => server.stats().lineConnections === 0,
  )
  clearInterval(sampler)
  t.ok(
    peak <= 3 * maxBodyBytes,
    `buffered at most ${peak} bytes for it (bound: about twice maxBodyBytes)`,
  )
  const other = await LineClient.connect(server.lineAddress)
  t.teardown(() => other.destroy())
  const started = Date.now()
  await other.ok(`open ${id} w`)
  t.ok(Date.now() - started < 2500, 'the lock it held was released, not left to its lease')
  t.notMatch(JSON.parse((await other.ok('get_all')).text as string), { k0: String }, 'uncommitted')
})

t.test('line clients without a token: a deadline, blank lines are not activity', async (t) => {
  const server = await startServer(t, manager, { token: TOKEN, authTimeoutMillis: 300 })
  const silent = await rawSocket(server.lineAddress)
  const answered = received(silent)
  const keepAlive = setInterval(() => silent.write('\n\r\n'), 50)
  t.teardown(() => clearInterval(keepAlive))
  t.match(await answered, /^err AUTH_TIMEOUT /, 'closed at the auth deadline despite blank lines')
  clearInterval(keepAlive)

  const client = await LineClient.connect(server.lineAddress)
  await client.ok(`auth ${TOKEN}`)
  t.same(await client.ok('exists ' + manager.generateId()), { ok: true, word: '0' })
  await new Promise((resolve) => setTimeout(resolve, 500))
  t.same(
    await client.ok('exists ' + manager.generateId()),
    { ok: true, word: '0' },
    'an authenticated client is not subject to the auth deadline',
  )
  client.destroy()

  const idleServer = await startServer(t, manager, { idleTimeoutMillis: 300 })
  const idle = await rawSocket(idleServer.lineAddress)
  const idleAnswer = received(idle)
  const blanks = setInterval(() => idle.write('\n'), 50)
  t.teardown(() => clearInterval(blanks))
  t.match(await idleAnswer, /^err IDLE_TIMEOUT /, 'blank lines do not keep an idle client open')
})

t.test('line clients without a token cannot make the server read a payload', async (t) => {
  const server = await startServer(t, manager, { token: TOKEN })
  const client = await rawSocket(server.lineAddress)
  const answered = received(client)
  // Only the line that announces a megabyte: the server must answer and close without
  // waiting for (or reading) the payload.
  client.write('put key 1000000\n')
  t.match(await answered, /^err UNAUTHORIZED /)
  const piped = await rawSocket(server.lineAddress)
  const pipedAnswer = received(piped)
  piped.write(`auth ${TOKEN}\nput key 3\nabc\nget key\n`)
  t.match(
    await Promise.race([
      pipedAnswer,
      new Promise((resolve) => setTimeout(() => resolve('open'), 300)),
    ]),
    'open',
    'a payload sent right behind an auth line is fine',
  )
  piped.destroy()
})

t.test('HTTP: over maxConnections, a connection is answered 503 and closed at once', async (t) => {
  const server = await startServer(t, manager, { maxConnections: 2 })
  const address = server.httpAddress!
  const held = [await rawSocket(address), await rawSocket(address)]
  t.teardown(() => held.forEach((socket) => socket.destroy()))
  await waitFor('both connections counted', () => server.stats().httpConnections === 2)
  const extra = await rawSocket(address)
  const started = Date.now()
  const text = await received(extra) // sends nothing at all
  t.match(text, /^HTTP\/1\.1 503 /, '503')
  t.match(text, /"code":"TOO_MANY_CONNECTIONS"/)
  t.ok(Date.now() - started < 1500, 'closed at once, not at the headers timeout')
})

t.test('HTTP: slow headers and endless bodies are cut', async (t) => {
  const server = await startServer(t, manager, { requestTimeoutMillis: 500, maxBodyBytes: 1024 })
  const address = server.httpAddress!
  const slow = await rawSocket(address)
  const slowAnswer = received(slow)
  slow.write('GET /sessions HTTP/1.1\r\nHost: x\r\n')
  const trickle = setInterval(() => slow.write('X-Slow: 1\r\n'), 100)
  t.teardown(() => clearInterval(trickle))
  const started = Date.now()
  t.match(await slowAnswer, /^HTTP\/1\.1 408 /, '408 for headers that never end')
  clearInterval(trickle)
  t.ok(Date.now() - started < 3000, 'within the request timeout and its check interval')

  const id = await manager.createSession({ kept: true })
  for (const [method, type] of [
    ['DELETE', 'application/json'],
    ['PUT', 'text/plain'],
  ] as const) {
    const endless = await rawSocket(address)
    const closed = received(endless)
    endless.write(
      `${method} /sessions/${id} HTTP/1.1\r\nHost: x\r\nContent-Type: ${type}\r\nTransfer-Encoding: chunked\r\n\r\n`,
    )
    const chunk = Buffer.alloc(4096, 'y')
    let sent = 0
    const flood = setInterval(() => {
      if (endless.destroyed) return
      endless.write(`${chunk.length.toString(16)}\r\n`)
      endless.write(chunk)
      endless.write('\r\n')
      sent += chunk.length
    }, 1)
    t.teardown(() => clearInterval(flood))
    await closed
    clearInterval(flood)
    t.ok(sent < 1024 * 1024, `${method} ${type}: cut after ${sent} bytes of an endless body`)
  }
  t.same(await manager.readSession(id), null, 'the DELETE was done before the body was cut')
})

t.test('errors sent to clients name no store, user or host', async (t) => {
  const store = cluster.stores[0]!
  const broken = createManager(t, cluster, {
    stores: [{ ...store.config, password: 'not-the-password' }],
    copies: 1,
  })
  const server = await startServer(t, broken)
  const answers: string[] = []
  const response = await fetch(
    `http://127.0.0.1:${server.httpAddress!.port}/sessions/${broken.generateId()}`,
  )
  t.equal(response.status, 503)
  answers.push(await response.text())
  const client = await LineClient.connect(server.lineAddress)
  t.teardown(() => client.destroy())
  const line = await client.request(`exists ${broken.generateId()}`)
  t.match(line, { ok: false, code: 'NO_STORE_AVAILABLE' })
  answers.push(JSON.stringify(line))
  for (const text of answers) {
    t.notMatch(text, /Access denied|@|127\.0\.0\.1|store-a|shards/, `no internals: ${text}`)
  }
})
