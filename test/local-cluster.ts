import { spawn } from 'node:child_process'
import { existsSync, statSync } from 'node:fs'
import { readdir, readFile } from 'node:fs/promises'
import { createServer, type Server } from 'node:net'
import path from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { inspect } from 'node:util'
import t, { type Test } from 'tap'
import {
  LocalStoreStartError,
  ServerBinaryNotFoundError,
  findServerBinary,
  startLocalCluster,
  type LocalCluster,
} from '../lib/local-cluster/index.js'
import { isAlive } from '../lib/local-cluster/leftovers.js'

const PASSWORD = 'pw-Do-Not-Leak-7f3a'

/** Polls until `pid` is gone: a SIGKILLed orphan dies a moment after the signal. */
async function waitDead(pid: number): Promise<boolean> {
  for (let i = 0; i < 100 && isAlive(pid); i++) await sleep(20)
  return !isAlive(pid)
}

function listen(port: number): Promise<Server> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(port, '127.0.0.1', () => resolve(server))
  })
}

/**
 * Runs a Node process that starts a one-store cluster, prints its baseDir and pids, then idles.
 * `withSignalExit` adds a signal-exit handler, as tap's test processes have.
 */
async function clusterInChildProcess(
  t: Test,
  { withSignalExit = false } = {},
): Promise<{
  child: ReturnType<typeof spawn>
  baseDir: string
  pids: number[]
}> {
  const script = [
    withSignalExit ? "import { onExit } from 'signal-exit'; onExit(() => {})" : '',
    `import { startLocalCluster } from ${JSON.stringify(path.resolve('lib/local-cluster/index.js'))}`,
    'const cluster = await startLocalCluster({ stores: 1 })',
    'console.log(JSON.stringify({ baseDir: cluster.baseDir, pids: cluster.stores.map((s) => s.pid) }))',
    'setInterval(() => {}, 1000)',
  ].join('\n')
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  t.teardown(() => {
    child.kill('SIGKILL')
  })
  const line = await new Promise<string>((resolve, reject) => {
    let output = ''
    child.stdout!.on('data', (chunk) => {
      output += String(chunk)
      const end = output.indexOf('\n')
      if (end >= 0) resolve(output.slice(0, end))
    })
    child.once('exit', (code) => reject(new Error(`child exited (${code}) before its cluster ran`)))
  })
  const { baseDir, pids } = JSON.parse(line) as { baseDir: string; pids: number[] }
  return { child, baseDir, pids }
}

