import t from 'tap'
import type { Test } from 'tap'
import { once } from 'node:events'
import { connect, createServer } from 'node:net'
import type { AddressInfo } from 'node:net'
import mysql from 'mysql2/promise'
import { FaultProxy } from '../lib/local-cluster/index.js'
import { driverOptions, startTestCluster } from './helpers/cluster.js'

// The fault proxy the gray-failure tests put between one manager and one store: each fault
// does what it says to a real MySQL-protocol connection, and healing ends it.
const cluster = await startTestCluster(t, { stores: 1 })
const store = cluster.stores[0]!

async function proxied(
  t: Test,
): Promise<{ proxy: FaultProxy; connect(): Promise<mysql.Connection> }> {
  const proxy = await FaultProxy.start({ host: store.host, port: store.port })
  t.teardown(() => proxy.close())
  const connect = async (): Promise<mysql.Connection> => {
    const connection = await mysql.createConnection({
      ...driverOptions(store.config),
      port: proxy.port,
      connectTimeout: 500,
    })
    t.teardown(() => connection.destroy())
    return connection
  }
  return { proxy, connect }
}

/** How a query through `connection` ends within `millis`: its result, an error code, or 'hang'. */
async function outcome(query: Promise<unknown>, millis = 600): Promise<string> {
  const timer = new Promise<string>((resolve) => setTimeout(() => resolve('hang'), millis).unref())
  return Promise.race([
    query.then(
      () => 'answer',
      (error: { code?: string }) => `error ${error.code ?? 'unknown'}`,
    ),
    timer,
  ])
}

t.test('latency holds every chunk back, per direction', async (t) => {
  const { proxy, connect } = await proxied(t)
  const connection = await connect()
  proxy.setFault({ kind: 'latency', toStoreMillis: 150, toClientMillis: 100 })
  const started = performance.now()
  await connection.query('SELECT 1')
  t.ok(performance.now() - started >= 240, 'a round trip takes both delays')
  proxy.heal()
  const healed = performance.now()
  await connection.query('SELECT 1')
  t.ok(performance.now() - healed < 200, 'healed: no delay')
})

t.test(
  'bytes delayed when latency ends still arrive before later ones, as TCP delivers',
  async (t) => {
    // A TCP echo server as the target: the order of the bytes is all this test looks at.
    const echo = createServer((socket) => socket.pipe(socket))
    await new Promise<void>((resolve) => echo.listen(0, '127.0.0.1', resolve))
    t.teardown(() => echo.close())
    const proxy = await FaultProxy.start({
      host: '127.0.0.1',
      port: (echo.address() as AddressInfo).port,
    })
    t.teardown(() => proxy.close())
    const client = connect(proxy.port, '127.0.0.1')
    t.teardown(() => client.destroy())
    await once(client, 'connect')
    let received = ''
    client.on('data', (chunk: Buffer) => (received += chunk.toString()))
    proxy.setFault({ kind: 'latency', toStoreMillis: 200, toClientMillis: 0 })
    client.write('first ')
    await new Promise((resolve) => setTimeout(resolve, 50))
    proxy.heal()
    client.write('second')
    await new Promise((resolve) => setTimeout(resolve, 400))
    t.equal(received, 'first second')
  },
)

t.test('blackhole: connections accepted, nothing answered; reset: refused', async (t) => {
  const { proxy, connect } = await proxied(t)
  const open = await connect()
  proxy.setFault({ kind: 'blackhole' })
  t.equal(await outcome(open.query('SELECT 1')), 'hang', 'an open connection hangs')
  t.match(await outcome(connect(), 1500), /^error |hang/, 'a new one never gets a greeting')
  proxy.setFault({ kind: 'reset' })
  t.match(await outcome(connect(), 1500), /^error /, 'reset: a new connection fails at once')
  proxy.heal()
  t.equal(await outcome((await connect()).query('SELECT 1')), 'answer', 'healed')
})

t.test('hang-data: prepared statements hang, text queries answer', async (t) => {
  const { proxy, connect } = await proxied(t)
  const connection = await connect()
  proxy.setFault({ kind: 'hang-data' })
  t.equal(await outcome(connection.query("SHOW GLOBAL STATUS LIKE 'Uptime'")), 'answer', 'probe')
  t.equal(await outcome(connection.execute('SELECT ? AS x', [1])), 'hang', 'data path')
  proxy.heal()
  t.equal(await outcome((await connect()).execute('SELECT ? AS x', [1])), 'answer', 'healed')
})

t.test('stall: nothing forwarded during the stall, then everything', async (t) => {
  const { proxy, connect } = await proxied(t)
  const connection = await connect()
  proxy.setFault({ kind: 'stall', stallMillis: 300, periodMillis: 1000 })
  const started = performance.now()
  await connection.query('SELECT 1')
  const took = performance.now() - started
  t.ok(
    took >= 200 && took < 900,
    `a query sent at the start of a stall waits for its end (${took.toFixed(0)} ms)`,
  )
  proxy.heal()
})

t.test(
  'answered: resolves when the store answered the matching request, before a delay',
  async (t) => {
    const { proxy, connect } = await proxied(t)
    const [other, connection] = [await connect(), await connect()]
    proxy.setFault({ kind: 'latency', toStoreMillis: 0, toClientMillis: 800 })
    let answeredAt = Number.POSITIVE_INFINITY
    const answered = proxy.answered((request) => request.includes('marked-request'))
    void answered.then(() => (answeredAt = performance.now()))
    // Another connection's answer, which leaves the store first, is not the one waited for.
    const started = performance.now()
    const unrelated = other.query('SELECT SLEEP(0.05)')
    const query = connection.query("SELECT SLEEP(0.3), 'marked-request'")
    await Promise.all([unrelated, query])
    const received = performance.now()
    t.ok(answeredAt - started >= 290, 'once the store ran that request (not at the other answer)')
    t.ok(received - answeredAt >= 700, 'as soon as the answer left the store, not when it arrived')
  },
)
