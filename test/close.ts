import { execFile, spawn } from 'node:child_process'
import { once } from 'node:events'
import { promisify } from 'node:util'
import t from 'tap'
import { ManagerClosedError } from '../lib/index.js'
import { startTestCluster } from './helpers/cluster.js'
import { grayManagers } from './helpers/gray.js'
import { idWithOrderPrefix, startManager } from './helpers/manager.js'
import { sleep, waitFor } from './helpers/wait.js'

const cluster = await startTestCluster(t, { stores: 2 })
const crashTest = cluster.canCrash ? t.test.bind(t) : t.skip.bind(t)
const [a, b] = [cluster.stores[0]!, cluster.stores[1]!]
const FIXTURE = new URL('./fixtures/close-and-exit.ts', import.meta.url).pathname

t.test('close() settles pending work and refuses new work', async (t) => {
  const manager = await startManager(t, cluster, { copies: 2 })
  const ids = await Promise.all(Array.from({ length: 20 }, (_, i) => manager.createSession({ i })))
  const pending = ids.map((id) => manager.readSession(id))
  await manager.close()
  t.same(
    (await Promise.all(pending)).map((data) => data?.i),
    ids.map((_, i) => i),
    'reads in flight when close() was called completed',
  )
  await t.rejects(manager.readSession(ids[0]!), ManagerClosedError)
  await t.rejects(manager.createSession({}), ManagerClosedError)
  await manager.close()
})

t.test('after close() the process exits on its own: no socket or timer left open', async (t) => {
  const { stdout } = await promisify(execFile)(process.execPath, ['--import', 'tsx', FIXTURE], {
    env: { ...process.env, STORES: JSON.stringify(cluster.storeConfigs()) },
    timeout: 20_000,
  })
  t.equal(stdout, JSON.stringify(Array.from({ length: 20 }, (_, i) => i)))
})

t.test('close() ends while a hedged read still hangs on a store', async (t) => {
  const timeoutMillis = 1000
  const { faulty, proxies } = await grayManagers(t, cluster, [a.id], {
    copies: 2,
    healthCheckIntervalMillis: 3_600_000,
    queryTimeoutMillis: timeoutMillis,
  })
  const proxy = proxies.get(a.id)!
  const id = idWithOrderPrefix(faulty, [a.id, b.id])
  await faulty.writeSession(id, { v: 1 })
  await waitFor('the read lease to hold', async () => {
    await faulty.readSession(id)
    return faulty.stats().readLease?.holds === true
  })
  proxy.setFault({ kind: 'hang-data' })
  // Asks a alone, hangs there, and is answered by b through the hedge: a's statement runs on,
  // counted by no one, until its deadline.
  t.same(await faulty.readSession(id), { v: 1 }, 'read through the hedge')
  const outcome = await Promise.race([
    faulty.close().then(() => 'closed'),
    sleep(3 * timeoutMillis).then(() => 'still closing'),
  ])
  t.equal(outcome, 'closed', 'close() ended within three query timeouts')
  await waitFor('the proxy to have no connection left', () => proxy.connections === 0, 2000)
  t.pass('no connection left open')
})

crashTest('after close() the process exits on its own while a store is paused', async (t) => {
  const child = spawn(process.execPath, ['--import', 'tsx', FIXTURE], {
    env: { ...process.env, STORES: JSON.stringify(cluster.storeConfigs()), WAIT_BEFORE_CLOSE: '1' },
    stdio: ['pipe', 'pipe', 'inherit'],
  })
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
    b.resume()
  })
  let stdout = ''
  child.stdout.setEncoding('utf8')
  const ready = new Promise<void>((resolve) =>
    child.stdout.on('data', (chunk: string) => {
      stdout += chunk
      if (stdout.startsWith('read\n')) resolve()
    }),
  )
  const exited = once(child, 'exit')
  await ready
  await b.pause()
  // The child closes once it has this line; b stays paused until the child has exited.
  child.stdin.end('close\n')
  const started = Date.now()
  const outcome = await Promise.race([exited, sleep(20_000).then(() => 'still running')])
  t.same(outcome, [0, null], `the child exited on its own (${Date.now() - started} ms after close)`)
  t.equal(stdout, `read\n${JSON.stringify(Array.from({ length: 20 }, (_, i) => i))}`)
})