/** Registers every test; they share `cluster`, and the last one stops it. */
function tests(cluster: LocalCluster): void {
  t.test('three stores start, each on its own port, each answering SELECT 1', async (t) => {
    t.same(
      cluster.stores.map((store) => store.id),
      ['store-a', 'store-b', 'store-c'],
    )
    t.equal(new Set(cluster.stores.map((store) => store.port)).size, 3, 'distinct ports')
    for (const store of cluster.stores) {
      t.ok(store.running, `${store.id} running`)
      t.same(await store.query('SELECT 1 AS one'), [{ one: 1 }], `${store.id} answers`)
      t.match(
        store.uri,
        new RegExp(`^mysql://shards:[^@]+@127\\.0\\.0\\.1:${store.port}/session_shards$`),
      )
      t.same(
        { ...store.config, password: '' },
        {
          id: store.id,
          host: '127.0.0.1',
          port: store.port,
          user: 'shards',
          password: '',
          database: 'session_shards',
        },
      )
    }
    t.same(
      cluster.storeConfigs().map((config) => config.id),
      ['store-a', 'store-b', 'store-c'],
    )
    const initFile = path.join(cluster.baseDir, 'store-a', 'init.sql')
    t.equal(statSync(initFile).mode & 0o777, 0o600, 'init file holding the password is private')
    t.notMatch(inspect(cluster.store('store-a')), cluster.store('store-a').config.password)
  })

  t.test('data written to a store survives kill() and start()', async (t) => {
    const store = cluster.store('store-a')
    await store.query('CREATE TABLE survives (id INT PRIMARY KEY, note VARCHAR(20))')
    await store.query('INSERT INTO survives VALUES (?, ?)', [1, 'before crash'])
    const { pid, port } = store
    await store.kill()
    t.notOk(store.running, 'not running after kill')
    t.equal(store.pid, undefined)
    t.notOk(isAlive(pid!), 'the process is gone')
    await t.rejects(store.query('SELECT 1', [], { timeoutMillis: 500 }), 'a killed store refuses')
    await store.start()
    t.equal(store.port, port, 'same port after restart')
    t.not(store.pid, pid, 'a new process')
    t.same(await store.query('SELECT id, note FROM survives'), [{ id: 1, note: 'before crash' }])
  })

  t.test(
    'a server that exits on its own says so, with its error log; kill() does not',
    async (t) => {
      const store = cluster.store('store-c')
      const warnings: Error[] = []
      const onWarning = (warning: Error & { code?: string }): void => {
        if (warning.code === 'SESSION_SHARDS_STORE_EXITED') warnings.push(warning)
      }
      process.on('warning', onWarning)
      t.teardown(() => process.off('warning', onWarning))
      await store.kill()
      await store.start()
      await sleep(200)
      t.same(warnings, [], 'kill() and start() are no news')
      const pid = store.pid!
      process.kill(pid, 'SIGKILL')
      for (let i = 0; i < 100 && warnings.length === 0; i++) await sleep(50)
      t.equal(warnings.length, 1, 'one warning')
      const message = warnings[0]?.message ?? ''
      t.match(message, `Store store-c (pid ${pid}) was killed by SIGKILL without kill() or stop()`)
      t.match(message, path.join(cluster.baseDir, 'store-c', 'error.log'), 'where its log is')
      t.match(message, /ready for connections/, 'the last lines of its log')
      t.notMatch(message, store.config.password, 'no password')
      t.notOk(store.running, 'not running')
      await store.start()
    },
  )

  t.test('each store keeps its temporary files in its own directory', async (t) => {
    // A server deletes every #sql file in its tmpdir as it starts: a shared /tmp would let a
    // store starting elsewhere delete a running one's temporary tables.
    const store = cluster.store('store-a')
    const [row] = await store.query<{ tmpdir: string }>('SELECT @@tmpdir AS tmpdir')
    t.equal(path.resolve(row!.tmpdir), path.join(cluster.baseDir, store.id, 'tmp'))
  })

  t.test('pause() makes queries time out; resume() makes them work again', async (t) => {
    const store = cluster.store('store-b')
    await store.pause()
    t.ok(store.paused)
    t.ok(store.running, 'a paused store still runs')
    // pause() resolves only once the signal has stopped every thread of the server.
    const threads = await readdir(`/proc/${store.pid}/task`)
    for (const tid of threads) {
      const stat = await readFile(`/proc/${store.pid}/task/${tid}/stat`, 'utf8')
      t.equal(stat.slice(stat.lastIndexOf(')') + 2)[0], 'T', `thread ${tid} is stopped`)
    }
    const started = Date.now()
    await t.rejects(
      store.query('SELECT 1', [], { timeoutMillis: 300 }),
      'query to a paused store fails',
    )
    t.ok(Date.now() - started < 3000, 'and fails after the timeout, not later')
    store.resume()
    t.notOk(store.paused)
    t.same(await store.query('SELECT 1 AS one'), [{ one: 1 }])
  })

  t.test('wipe() of a stopped store gives an empty database', async (t) => {
    const store = cluster.store('store-c')
    await store.query('CREATE TABLE doomed (id INT)')
    await t.rejects(
      store.wipe(),
      /stop\(\) or kill\(\) it before wipe\(\)/,
      'refuses while running',
    )
    await store.stop()
    t.notOk(store.running)
    await store.wipe()
    await store.start()
    t.same(await store.query('SHOW TABLES'), [], 'no tables')
    t.same(await store.query('SELECT CURRENT_USER() AS user'), [{ user: 'shards@127.0.0.1' }])
  })

  t.test('addStore() starts one more store', async (t) => {
    const store = await cluster.addStore('store-d')
    t.equal(cluster.store('store-d'), store)
    t.equal(cluster.stores.length, 4)
    t.same(await store.query('SELECT 1 AS one'), [{ one: 1 }])
    t.not(store.port, cluster.store('store-a').port)
    await t.rejects(cluster.addStore('store-d'), TypeError, 'ids are unique')
    t.throws(() => cluster.store('store-z'), /No store "store-z"/)
  })

  t.test('a failed start reports the error log and never the password', async (t) => {
    const own = await startLocalCluster({ stores: 1, password: PASSWORD })
    t.teardown(() => own.stop())
    const store = own.store('store-a')
    await store.kill()
    // Something else takes the port while the store is down.
    const squatter = await listen(store.port)
    t.teardown(() => new Promise((resolve) => squatter.close(resolve)))
    const error: unknown = await store.start().then(
      () => null,
      (error: unknown) => error,
    )
    t.type(error, LocalStoreStartError)
    const startError = error as LocalStoreStartError
    t.equal(startError.code, 'LOCAL_STORE_START_FAILED')
    t.equal(startError.storeId, 'store-a')
    t.match(startError.message, /during startup/)
    t.match(startError.errorLogTail, /Address already in use|Bind on TCP\/IP port/i)
    for (const text of [
      startError.message,
      startError.stack,
      inspect(startError),
      JSON.stringify(startError),
    ]) {
      t.notMatch(text ?? '', PASSWORD, 'no password in the error')
    }
    t.notOk(store.running)
    await new Promise((resolve) => squatter.close(resolve))
    await store.start()
    t.same(await store.query('SELECT 1 AS one'), [{ one: 1 }], 'starts once the port is free')
  })

  t.test('a serverBinary that does not run gives ServerBinaryNotFoundError', async (t) => {
    await t.rejects(startLocalCluster({ serverBinary: '/nonexistent/mariadbd' }), {
      name: 'ServerBinaryNotFoundError',
      code: 'SERVER_BINARY_NOT_FOUND',
      message: /serverBinary option/,
    })
    const message = new ServerBinaryNotFoundError().message
    t.notMatch(message, /\n/, 'one line')
    t.match(message, /apt-get install -y mariadb-server/)
    t.match(message, /SESSION_SHARDS_TEST_STORES/)
  })

  t.test('bad options are TypeErrors naming the option', async (t) => {
    await t.rejects(
      startLocalCluster({ stores: 0 }),
      new TypeError('stores option must be a positive integer'),
    )
    await t.rejects(startLocalCluster({ storeIds: ['a', 'a'] }), TypeError)
    await t.rejects(startLocalCluster({ password: 'two\nlines' }), /password option/)
  })

  for (const withSignalExit of [false, true]) {
    const also = withSignalExit ? ' that also has a signal-exit handler' : ''
    t.test(`SIGTERM to an owning process${also} kills its servers`, async (t) => {
      const { child, pids } = await clusterInChildProcess(t, { withSignalExit })
      const exited = new Promise((resolve) =>
        child.once('exit', (code, signal) => resolve(signal ?? code)),
      )
      t.ok(pids.every(isAlive), 'servers run')
      child.kill('SIGTERM')
      t.equal(await exited, 'SIGTERM', 'the signal is re-raised, so the process dies of it')
      for (const pid of pids) t.ok(await waitDead(pid), `server ${pid} is gone`)
    })
  }

  t.test('leftovers of a SIGKILLed owner are reaped by the next start', async (t) => {
    const { child, baseDir, pids } = await clusterInChildProcess(t)
    const exited = new Promise((resolve) => child.once('exit', resolve))
    child.kill('SIGKILL')
    await exited
    // Its servers outlive it now (unless another process's start reaped them already).
    const next = await startLocalCluster({ stores: 1 })
    await next.stop()
    for (const pid of pids) t.ok(await waitDead(pid), `leftover server ${pid} is gone`)
    t.notOk(existsSync(baseDir), 'leftover directory removed')
  })

  t.test('stop() kills every process, even a paused one, and removes baseDir', async (t) => {
    await cluster.store('store-b').pause()
    const pids = cluster.stores.map((store) => store.pid)
    t.equal(pids.filter((pid) => pid !== undefined).length, 4)
    await cluster.stop()
    for (const pid of pids) t.notOk(isAlive(pid!), `pid ${pid} is gone`)
    t.notOk(existsSync(cluster.baseDir), 'baseDir removed')
    t.ok(cluster.stores.every((store) => !store.running && !store.paused))
    await cluster.stop()
    t.pass('a second stop() resolves')
    await t.rejects(cluster.addStore('store-e'), /stopped/)
  })
}

// This file tests the launcher, so it starts its own stores even when SESSION_SHARDS_TEST_STORES
// is set; only where that is set because no server binary is installed is there nothing to test.
if (findServerBinary() === null && process.env['SESSION_SHARDS_TEST_STORES']) {
  t.plan(0, 'no mariadbd or mysqld on this machine')
} else {
  const cluster = await startLocalCluster({ stores: 3 })
  t.teardown(() => cluster.stop())
  tests(cluster)
}
