import { mkdtemp, rm } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { performance } from 'node:perf_hooks'
import t from 'tap'
import { InvalidOptionError } from '../lib/index.js'
import { finished, spawnCli } from './helpers/cli.js'
import { startTestCluster } from './helpers/cluster.js'
import { startManager } from './helpers/manager.js'
import { rowsLeft, withExpiredSessions } from './helpers/expired-sessions.js'
import { sleep, waitFor } from './helpers/wait.js'

// A sweep stops when asked (`signal`, Ctrl-C in the CLI) after the batch in progress, and says
// so: a stopped sweep is not reported as every store swept.
const cluster = await startTestCluster(t, { stores: 3 })

t.test('sm.sweep({ signal }) stops after the batch in progress', async (t) => {
  const { manager } = await withExpiredSessions(t, cluster, { table: 'sweep_stop', count: 40 })
  const before = await rowsLeft(cluster, 'sweep_stop')
  const stop = new AbortController()
  const result = await manager.sweep({
    batchSize: 2,
    signal: stop.signal,
    onProgress: () => stop.abort(),
  })
  t.equal(result.stopped, true, 'the result says it stopped')
  t.ok(
    result.stores.every((store) => store.deleted <= 2),
    'one batch per store at most',
  )
  t.equal(await rowsLeft(cluster, 'sweep_stop'), before - result.deleted, 'the rest is left')
  t.ok(result.deleted < before, `${result.deleted} of ${before} rows deleted`)

  const preAborted = await manager.sweep({ batchSize: 2, signal: AbortSignal.abort() })
  t.same(
    { deleted: preAborted.deleted, stopped: preAborted.stopped },
    { deleted: 0, stopped: true },
    'an aborted signal: nothing deleted',
  )

  const rest = await manager.sweep({ batchSize: 100 })
  t.equal(rest.stopped, undefined, 'a sweep to the end is not stopped')
  t.equal(await rowsLeft(cluster, 'sweep_stop'), 0, 'and deletes what was left')
  await t.rejects(
    manager.sweep({ signal: {} as AbortSignal }),
    InvalidOptionError,
    'a signal that is not an AbortSignal is refused',
  )
})

const crashTest = cluster.canCrash ? t.test.bind(t) : t.skip.bind(t)

crashTest('a stop is not held up by a hung store (a statement deadline away)', async (t) => {
  const manager = await startManager(t, cluster, {
    table: 'sweep_stop_hung',
    sweepIntervalSeconds: 0,
    queryTimeoutMillis: 20_000,
  })
  const hung = cluster.stores[2]!
  await hung.pause()
  t.teardown(() => hung.resume())
  for (const signal of [AbortSignal.abort(), AbortSignal.timeout(300)]) {
    const started = performance.now()
    const result = await manager.sweep({ signal })
    const millis = performance.now() - started
    t.equal(result.stopped, true, 'stopped')
    t.ok(millis < 10_000, `resolved in ${Math.round(millis)} ms, not after queryTimeoutMillis`)
  }
})

t.test('session-shards sweep: Ctrl-C stops it, exit 130', async (t) => {
  await withExpiredSessions(t, cluster, { table: 'sessions', count: 150 })
  const cwd = await mkdtemp(path.join(os.tmpdir(), 'session-shards-sweep-stop-'))
  t.teardown(() => rm(cwd, { recursive: true, force: true }))
  const before = await rowsLeft(cluster, 'sessions')
  const child = spawnCli(['sweep', '--json', '--batch-size', '1', '--duty-cycle', '0.02'], {
    cwd,
    env: {
      SESSION_SHARDS_STORES: cluster.stores.map((store) => `${store.id}=${store.uri}`).join(','),
    },
  })
  const run = finished(child)
  await waitFor(
    'the sweep to delete a row',
    async () => (await rowsLeft(cluster, 'sessions')) < before,
  )
  child.kill('SIGINT')
  const { code, stdout, stderr } = await run
  t.equal(code, 130, 'exit 130')
  t.match(stderr, /stopping after the batch in progress/, 'it says it is stopping')
  const result = JSON.parse(stdout) as { ok: boolean; stopped?: boolean; deleted: number }
  t.same({ ok: result.ok, stopped: result.stopped }, { ok: false, stopped: true })
  await sleep(100)
  const left = await rowsLeft(cluster, 'sessions')
  t.equal(left, before - result.deleted, `the rest is left (${left} of ${before} rows)`)
  t.ok(left > 0, 'stopped before the end')
})
