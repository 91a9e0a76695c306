import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import t from 'tap'
import { ManagerClosedError } from '../lib/index.js'
import { startTestCluster } from './helpers/cluster.js'
import { startManager } from './helpers/manager.js'

const cluster = await startTestCluster(t, { stores: 2 })

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
  const script = new URL('./fixtures/close-and-exit.ts', import.meta.url).pathname
  const { stdout } = await promisify(execFile)(process.execPath, ['--import', 'tsx', script], {
    env: { ...process.env, STORES: JSON.stringify(cluster.storeConfigs()) },
    timeout: 20_000,
  })
  t.equal(stdout, JSON.stringify(Array.from({ length: 20 }, (_, i) => i)))
})
