import t from 'tap'
import type { Test } from 'tap'
import mysql from 'mysql2/promise'
import {
  FAULT_KINDS,
  faultPlacement,
  GRAY_ROTATION,
  injectFault,
} from '../lib/cli/workload/chaos-faults.js'
import { FaultProxy } from '../lib/local-cluster/index.js'
import type { LocalStore } from '../lib/local-cluster/index.js'
import { driverOptions, startTestCluster } from './helpers/cluster.js'

// The chaos run's proxy faults do to real connections what their names say, to the stores they
// name, and ending them heals every proxy they touched.
const cluster = await startTestCluster(t, { stores: 2 })
const [first, second] = cluster.stores as [LocalStore, LocalStore]

async function proxyTo(t: Test, store: LocalStore): Promise<FaultProxy> {
  const proxy = await FaultProxy.start({ host: store.host, port: store.port })
  t.teardown(() => proxy.close())
  return proxy
}

/** A connection to `store` through `proxy`, opened while the proxy is healthy. */
async function through(t: Test, store: LocalStore, proxy: FaultProxy): Promise<mysql.Connection> {
  const connection = await mysql.createConnection({
    ...driverOptions(store.config),
    port: proxy.port,
  })
  t.teardown(() => connection.destroy())
  return connection
}

/** How long `SELECT 1` takes, or 'hang' past `millis`. */
async function roundTrip(connection: mysql.Connection, millis = 800): Promise<number | 'hang'> {
  const started = performance.now()
  const timer = new Promise<'hang'>((resolve) => setTimeout(() => resolve('hang'), millis).unref())
  const answered = connection.query('SELECT 1').then(() => Math.round(performance.now() - started))
  return Promise.race([answered, timer])
}

t.test('slow-and-blackhole: the store slow but answering, the next one blackholed', async (t) => {
  const [slowProxy, nextProxy] = [await proxyTo(t, first), await proxyTo(t, second)]
  const [slow, next] = [await through(t, first, slowProxy), await through(t, second, nextProxy)]
  const fault = await injectFault('slow-and-blackhole', {
    store: first,
    proxy: slowProxy,
    next: { store: second, proxy: nextProxy },
    stores: cluster.stores,
    maxMillis: 10_000,
  })
  t.match(fault.label, new RegExp(`${first.id} and blackhole to ${second.id} for app server 1`))
  const slowTrip = await roundTrip(slow)
  t.ok(
    typeof slowTrip === 'number' && slowTrip >= 115,
    `the slow store answers, after both delays (${String(slowTrip)} ms)`,
  )
  t.equal(await roundTrip(next, 600), 'hang', 'the next store answers nothing')
  await fault.end()
  // The blackholed connection's query may still be held: a new one shows the proxy healed.
  const healedTrip = await roundTrip(await through(t, second, nextProxy))
  t.ok(typeof healedTrip === 'number' && healedTrip < 100, 'ended: the next store answers')
  const slowHealed = await roundTrip(slow)
  t.ok(typeof slowHealed === 'number' && slowHealed < 100, 'ended: the slow store is not slow')
})

t.test('slow: within the query timeout, past the longest hedge delay', async (t) => {
  const proxy = await proxyTo(t, first)
  const connection = await through(t, first, proxy)
  const fault = await injectFault('slow', {
    store: first,
    proxy,
    next: { store: second, proxy: undefined },
    stores: cluster.stores,
    maxMillis: 10_000,
  })
  const trip = await roundTrip(connection)
  // The library hedges after at most 100 ms and times a statement out after 1 s (the chaos
  // run's queryTimeoutMillis): a slow store is between the two.
  t.ok(typeof trip === 'number' && trip > 100 && trip < 500, `answered in ${String(trip)} ms`)
  await fault.end()
})

t.test('slow-and-blackhole runs only when named', async (t) => {
  t.ok(FAULT_KINDS.includes('slow-and-blackhole'))
  t.notOk(GRAY_ROTATION.includes('slow-and-blackhole'), 'not in the gray rotation')
  t.ok(
    GRAY_ROTATION.every((kind) => FAULT_KINDS.includes(kind)),
    'every rotation kind is a kind',
  )
})

t.test('where each kind of fault goes, and which store going down detects it', async (t) => {
  const every = ['a', 'b', 'c']
  for (const [kind, target, detectedBy] of [
    ['blackhole', 'a', ['a']],
    ['slow', 'a', ['a']],
    ['kill', 'a', ['a']],
    ['slow-and-blackhole', 'a+b', ['b']],
    ['starve', 'every store', every],
  ] as const) {
    t.same(faultPlacement(kind, 'a', 'b', every), { target, detectedBy }, kind)
  }
})
