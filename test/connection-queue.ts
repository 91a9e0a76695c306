import { Socket } from 'node:net'
import t from 'tap'
import mysqlPromise from 'mysql2/promise'
import mysql from 'mysql2'
import type { Pool } from 'mysql2'
import { StoreBusyError, StoreTimeoutError } from '../lib/index.js'
import { resolveOptions } from '../lib/options.js'
import { PREPARED_STATEMENTS_PER_CONNECTION, StoreConnection } from '../lib/store/connection.js'
import { paddedCount, sessionStatements } from '../lib/store/statements.js'
import type { Statement } from '../lib/store/statements.js'
import { driverOptions, startTestCluster } from './helpers/cluster.js'
import { startManager } from './helpers/manager.js'
import { sleep, waitFor } from './helpers/wait.js'

// Every buffer, queue, timer and connection has a bound: callers waiting for one of a store's
// connections leave the wait at their deadline (with their statement's input), and no more than
// maxOperationsInFlight wait at once; mysql2's own wait queue, which a caller cannot leave,
// is never used. It matters while circuits stay closed: with most stores hung at once every
// timeout is put down to the manager's own slowness.
const cluster = await startTestCluster(t, { stores: 3 })
const crashTest = cluster.canCrash ? t.test.bind(t) : t.skip.bind(t)

/** Every pool the library creates from now on, to watch mysql2's wait queue (an internal). */
const pools: Pool[] = []
const createPool = mysql.createPool
mysql.createPool = ((config: never) => {
  const pool = createPool(config)
  pools.push(pool)
  return pool
}) as typeof mysql.createPool
t.teardown(() => {
  mysql.createPool = createPool
})

/** Every store connection that runs a statement, to watch its own wait for a connection. */
const connections = new Set<StoreConnection>()
const run = StoreConnection.prototype.run
StoreConnection.prototype.run = function (this: StoreConnection, ...args) {
  connections.add(this)
  return run.apply(this, args)
} as typeof run
t.teardown(() => {
  StoreConnection.prototype.run = run
})

/** Callbacks queued in mysql2 for a connection of `pool`. */
function driverQueue(pool: Pool): number {
  return (pool as unknown as { _connectionQueue: { length: number } })._connectionQueue.length
}

function select(sql: string): Statement<string, unknown, unknown> {
  return { text: () => sql, params: () => [], decode: (rows) => rows }
}

crashTest(
  'two of three stores hung: waiters leave at their deadline, nothing queues in the driver',
  async (t) => {
    const workers = 64
    const queryTimeoutMillis = 1000
    for (const batching of [false, true]) {
      pools.length = 0
      connections.clear()
      const manager = await startManager(t, cluster, {
        copies: 2,
        minCopies: 1,
        connectionsPerStore: 2,
        queryTimeoutMillis,
        connectTimeoutMillis: queryTimeoutMillis,
        // No health probe joins the wait once the stores are found up: only the workload does.
        healthCheckIntervalMillis: 60_000,
        batching,
      })
      const ids = await Promise.all(
        Array.from({ length: 50 }, (_, i) => manager.createSession({ i, pad: 'x'.repeat(1000) })),
      )
      const hung = cluster.stores.slice(0, 2)
      for (const store of hung) await store.pause()
      t.teardown(() => {
        for (const store of hung) if (store.paused) store.resume()
      })
      let stop = false
      let settled = 0
      let longestDriver = 0
      let longestOwn = 0
      const waitingNow = (): number[] => [
        ...pools.map(driverQueue),
        ...[...connections].map((connection) => connection.waiting),
      ]
      const sampler = setInterval(() => {
        for (const pool of pools) longestDriver = Math.max(longestDriver, driverQueue(pool))
        for (const connection of connections) {
          longestOwn = Math.max(longestOwn, connection.waiting)
        }
      }, 10)
      const worker = async (w: number): Promise<void> => {
        for (let n = 0; !stop; n++) {
          const id = ids[(w * 7 + n) % ids.length]!
          await (
            n % 3 === 0
              ? manager.writeSession(id, { w, n, pad: 'y'.repeat(1000) })
              : n % 3 === 1
                ? manager.readSession(id)
                : manager.updateSession(id, (data) => ({ ...data, n }))
          ).catch(() => {})
          settled++
          // A call refused before any statement settles without I/O: a loop of them alone
          // would never let the timers run.
          await new Promise((resolve) => setImmediate(resolve))
        }
      }
      const running = Array.from({ length: workers }, (_, w) => worker(w))
      await sleep(4000)
      stop = true
      await Promise.all(running)
      clearInterval(sampler)
      // Background work (read repairs, hints, the config guard) may still start statements, but
      // no waiter outlives its deadline.
      let left = waitingNow()
      await waitFor(
        'no waiter',
        () => (left = waitingNow()).every((waiting) => waiting === 0),
        2 * queryTimeoutMillis,
      ).catch(() => {})
      t.ok(settled > workers, `${settled} operations settled (batching ${batching})`)
      // Each caller waits for one connection at most, and leaves at its deadline: the wait
      // is of the order of the operations in flight (a few statements each), not of time.
      t.ok(
        longestDriver <= workers,
        `mysql2's wait queue stayed within the operations in flight: ${longestDriver} ≤ ${workers} (batching ${batching})`,
      )
      t.ok(
        longestOwn <= 4 * workers,
        `the wait for a store's connections stayed within a few statements per operation: ${longestOwn} ≤ 4 × ${workers} (batching ${batching})`,
      )
      t.same(
        left,
        left.map(() => 0),
        `soon after the last operation settled, nothing waits for a connection (batching ${batching})`,
      )
      t.comment(
        `circuits: ${manager
          .stats()
          .stores.map((store) => store.state)
          .join(', ')}`,
      )
      for (const store of hung) store.resume()
      await manager.close()
    }
  },
)

