import t from 'tap'
import { existsSync, readFileSync } from 'node:fs'
import { connect } from 'node:net'
import type { AddressInfo, Socket } from 'node:net'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { startTestCluster } from './helpers/cluster.js'
import { LineClient, frame } from './helpers/line-client.js'
import { createManager, startManager } from './helpers/manager.js'
import { startServer, statementsSent } from './helpers/session-server.js'
import { sleep, waitFor } from './helpers/wait.js'

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

setFlagsFromString('--expose-gc')
const gc = runInNewContext('gc') as () => void

/**
 * Bytes the process holds alive (heap and buffers), after full garbage collections. Async hooks
 * (tap's) learn of collected promises a turn later and drop their records then: collect again.
 */
async function liveBytes(): Promise<number> {
  for (let i = 0; i < 3; i++) {
    gc()
    await sleep(10)
  }
  gc()
  const { heapUsed, arrayBuffers } = process.memoryUsage()
  return heapUsed + arrayBuffers
}

/**
 * How much the live memory grows while a request's `head` and then its `rest`, one byte per
 * turn of the event loop, reach the server (in this process, so it reads each byte alone, as
 * from a client that sends one byte per TCP segment). Leave out what completes the request:
 * the server still holds what it read when this measures.
 */
async function growthWhileTrickling(socket: Socket, head: string, rest: Buffer): Promise<number> {
  socket.setNoDelay(true)
  await sleep(50)
  const before = await liveBytes()
  socket.write(head)
  // Callbacks, not a promise per byte: tap tracks promises, which would blur the measure.
  await new Promise<void>((resolve) => {
    let sent = 0
    const next = (): void => {
      if (sent === rest.length) return resolve()
      socket.write(rest.subarray(sent, ++sent))
      setImmediate(next)
    }
    next()
  })
  await sleep(100)
  return (await liveBytes()) - before
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

t.test('a line connection parses at most 64 requests ahead, even from one chunk', async (t) => {
  const server = await startServer(t, manager, { token: TOKEN, lockWaitMillis: 10_000 })
  let peak = 0
  const sampler = setInterval(() => (peak = Math.max(peak, server.stats().queuedRequests)), 5)
  t.teardown(() => clearInterval(sampler))
  const badLines = 'x\n'.repeat(32 * 1024) // 64 KiB: one read

  // Before auth, from a client that reads none of its answers.
  const unauthenticated = await rawSocket(server.lineAddress)
  t.teardown(() => unauthenticated.destroy())
  unauthenticated.pause()
  unauthenticated.write(badLines)
  await sleep(300)
  t.ok(peak > 0 && peak <= 64, `before auth: ${peak} requests parsed ahead`)
  unauthenticated.destroy()

  // Behind a command that waits for a lock.
  peak = 0
  const blocker = await manager.lockSession(manager.generateId())
  const client = await LineClient.connect(server.lineAddress)
  t.teardown(() => client.destroy())
  await client.ok(`auth ${TOKEN}`)
  client.write(`open ${blocker.sessionId} w\n${badLines}exists\n`)
  await sleep(300)
  t.ok(peak > 0 && peak <= 64, `behind a lock wait: ${peak} requests parsed ahead`)
  await blocker.release()
  t.same(await client.answer(), { ok: true }, 'open w, once the lock is free')
  let unknown = 0
  for (let i = 0; i < 32 * 1024; i++) {
    if ((await client.answer())?.ok === false) unknown++
  }
  t.equal(unknown, 32 * 1024, 'every bad line answered, in order')
  t.same(await client.answer(), { ok: true, word: '0' }, 'then the request after them')
  clearInterval(sampler)
  t.ok(peak <= 64, `${peak} requests parsed ahead at most`)
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

t.test('a payload announced and not sent holds next to nothing', async (t) => {
  const server = await startServer(t, manager, { token: TOKEN, maxBodyBytes: 1_000_000 })
  const clients: LineClient[] = []
  for (let i = 0; i < 10; i++) {
    const client = await LineClient.connect(server.lineAddress)
    t.teardown(() => client.destroy())
    await client.ok(`auth ${TOKEN}`)
    await client.ok('new')
    clients.push(client)
  }
  const before = await liveBytes()
  // Each announces a megabyte and sends two bytes of it.
  for (const client of clients) client.write('put k 1000000\nxx')
  await sleep(300)
  const grown = (await liveBytes()) - before
  t.ok(grown < 3_000_000, `the server holds ${grown} more bytes for 10 such clients, not 10 MB`)
  t.ok(server.stats().bufferedBytes >= 20, 'and counts what they sent')
})

t.test('a wrong auth line lets no payload behind it be read', async (t) => {
  // The token is checked when the auth line is parsed, not when it is answered: a client that
  // does not read its answers makes the server parse ahead of them, and a payload behind a wrong
  // auth line was read and held (up to maxBodyBytes per connection, for 10 s).
  const server = await startServer(t, manager, {
    token: TOKEN,
    sendTimeoutMillis: 30_000,
    authTimeoutMillis: 30_000,
    idleTimeoutMillis: 60_000,
  })
  const client = await rawSocket(server.lineAddress)
  client.on('error', () => {})
  t.teardown(() => client.destroy())
  // Unknown commands (answered before auth) until the server waits for the client to read.
  const batch = Buffer.from('x\n'.repeat(50))
  let blocked = false
  for (let i = 0; i < 20_000 && !blocked; i++) {
    client.write(batch)
    const started = Date.now()
    await sleep(2)
    while (server.stats().queuedRequests > 0 && Date.now() - started < 200) await sleep(5)
    blocked = server.stats().queuedRequests > 0
  }
  t.ok(blocked, 'the server waits for the client to read')
  const before = server.stats().bufferedBytes
  client.write(
    Buffer.concat([
      Buffer.from('auth not-the-token-0123456789\nput k 1000000\n'),
      Buffer.alloc(1_000_000, 'p'),
      Buffer.from('\n'),
    ]),
  )
  await sleep(500)
  const held = server.stats().bufferedBytes - before
  t.ok(held < 100_000, `the server holds ${held} more bytes, not the payload`)
})

for (const [method, route] of [
  ['GET', (id: string) => `/sessions/${id}`],
  ['POST', (id: string) => `/sessions/${id}/regenerate`],
] as const) {
  t.test(
    `${method} ${route(':id')}: a body it does not need is cut past 8 x maxBodyBytes`,
    async (t) => {
      // Routes that read no body left it to Node, which read and dropped all of it.
      const maxBodyBytes = 1024
      const server = await startServer(t, manager, { maxBodyBytes })
      const id = await manager.createSession({ a: 1 })
      const socket = await rawSocket(server.httpAddress as AddressInfo)
      t.teardown(() => socket.destroy())
      let closed = false
      socket.on('close', () => (closed = true))
      socket.on('error', () => {})
      const total = 64 * 1024 * 1024
      socket.write(
        `${method} ${route(id)} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n` +
          `Content-Length: ${total}\r\n\r\n`,
      )
      const piece = Buffer.alloc(64 * 1024, 0x20)
      let sent = 0
      const started = Date.now()
      while (!closed && sent < total && Date.now() - started < 10_000) {
        if (!socket.write(piece)) {
          await new Promise((resolve) => {
            socket.once('drain', resolve)
            socket.once('close', resolve)
          })
        }
        sent += piece.length
      }
      await sleep(200)
      t.ok(closed, `the connection is cut (${sent} bytes sent)`)
      t.ok(sent < total, 'before the whole body was read')
      t.same(await manager.readSession(id), { a: 1 }, 'and the request is not carried out')
    },
  )
}

// A Buffer kept per socket read costs some 200 bytes of heap: read one byte at a time, a line
// or payload kept as pieces cost about 200 times its limit. The bound: a few times the limit.
t.test(
  'a payload sent one byte per segment holds about its size, not a buffer per byte',
  async (t) => {
    const maxBodyBytes = 128 * 1024
    const server = await startServer(t, manager, { maxBodyBytes })
    const client = await LineClient.connect(server.lineAddress)
    t.teardown(() => client.destroy())
    await client.ok(`open ${manager.generateId()} w`)
    // Some room under maxBodyBytes: the session that holds the value is bounded by it too.
    const value = Buffer.alloc(maxBodyBytes - 100, 'v')
    value[0] = 0x0a // a payload is bytes: an LF in it ends nothing
    const grown = await growthWhileTrickling(
      client.socket,
      `put big ${value.length}\n`,
      value.subarray(0, -1),
    )
    t.ok(
      grown < 8 * maxBodyBytes,
      `memory grew by ${grown} bytes for a ${value.length}-byte payload`,
    )
    client.write(Buffer.concat([value.subarray(-1), Buffer.from('\n')]))
    t.same(await client.answer(), { ok: true }, 'the put is answered')
    t.same((await client.ok('get big')).payload, value, 'every byte of the value arrived')
  },
)

t.test('a command line sent one byte per segment, before auth, holds about its size', async (t) => {
  const maxLineBytes = 128 * 1024
  // Trickling takes 10 s or more on a busy machine: past the default auth deadline, which
  // would answer AUTH_TIMEOUT before the line is done.
  const server = await startServer(t, manager, {
    maxLineBytes,
    token: TOKEN,
    authTimeoutMillis: 120_000,
  })
  const socket = await rawSocket(server.lineAddress)
  t.teardown(() => socket.destroy())
  const answered = received(socket)
  const line = Buffer.from(`exists ${'a'.repeat(maxLineBytes - 8)}\n`)
  const grown = await growthWhileTrickling(socket, '', line.subarray(0, -1))
  t.ok(grown < 8 * maxLineBytes, `memory grew by ${grown} bytes for a ${line.length}-byte line`)
  socket.end(line.subarray(-1))
  t.match(await answered, /^err UNAUTHORIZED [^\n]*\n$/, 'the line is answered, once')
})

/**
 * The timer the OS runs on the server's end of a loopback connection, from /proc/net/tcp:
 * `02` is the keepalive timer, `00` none (an idle socket without SO_KEEPALIVE).
 */
function serverSideTimer(serverPort: number, clientPort: number): string | undefined {
  const hexPort = (port: number): string => port.toString(16).toUpperCase().padStart(4, '0')
  for (const line of readFileSync('/proc/net/tcp', 'utf8').split('\n').slice(1)) {
    const fields = line.trim().split(/\s+/)
    const [local, remote, , , timer] = [fields[1], fields[2], fields[3], fields[4], fields[5]]
    if (local?.endsWith(`:${hexPort(serverPort)}`) && remote?.endsWith(`:${hexPort(clientPort)}`)) {
      return timer?.split(':')[0]
    }
  }
  return undefined
}

t.test(
  'accepted connections have TCP keepalive: a vanished peer is noticed without an idle timeout',
  { skip: existsSync('/proc/net/tcp') ? false : 'needs Linux /proc/net/tcp' },
  async (t) => {
    const server = await startServer(t, manager, { idleTimeoutMillis: 0 })
    const client = await LineClient.connect(server.lineAddress)
    t.teardown(() => client.destroy())
    await client.ok(`exists ${manager.generateId()}`)
    t.equal(
      serverSideTimer(server.lineAddress.port, client.socket.localPort as number),
      '02',
      'line protocol: the keepalive timer runs on the server side socket',
    )
    const http = await rawSocket(server.httpAddress!)
    t.teardown(() => http.destroy())
    const answer = received(http)
    http.write(`GET /sessions/${manager.generateId()} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`)
    await waitFor('the HTTP answer', () => server.stats().httpConnections === 1)
    await sleep(100)
    t.equal(
      serverSideTimer(server.httpAddress!.port, http.localPort as number),
      '02',
      'HTTP: the keepalive timer runs on the server side socket',
    )
    http.destroy()
    await answer
  },
)

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

t.test(
  'HTTP: pipelined requests run one at a time; a client that stops reading holds one answer',
  async (t) => {
    // Without batching, each read is its own statement: the count shows how many ran.
    const unbatched = await startManager(t, cluster, {
      batching: false,
      healthCheckIntervalMillis: 3_600_000,
      // The 512 KiB session's write timed out on every store once, at 1 s, on a loaded CI run.
      queryTimeoutMillis: 5000,
    })
    const server = await startServer(t, unbatched)
    const id = await unbatched.createSession({ big: 'x'.repeat(512 * 1024) })
    const get = `GET /sessions/${id} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`
    const socket = await rawSocket(server.httpAddress!)
    t.teardown(() => socket.destroy())
    socket.on('error', () => {})
    socket.pause() // reads nothing, ever
    const before = statementsSent(unbatched)
    const memoryBefore = process.memoryUsage().heapUsed
    let peakMemory = 0
    let peakBuffered = 0
    const sampler = setInterval(() => {
      peakMemory = Math.max(peakMemory, process.memoryUsage().heapUsed - memoryBefore)
      peakBuffered = Math.max(peakBuffered, server.stats().bufferedBytes)
    }, 10)
    t.teardown(() => clearInterval(sampler))
    socket.write(get.repeat(60))
    await sleep(1500)
    clearInterval(sampler)
    const ran = statementsSent(unbatched) - before
    // The reads whose answers the OS socket buffers take (a few of 512 KiB on loopback), and
    // one more whose answer waits: nothing more runs until the client reads.
    t.ok(ran <= 16, `${ran} statements sent for 60 pipelined requests (2 per read)`)
    t.ok(peakBuffered <= 1024 * 1024, `${peakBuffered} bytes of answers held: one answer`)
    t.ok(
      peakMemory < 32 * 1024 * 1024,
      `heap grew by ${Math.round(peakMemory / 1024 / 1024)} MiB at most`,
    )
    t.notOk(socket.destroyed, 'the connection is kept: 60 requests may wait')

    // A client that reads gets every answer, in order.
    const reader = await rawSocket(server.httpAddress!)
    const answers = received(reader)
    const missing = `GET /sessions/${unbatched.generateId()} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`
    reader.write(
      get +
        missing +
        get +
        missing +
        get +
        'GET /nowhere HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n',
    )
    const statuses = [...(await answers).matchAll(/HTTP\/1\.1 (\d{3}) /g)].map((m) => m[1])
    t.same(statuses, ['200', '404', '200', '404', '200', '404'], 'every answer, in order')

    // More waiting than that: the connection is closed, and still only one read ran.
    const flooder = await rawSocket(server.httpAddress!)
    const closed = received(flooder)
    flooder.pause()
    const beforeFlood = statementsSent(unbatched)
    t.teardown(() => flooder.destroy())
    flooder.write(get.repeat(200))
    const outcome = await Promise.race([
      closed.then(() => 'closed'),
      sleep(5000).then(() => 'still open'),
    ])
    t.equal(outcome, 'closed', 'a connection that pipelines 200 requests is closed')
    t.ok(statementsSent(unbatched) - beforeFlood <= 16, 'and only what it had begun ran')
  },
)

t.test('HTTP: a body sent one byte per segment holds about its size', async (t) => {
  const maxBodyBytes = 128 * 1024
  // Trickling takes 10 s or more on a busy machine: within the request deadline all the same.
  const server = await startServer(t, manager, { maxBodyBytes, requestTimeoutMillis: 120_000 })
  const id = await manager.createSession({})
  const body = Buffer.from(JSON.stringify({ big: 'x'.repeat(maxBodyBytes - 20) }))
  // With Content-Length, and chunked (the whole body in one chunk) without it.
  for (const framing of ['Content-Length', 'chunked'] as const) {
    const socket = await rawSocket(server.httpAddress!)
    t.teardown(() => socket.destroy())
    const answer = received(socket)
    const head =
      `PUT /sessions/${id} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n` +
      'Connection: close\r\n' +
      (framing === 'chunked'
        ? `Transfer-Encoding: chunked\r\n\r\n${body.length.toString(16)}\r\n`
        : `Content-Length: ${body.length}\r\n\r\n`)
    const grown = await growthWhileTrickling(socket, head, body.subarray(0, -1))
    t.ok(
      grown < 8 * maxBodyBytes,
      `${framing}: memory grew by ${grown} bytes for a ${body.length}-byte body`,
    )
    socket.write(body.subarray(-1))
    if (framing === 'chunked') socket.write('\r\n0\r\n\r\n')
    t.match(await answer, /^HTTP\/1\.1 200 /, `${framing}: the PUT is answered`)
    t.same(await manager.readSession(id), JSON.parse(body.toString()), `${framing}: stored`)
  }
})

t.test('HTTP: slow headers and endless bodies are cut', async (t) => {
  const server = await startServer(t, manager, { requestTimeoutMillis: 500, maxBodyBytes: 1024 })
  const address = server.httpAddress!
  const slow = await rawSocket(address)
  const slowAnswer = received(slow)
  slow.write('GET /sessions HTTP/1.1\r\nHost: 127.0.0.1\r\n')
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
      `${method} /sessions/${id} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: ${type}\r\nTransfer-Encoding: chunked\r\n\r\n`,
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
  // Cut off, the client cannot learn what became of its request: it is not carried out.
  t.same(await manager.readSession(id), { kept: true }, 'the DELETE cut off is not done')
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

t.test(
  'requests parsed ahead behind a lock wait hold about 2 x maxBodyBytes, lines included',
  async (t) => {
    // The read-ahead bound counted payloads only: 63 requests of 60 KB lines (`exists <id>`
    // with a 60,000-character id) were all parsed and held while the first waited for a lock,
    // and bufferedBytes reported none of it.
    const maxBodyBytes = 4096
    const server = await startServer(t, manager, { maxBodyBytes, lockWaitMillis: 30_000 })
    const blocker = await manager.lockSession(manager.generateId(), { leaseMillis: 60_000 })
    t.teardown(() => blocker.release().catch(() => {}))
    const client = await LineClient.connect(server.lineAddress)
    t.teardown(() => client.destroy())
    const lineCount = 63
    const idLength = 60_000
    const before = await liveBytes()
    let text = `open ${blocker.sessionId} w\n`
    // Each id distinct, so that nothing is shared between the lines.
    for (let i = 0; i < lineCount; i++) {
      text += `exists ${String(i).padStart(4, '0')}${'x'.repeat(idLength - 4)}\n`
    }
    client.write(text)
    text = ''
    await waitFor('requests parsed ahead', () => server.stats().queuedRequests >= 1)
    await sleep(300)
    const grown = (await liveBytes()) - before
    const { queuedRequests, bufferedBytes } = server.stats()
    const held = queuedRequests * idLength
    t.ok(held <= 2 * maxBodyBytes + idLength, `${queuedRequests} requests parsed ahead`)
    t.ok(grown < 1024 * 1024, `memory grew by ${grown} bytes for one connection`)
    t.ok(bufferedBytes >= held, `bufferedBytes (${bufferedBytes}) counts them (${held})`)
    await blocker.release()
    t.same(await client.answer(), { ok: true }, 'open w once the lock is free')
    for (let i = 0; i < lineCount; i++) await client.answer()
    await client.ok('close')
  },
)

t.test('an error message quotes client text bounded and without control characters', async (t) => {
  // The bad-mode error of `open` quoted the mode raw and whole.
  const server = await startServer(t, manager)
  const client = await LineClient.connect(server.lineAddress)
  t.teardown(() => client.destroy())
  const mode = `\u001b[2J\u0000${'m'.repeat(60_000)}`
  const answer = await client.request(`open ${manager.generateId()} ${mode}`)
  t.match(answer, { ok: false, code: 'BAD_REQUEST' })
  const message = answer.ok ? '' : answer.message
  t.ok(message.length < 200, `the message is ${message.length} characters long`)
  t.notOk(/[\u0000-\u001f]/.test(message), 'and holds no control characters')
})

t.test('line: refusals past maxConnections are bounded too', async (t) => {
  // Each refused connection is answered, then closed within a second: a flood of them held a
  // socket and a timer each, without bound. Past 64 more than maxConnections, Node drops them.
  const server = await startServer(t, manager, { maxConnections: 1 })
  const held = await LineClient.connect(server.lineAddress)
  t.teardown(() => held.destroy())
  const flood = await Promise.all(
    Array.from(
      { length: 150 },
      () =>
        new Promise<string>((resolve) => {
          // Half-open: the client never closes its side, so an answered refusal lingers.
          const socket = connect({
            port: server.lineAddress.port,
            host: '127.0.0.1',
            allowHalfOpen: true,
          })
          let text = ''
          socket.setEncoding('utf8').on('data', (chunk: string) => (text += chunk))
          socket.on('error', () => {})
          // The server's FIN ends it (an answered refusal, or one Node dropped unanswered).
          socket.once('end', () => resolve(text))
          socket.once('close', () => resolve(text))
          t.teardown(() => socket.destroy())
        }),
    ),
  )
  const answered = flood.filter((text) => text.includes('TOO_MANY_CONNECTIONS')).length
  t.ok(answered > 0, `${answered} refusals answered`)
  t.ok(answered <= 64, 'no more than 64 at once')
  t.same(await held.ok('exists ' + manager.generateId()), { ok: true, word: '0' }, 'held serves')
})