crashTest('a waiter leaves the queue at its deadline; past the bound one is refused', async (t) => {
  const store = cluster.stores[0]!
  const options = resolveOptions({
    stores: cluster.storeConfigs().slice(0, 1),
    connectionsPerStore: 1,
    connectTimeoutMillis: 300,
    queryTimeoutMillis: 300,
    maxOperationsInFlight: 5,
  })
  pools.length = 0
  const connection = new StoreConnection(options.stores[0]!, options)
  t.teardown(() => connection.close())
  t.same(await connection.run(select('SELECT 1 AS one'), ''), [{ one: 1 }], 'the store answers')
  await store.pause()
  t.teardown(() => (store.paused ? store.resume() : undefined))
  const started = performance.now()
  const calls = Array.from({ length: 8 }, () => connection.run(select('SELECT 2 AS two'), ''))
  const outcomes = await Promise.allSettled(calls)
  const reasons = outcomes.map((outcome) =>
    outcome.status === 'rejected' ? (outcome.reason as Error).constructor.name : 'fulfilled',
  )
  t.same(
    reasons,
    [...Array(6).fill('StoreTimeoutError'), ...Array(2).fill('StoreBusyError')],
    'one on the connection and 5 waiting time out; the 2 past maxOperationsInFlight are refused',
  )
  const busy = (outcomes[7] as PromiseRejectedResult).reason as StoreBusyError
  t.ok(busy instanceof StoreBusyError, 'a StoreBusyError')
  t.match(busy, {
    code: 'STORE_BUSY',
    storeId: store.id,
    limit: 5,
    message: /maxOperationsInFlight/,
  })
  t.ok(performance.now() - started < 600, 'each within its deadline')
  t.equal(connection.waiting, 0, 'no waiter is left once they all timed out')
  t.same(pools.map(driverQueue), [0], 'and none in the driver')
  // Later callers wait again, up to the bound: the expired ones left room.
  const again = await Promise.allSettled(
    Array.from({ length: 5 }, () => connection.run(select('SELECT 3 AS three'), '')),
  )
  t.ok(
    again.every((o) => o.status === 'rejected' && o.reason instanceof StoreTimeoutError),
    'the next 5 wait (and time out): the expired waiters left room',
  )
  store.resume()
  await waitFor('the store to answer again', () =>
    connection.run(select('SELECT 4 AS four'), '').then(
      () => true,
      () => false,
    ),
  )
  t.equal(connection.waiting, 0)
})

function rawStatement(sql: string): Statement<string, unknown, unknown> {
  return { text: () => sql, params: () => [], decode: (rows) => rows }
}

/** Sockets of this process still open to `port` (not destroyed, whatever their state). */
function openSocketsTo(port: number): number {
  const handles = (process as unknown as { _getActiveHandles(): unknown[] })._getActiveHandles()
  return handles.filter((h) => h instanceof Socket && !h.destroyed && h.remotePort === port).length
}

t.test(
  'a statement past its deadline leaves no socket open beyond connectionsPerStore',
  async (t) => {
    const store = cluster.stores[0]!
    const admin = await mysqlPromise.createConnection(driverOptions(store.config))
    t.teardown(() => admin.end())
    await admin.query(
      'CREATE TABLE IF NOT EXISTS held_rows (id INT PRIMARY KEY, n INT NOT NULL) ENGINE=InnoDB',
    )
    await admin.query('INSERT IGNORE INTO held_rows VALUES (1, 0)')
    // Another client holds the row: the store accepts connections and answers everything
    // else, but this row's updates wait (up to innodb_lock_wait_timeout, 50 s).
    const holder = await mysqlPromise.createConnection(driverOptions(store.config))
    t.teardown(() => holder.end())
    await holder.query('BEGIN')
    await holder.query('SELECT * FROM held_rows WHERE id = 1 FOR UPDATE')

    // The test's own two connections (admin, holder).
    const baseline = openSocketsTo(store.port)
    const options = resolveOptions({
      stores: cluster.storeConfigs().slice(0, 1),
      connectionsPerStore: 2,
      queryTimeoutMillis: 200,
    })
    const connection = new StoreConnection(options.stores[0]!, options)
    t.teardown(() => connection.close())
    await connection.run(rawStatement('SELECT 1'), '')
    const timeouts = 12
    for (let i = 0; i < timeouts; i++) {
      await t.rejects(
        connection.run(rawStatement('UPDATE held_rows SET n = n + 1 WHERE id = 1'), ''),
        { code: 'STORE_TIMEOUT' },
      )
    }
    await sleep(200)
    const open = openSocketsTo(store.port) - baseline
    const [rows] = await admin.query(
      "SELECT COUNT(*) AS n FROM information_schema.PROCESSLIST WHERE INFO LIKE 'UPDATE held_rows%'",
    )
    t.ok(
      open <= 2,
      `sockets open to the store after ${timeouts} timeouts: ${open} (connectionsPerStore 2); ` +
        `statements still running on the server: ${(rows as { n: number }[])[0]!.n}`,
    )
    await holder.query('ROLLBACK')
    await waitFor(
      'the half-closed sockets to close',
      () => openSocketsTo(store.port) - baseline <= 2,
      5000,
    )
  },
)

t.test(
  'prepared statements stay bounded per connection, whatever batch sizes callers pass',
  async (t) => {
    // Each batch size is a statement text of its own (its LIMIT), prepared on the server once per
    // connection: unbounded, one caller's many sizes would use up the server's
    // max_prepared_stmt_count (16,382 by default), for every app server on it.
    const manager = await startManager(t, cluster, {
      copies: 1,
      connectionsPerStore: 1,
      sweepIntervalSeconds: 0,
    })
    const store = cluster.stores[0]!
    const prepared = async (): Promise<number> => {
      const [status] = await store.query("SHOW GLOBAL STATUS LIKE 'Prepared_stmt_count'")
      return Number(status.Value)
    }
    const before = await prepared()
    for (let batchSize = 1; batchSize <= PREPARED_STATEMENTS_PER_CONNECTION + 100; batchSize++) {
      await manager.sweep({ batchSize })
    }
    const added = (await prepared()) - before
    t.ok(
      added <= PREPARED_STATEMENTS_PER_CONNECTION,
      `${added} statements prepared on the store by its one connection`,
    )
    t.equal((await manager.sweep()).stores[0]!.error, undefined, 'and sweeps still work')
  },
)

t.test('reads of any number of ids take one of a few statement texts', async (t) => {
  const statements = sessionStatements('sessions')
  const ids = (count: number): string[] => Array.from({ length: count }, (_, i) => `id-${i}`)
  const inList = (text: string): number => (text.match(/\?/g) ?? []).length
  for (const [count, sent] of [
    [1, 1],
    [2, 2],
    [3, 4],
    [5, 8],
    [64, 64],
    [65, 128],
    [100, 128],
  ] as const) {
    const read = statements.readMany
    t.equal(inList(read.text(ids(count))), sent, `readMany of ${count}: ${sent} placeholders`)
    t.equal(paddedCount(count), sent)
    const params = read.params(ids(count))
    t.equal(params.length, sent, `${count}: as many ids sent`)
    t.same(new Set(params), new Set(ids(count)), `${count}: the same ids, no other`)
    const split = { whole: ids(count).slice(0, 1), digest: ids(count + 1).slice(1) }
    const both = statements.readCopiesAndDigests
    const bothParams = both.params(split)
    t.equal(inList(both.text(split)), bothParams.length, `${count}: every placeholder bound`)
    t.same(
      new Set(bothParams.slice(0, bothParams.length / 2)),
      new Set([...split.whole, null]),
      `${count}: data only for the whole ids`,
    )
  }
})
