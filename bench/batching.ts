/**
 * Batching benchmark: readSession and writeSession with `batching` on and off, side by side in
 * one run with raw mysql2 single-row statements, express-mysql-session and connect-redis, at
 * 1, 16, 64 and 256 operations in flight; ops/s, p50, p99 and this process's CPU time per
 * operation. All cases run on the same machine: the session-shards and raw mysql2 cases on the
 * same 3 local MariaDB stores, express-mysql-session on a table of its own in the first of
 * them (one store, as people use it; copies 1 writes and their raw upsert also run on that
 * store alone, to tell what spreading over 3 server processes costs on shared cores from what
 * the statement costs), connect-redis on redis-servers this benchmark starts
 * and stops (nothing persisted; for writes also with an append-only file, appendfsync everysec
 * and always, since the library's writes are durable).
 * `npm run bench -- --suite batching [--seconds N] [--quick]`; the library is the compiled one
 * in dist/ (see bench/lib/built-library.ts). A full run also redraws
 * docs/performance-batching.svg (alone: `node --import tsx bench/batching-chart.ts`).
 */
import { writeFile } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { performance } from 'node:perf_hooks'
import { fileURLToPath } from 'node:url'
import { RedisStore } from 'connect-redis'
import session from 'express-session'
import type { SessionData as ExpressSessionData } from 'express-session'
import type { Pool } from 'mysql2/promise'
import { createClient } from 'redis'
import type { SessionData, SessionManager } from '../lib/index.js'
import type { LocalStoreConfig } from '../lib/local-cluster/index.js'
import { caseTiming, parseBenchArgs } from './lib/args.js'
import { chartCaption, renderBatchingChart } from './lib/batching-chart.js'
import { loadBuiltLibrary } from './lib/built-library.js'
import { watchConfigMismatches } from './lib/config-mismatch.js'
import type { Operation } from './lib/load.js'
import { runLoad } from './lib/load.js'
import { createProgress } from './lib/progress.js'
import { rawPool } from './lib/raw-pool.js'
import { RawStatements } from './lib/raw-statements.js'
import type { LocalRedis, RedisPersistence } from './lib/redis-server.js'
import { startRedisServer } from './lib/redis-server.js'
import { describeEnvironment, writeResults } from './lib/results.js'
import { RoundMeter } from './lib/round-meter.js'
import { runRounds } from './lib/rounds.js'
import { averageBytes, sessionData } from './lib/session-data.js'
import type { Summary } from './lib/stats.js'
import { relativeSpread, roundRates, summarize } from './lib/stats.js'
import { formatNumber, markdownTable } from './lib/table.js'
import { serverVersion as queryServerVersion, withLocalCluster } from './lib/with-cluster.js'

const USAGE = `Usage: npm run bench -- --suite batching [--seconds N] [--quick]

Starts 3 local MariaDB stores and three local redis-servers (not persisting, and with an
append-only file flushed every second or on every write), and compares readSession and
writeSession (batching on and off, copies 1 and 2) with raw mysql2 single-row statements,
express-mysql-session and connect-redis, at 1, 16, 64 and 256 operations in flight.

  --seconds N  timed seconds per case and in flight level (default 6; 1 with --quick)
  --quick      a short run to check that the benchmark works; not for citing (does not
               redraw docs/performance-batching.svg)`

const args = parseBenchArgs(USAGE)
const settings = {
  stores: 3,
  ...caseTiming(args),
  inFlight: [1, 16, 64, 256],
  sessions: args.quick ? 2_000 : 10_000,
  /** Per store and client, as the library's default `connectionsPerStore`. */
  connectionsPerStore: 10,
  ttlSeconds: 86_400,
  quick: args.quick,
}

const TABLE = 'sessions'
/** express-mysql-session's table, next to the library's in the first store. */
const EMS_TABLE = 'ems_sessions'
/**
 * The table of the one-store cases, also in the first store: copies 1 writes on the server
 * express-mysql-session writes on, beside those spread over every store (on this machine, 3
 * server processes sharing 2 cores answer a lone statement more slowly than one does).
 */
const ONE_STORE_TABLE = 'sessions_one_store'
/** The table of the copies 1 cases (spread over every store), filled like the others. */
const COPIES_1_TABLE = 'sessions_copies_1'
const CHART = new URL('../docs/performance-batching.svg', import.meta.url)
const library = await loadBuiltLibrary()
const {
  index: { createSessionManager, generateSessionId },
  placement: { classicOrder },
} = library
const raw = new RawStatements(library, TABLE, settings.ttlSeconds)
const rawOneStore = new RawStatements(library, ONE_STORE_TABLE, settings.ttlSeconds)
const progress = createProgress()

type Panel = 'read' | 'write'
type Kind = 'session-shards' | 'raw mysql2' | 'express-mysql-session' | 'connect-redis'

interface Case {
  panel: Panel
  name: string
  kind: Kind
  /** Copies written (1 for reads and the single-store stores). */
  copies: number
  /** Session-shards only. */
  batching: boolean | null
  operation: Operation
  /** Session-shards only: the manager whose statements are counted. */
  manager: SessionManager | null
}

interface CaseResult extends Summary {
  panel: Panel
  case: string
  kind: Kind
  copies: number
  batching: boolean | null
  inFlight: number
  /** Ops/s of each timed round: their spread shows how steady the machine was. */
  roundOpsPerSecond: number[]
  /** This Node process's user + system CPU time per operation, timed rounds (see the report). */
  cpuMicrosPerOp: number
  /** Statements the library sent per operation, timed rounds; session-shards only. */
  statementsPerOp: number | null
}

interface Target {
  target: string
  /** The figures compared, e.g. `40,123 / 13,456 ops/s`. */
  measured: string
  ratio: number
  /** `ratio` must be at least this (`atLeast`) or at most this (`atMost`). */
  bound: number
  rule: 'atLeast' | 'atMost'
  met: boolean
}

/** What express-session hands a store, and what the library takes. */
type StoredSession = ExpressSessionData & SessionData

interface Fixture {
  ids: string[]
  /** express-session-shaped: a `cookie` (express-session's Cookie) beside ~200 bytes of data. */
  data: StoredSession[]
  /** JSON of each item, as every store keeps it. */
  json: string[]
  /** Per id (same index): the raw pools of the stores the library uses, in its order. */
  rawOrder: Pool[][]
}

/** express-mysql-session's store, as far as this benchmark calls it (the package has no types). */
interface MySqlSessionStore {
  get(id: string, callback: (error: unknown, data?: ExpressSessionData | null) => void): void
  set(id: string, data: ExpressSessionData, callback: (error?: unknown) => void): void
  onReady(): Promise<void>
  close(): Promise<void>
}
type MySqlSessionStoreClass = new (options: Record<string, unknown>) => MySqlSessionStore
const createMySqlStoreClass = createRequire(import.meta.url)('express-mysql-session') as (
  expressSession: typeof session,
) => MySqlSessionStoreClass

const REDIS_PERSISTENCE: readonly RedisPersistence[] = ['none', 'everysec', 'always']

const startedAt = performance.now()
const environment = describeEnvironment()
/** Set once the run ends or a signal stops it. */
let stopping = false

await withLocalCluster(
  { stores: settings.stores },
  async (cluster) => {
    const configs = cluster.storeConfigs()
    const storeIds = configs.map((config) => config.id)
    // A table per copy count: managers with other copy counts on one table conflict, and
    // then read by quorum (see config-mismatch.ts).
    const manager = (copies: 1 | 2, batching: boolean): SessionManager =>
      createSessionManager({
        stores: configs,
        copies,
        batching,
        ...(copies === 1 ? { table: COPIES_1_TABLE } : {}),
      })
    const managers = {
      c1on: manager(1, true),
      c1off: manager(1, false),
      c2on: manager(2, true),
      c2off: manager(2, false),
      c1oneStore: createSessionManager({
        stores: configs.slice(0, 1),
        copies: 1,
        table: ONE_STORE_TABLE,
      }),
    }
    const mismatches = watchConfigMismatches(Object.values(managers))
    // trace: false as in the library's own pools, so both sides run the driver alike.
    const rawPools = new Map(
      configs.map((config) => [
        config.id,
        rawPool(config, settings.connectionsPerStore, { trace: false }),
      ]),
    )
    let mysqlStore: MySqlSessionStore | undefined
    const redisPeers: RedisPeer[] = []
    try {
      const serverVersion = await queryServerVersion(cluster)
      await managers.c2on.applySchema()
      await managers.c1oneStore.applySchema()
      await managers.c1on.applySchema()

      progress.update('starting redis-server ×3')
      // Not persisting (as sessions usually run), and with an append-only file flushed every
      // second or before every reply: the library's writes are durable, so these are its peers.
      for (const persistence of REDIS_PERSISTENCE)
        redisPeers.push(await startRedisPeer(persistence))
      const [redis, everysec, always] = redisPeers as [RedisPeer, RedisPeer, RedisPeer]
      const redisStore = redis.store

      mysqlStore = newMySqlStore(configs[0]!)
      await mysqlStore.onReady()

      const fixture = makeFixture(storeIds, rawPools)
      await populate(
        fixture,
        [managers.c2on, managers.c1on, managers.c1oneStore],
        mysqlStore,
        redisStore,
      )
      await checkSameAnswers(fixture, managers.c2on, mysqlStore, redisStore)

      const raw = rawOperations(fixture, rawPools.get(storeIds[0]!)!)
      const cases: Case[] = [
        libraryCase('read', 'readSession, batching on', managers.c2on, 2, true, fixture),
        libraryCase('read', 'readSession, batching off', managers.c2off, 2, false, fixture),
        otherCase('read', 'raw mysql2 SELECT', 'raw mysql2', 1, raw.read),
        otherCase('read', 'express-mysql-session get', 'express-mysql-session', 1, () =>
          mysqlGet(mysqlStore!, fixture),
        ),
        otherCase('read', 'connect-redis get', 'connect-redis', 1, () =>
          redisGet(redisStore, fixture),
        ),
        libraryCase('write', 'writeSession copies=1, batching on', managers.c1on, 1, true, fixture),
        libraryCase(
          'write',
          'writeSession copies=1, batching off',
          managers.c1off,
          1,
          false,
          fixture,
        ),
        libraryCase('write', 'writeSession copies=2, batching on', managers.c2on, 2, true, fixture),
        libraryCase(
          'write',
          'writeSession copies=2, batching off',
          managers.c2off,
          2,
          false,
          fixture,
        ),
        otherCase('write', 'raw mysql2 upsert ×1', 'raw mysql2', 1, raw.write1),
        otherCase('write', 'raw mysql2 upsert ×2 (parallel)', 'raw mysql2', 2, raw.write2),
        libraryCase(
          'write',
          'writeSession copies=1, one store',
          managers.c1oneStore,
          1,
          true,
          fixture,
        ),
        otherCase('write', 'raw mysql2 upsert ×1, one store', 'raw mysql2', 1, raw.write1OneStore),
        otherCase('write', 'express-mysql-session set', 'express-mysql-session', 1, () =>
          mysqlSet(mysqlStore!, fixture),
        ),
        otherCase('write', 'connect-redis set', 'connect-redis', 1, () =>
          redisSet(redisStore, fixture),
        ),
        otherCase('write', 'connect-redis set, AOF everysec', 'connect-redis', 1, () =>
          redisSet(everysec.store, fixture),
        ),
        otherCase('write', 'connect-redis set, AOF always', 'connect-redis', 1, () =>
          redisSet(always.store, fixture),
        ),
      ]

      const results: CaseResult[] = []
      const panels: Panel[] = ['read', 'write']
      const steps = panels.length * settings.inFlight.length
      let step = 0
      for (const panel of panels) {
        const contenders = cases.filter((c) => c.panel === panel)
        for (const inFlight of settings.inFlight) {
          step++
          results.push(...(await runLevel(contenders, inFlight, `${step}/${steps}`)))
        }
      }
      progress.clear()
      mismatches.check()

      const targets = evaluateTargets(results)
      const totalSeconds = (performance.now() - startedAt) / 1000
      const redisVersion = redis.server.version
      printReport(results, targets, serverVersion, redisVersion, fixture, totalSeconds)
      const file = await writeResults(
        'batching',
        {
          benchmark: 'batching',
          environment,
          server: serverVersion,
          redis: redisVersion,
          settings: {
            ...settings,
            library: 'dist/',
            dataBytes: averageBytes(fixture.data),
            expressMysqlSessionTable: `${EMS_TABLE} on ${storeIds[0]}`,
          },
          wallSeconds: totalSeconds,
          results,
          targets,
        },
        args,
      )
      console.log(`\nResults written to ${file}`)
      if (!settings.quick) {
        const caption = chartCaption({
          environment,
          server: serverVersion,
          redis: redisVersion,
          settings,
        })
        await writeFile(CHART, renderBatchingChart(results, caption))
        console.log(`Chart written to ${fileURLToPath(CHART)}`)
      }
    } finally {
      stopping = true
      progress.clear()
      await Promise.allSettled([
        ...Object.values(managers).map((m) => m.close()),
        ...[...rawPools.values()].map((pool) => pool.end()),
        mysqlStore?.close(),
        ...redisPeers.map(({ client }) => (client.isOpen ? client.close() : undefined)),
      ])
      await Promise.allSettled(redisPeers.map(({ server }) => server.stop()))
    }
  },
  () => {
    stopping = true
    progress.clear()
  },
)

/** A redis-server of this run, with its client (one connection) and connect-redis store. */
interface RedisPeer {
  server: LocalRedis
  client: ReturnType<typeof createClient>
  store: RedisStore
}

async function startRedisPeer(persistence: RedisPersistence): Promise<RedisPeer> {
  const server = await startRedisServer({ persistence })
  const client = createClient({ url: server.url })
  // A failing command fails its operation and stops the run; this only keeps the
  // reconnection errors after a stop from being thrown as unhandled 'error' events.
  client.on('error', (error: unknown) => {
    if (stopping) return
    progress.clear()
    console.error(`redis client (persistence ${persistence}):`, error)
  })
  await client.connect()
  return { server, client, store: new RedisStore({ client }) }
}

function newMySqlStore(config: LocalStoreConfig): MySqlSessionStore {
  const MySQLStore = createMySqlStoreClass(session)
  return new MySQLStore({
    host: config.host,
    port: config.port,
    user: config.user,
    password: config.password,
    database: config.database,
    // mysql2's default, and the library's connectionsPerStore.
    connectionLimit: settings.connectionsPerStore,
    schema: { tableName: EMS_TABLE },
  })
}

function makeFixture(storeIds: string[], rawPools: Map<string, Pool>): Fixture {
  const ids = Array.from({ length: settings.sessions }, () => generateSessionId())
  const data = ids.map((_, index): StoredSession => {
    // As express-session makes it (path '/', httpOnly, expires from maxAge); the typings
    // leave out the constructor's options.
    const cookie = new (
      session.Cookie as unknown as new (options: { maxAge: number }) => session.Cookie
    )({ maxAge: settings.ttlSeconds * 1000 })
    return { cookie, ...sessionData(index) }
  })
  const json = data.map((item) => JSON.stringify(item))
  // Computed before any timing, so the raw side pays nothing for placement.
  const rawOrder = ids.map((id) =>
    classicOrder(storeIds, id).map((storeId) => rawPools.get(storeId)!),
  )
  return { ids, data, json, rawOrder }
}

/**
 * The same sessions in every store: the library's (through each of `managers`),
 * express-mysql-session's, redis's.
 */
async function populate(
  fixture: Fixture,
  managers: SessionManager[],
  mysqlStore: MySqlSessionStore,
  redisStore: RedisStore,
): Promise<void> {
  const total = fixture.ids.length
  let next = 0
  await runLoad(
    async () => {
      const index = next++
      const id = fixture.ids[index]!
      const data = fixture.data[index]!
      await Promise.all([
        ...managers.map((manager) => manager.writeSession(id, data)),
        callback<void>((done) => mysqlStore.set(id, data, done)),
        callback<void>((done) => redisStore.set(id, data, done)),
      ])
    },
    {
      inFlight: 64,
      count: total,
      onProgress: (done) => progress.update(`populating ${done}/${total} sessions`),
    },
  )
}

/** Every side must read back the same session, or the comparison means nothing. */
async function checkSameAnswers(
  fixture: Fixture,
  manager: SessionManager,
  mysqlStore: MySqlSessionStore,
  redisStore: RedisStore,
): Promise<void> {
  for (const index of [0, Math.floor(fixture.ids.length / 2), fixture.ids.length - 1]) {
    const id = fixture.ids[index]!
    const answers = {
      'session-shards': await manager.readSession(id),
      'raw mysql2': await raw.read(fixture.rawOrder[index]!, id),
      'express-mysql-session': await callback((done) => mysqlStore.get(id, done)),
      'connect-redis': await callback((done) => redisStore.get(id, done)),
    }
    for (const [side, answer] of Object.entries(answers)) {
      if (JSON.stringify(answer) !== fixture.json[index]) {
        throw new Error(`Session ${index} reads back differently through ${side}.`)
      }
    }
  }
}

/** A Node-style callback API as a promise, the way express-session's callers see a store. */
function callback<T>(
  call: (done: (error?: unknown, value?: T) => void) => void,
): Promise<T | undefined> {
  return new Promise((resolve, reject) =>
    call((error, value) => (error ? reject(error) : resolve(value))),
  )
}

function randomIndex(fixture: Fixture): number {
  return Math.floor(Math.random() * fixture.ids.length)
}

function libraryCase(
  panel: Panel,
  name: string,
  manager: SessionManager,
  copies: 1 | 2,
  batching: boolean,
  fixture: Fixture,
): Case {
  const operation: Operation =
    panel === 'read'
      ? async () => {
          const data = await manager.readSession(fixture.ids[randomIndex(fixture)]!)
          if (data === null) throw new Error('readSession found no session; the fixture is broken.')
        }
      : async () => {
          const index = randomIndex(fixture)
          await manager.writeSession(fixture.ids[index]!, fixture.data[index]!)
        }
  return { panel, name, kind: 'session-shards', copies, batching, operation, manager }
}

function otherCase(
  panel: Panel,
  name: string,
  kind: Exclude<Kind, 'session-shards'>,
  copies: 1 | 2,
  operation: Operation,
): Case {
  return { panel, name, kind, copies, batching: null, operation, manager: null }
}

/**
 * The library's statements through plain mysql2 pools: its read on the store it reads first,
 * decoded as it decodes; its upsert, with the parameters StorePool sends, on the first 1 or 2
 * stores of the id's order (the 2 in parallel), or on `firstStore` alone (the one-store table).
 */
function rawOperations(
  fixture: Fixture,
  firstStore: Pool,
): Record<'read' | 'write1' | 'write2' | 'write1OneStore', Operation> {
  const write = (copies: 1 | 2) => async (): Promise<void> => {
    const index = randomIndex(fixture)
    await raw.write(fixture.rawOrder[index]!, fixture.ids[index]!, fixture.data[index], copies)
  }
  return {
    read: async () => {
      const index = randomIndex(fixture)
      await raw.read(fixture.rawOrder[index]!, fixture.ids[index]!)
    },
    write1: write(1),
    write2: write(2),
    write1OneStore: async () => {
      const index = randomIndex(fixture)
      await rawOneStore.write([firstStore], fixture.ids[index]!, fixture.data[index], 1)
    },
  }
}

async function mysqlGet(store: MySqlSessionStore, fixture: Fixture): Promise<void> {
  const id = fixture.ids[randomIndex(fixture)]!
  const data = await callback((done) => store.get(id, done))
  if (data == null)
    throw new Error('express-mysql-session found no session; the fixture is broken.')
}

async function mysqlSet(store: MySqlSessionStore, fixture: Fixture): Promise<void> {
  const index = randomIndex(fixture)
  await callback<void>((done) => store.set(fixture.ids[index]!, fixture.data[index]!, done))
}

async function redisGet(store: RedisStore, fixture: Fixture): Promise<void> {
  const id = fixture.ids[randomIndex(fixture)]!
  const data: unknown = await callback((done) => store.get(id, done))
  if (data == null) throw new Error('connect-redis found no session; the fixture is broken.')
}

async function redisSet(store: RedisStore, fixture: Fixture): Promise<void> {
  const index = randomIndex(fixture)
  await callback<void>((done) => store.set(fixture.ids[index]!, fixture.data[index]!, done))
}

function statementsSent(manager: SessionManager): number {
  return manager.stats().stores.reduce((sum, store) => sum + store.operations, 0)
}

/** One panel's cases at one in flight level, in interleaved rounds. */
async function runLevel(cases: Case[], inFlight: number, label: string): Promise<CaseResult[]> {
  const byName = new Map(cases.map((c) => [c.name, c]))
  const meter = new RoundMeter((name) => {
    const manager = byName.get(name)?.manager
    return manager === null || manager === undefined ? 0 : statementsSent(manager)
  })
  const outcome = await runRounds(
    cases.map((c) => ({ name: c.name, operation: c.operation })),
    {
      inFlight,
      rounds: settings.rounds,
      roundMillis: (settings.secondsPerCase * 1000) / settings.rounds,
      warmupMillis: settings.warmupMillis,
      onRound: (info) => {
        meter.onRound(info)
        progress.update(
          `[${label}] ${info.contender} · ${inFlight} in flight · ` +
            (info.warmup ? 'warm-up' : `round ${info.round}/${info.rounds}`),
        )
      },
    },
  )
  meter.finish()
  return cases.map((c) => {
    const { merged, rounds } = outcome.get(c.name)!
    const totals = meter.totals(c.name)
    return {
      panel: c.panel,
      case: c.name,
      kind: c.kind,
      copies: c.copies,
      batching: c.batching,
      inFlight,
      ...summarize(merged),
      roundOpsPerSecond: roundRates(rounds),
      cpuMicrosPerOp: totals.cpuMicros / merged.ops,
      statementsPerOp: c.manager === null ? null : totals.counted / merged.ops,
    }
  })
}

function find(results: CaseResult[], name: string, inFlight: number): CaseResult {
  const found = results.find((r) => r.case === name && r.inFlight === inFlight)
  if (found === undefined) throw new Error(`No result for ${name} at ${inFlight} in flight.`)
  return found
}

function evaluateTargets(results: CaseResult[]): Target[] {
  const throughput = (
    target: string,
    name: string,
    against: string,
    inFlight: number,
    bound: number,
  ): Target => {
    const ours = find(results, name, inFlight).opsPerSecond
    const theirs = find(results, against, inFlight).opsPerSecond
    const ratio = ours / theirs
    return {
      target,
      measured: `${formatNumber(ours)} / ${formatNumber(theirs)} ops/s`,
      ratio,
      bound,
      rule: 'atLeast',
      met: ratio >= bound,
    }
  }
  const latency = (operation: string, on: string, off: string): Target => {
    const ours = find(results, on, 1).p50Millis
    const unbatched = find(results, off, 1).p50Millis
    const ratio = ours / unbatched
    return {
      target: `${operation} p50 at 1 in flight within 10 % of batching off`,
      measured: `${formatNumber(ours * 1000)} / ${formatNumber(unbatched * 1000)} µs`,
      ratio,
      bound: 1.1,
      rule: 'atMost',
      met: ratio <= 1.1,
    }
  }
  return [
    throughput(
      'readSession at 64 in flight ≥ 2× raw single-row mysql2',
      'readSession, batching on',
      'raw mysql2 SELECT',
      64,
      2,
    ),
    throughput(
      'readSession at 64 in flight ≥ connect-redis get',
      'readSession, batching on',
      'connect-redis get',
      64,
      1,
    ),
    throughput(
      'writeSession copies=2 at 64 in flight ≥ 1.5× raw parallel single-row upserts',
      'writeSession copies=2, batching on',
      'raw mysql2 upsert ×2 (parallel)',
      64,
      1.5,
    ),
    latency('readSession', 'readSession, batching on', 'readSession, batching off'),
    latency(
      'writeSession copies=1',
      'writeSession copies=1, batching on',
      'writeSession copies=1, batching off',
    ),
    latency(
      'writeSession copies=2',
      'writeSession copies=2, batching on',
      'writeSession copies=2, batching off',
    ),
  ]
}

/** Ops/s against the raw mysql2 case doing the same statements, for session-shards rows. */
function versusRaw(results: CaseResult[], r: CaseResult): string {
  if (r.kind !== 'session-shards') return ''
  const raw =
    r.panel === 'read'
      ? 'raw mysql2 SELECT'
      : r.copies === 2
        ? 'raw mysql2 upsert ×2 (parallel)'
        : r.case.endsWith(', one store')
          ? 'raw mysql2 upsert ×1, one store'
          : 'raw mysql2 upsert ×1'
  return `${formatNumber(r.opsPerSecond / find(results, raw, r.inFlight).opsPerSecond, 2)}×`
}

function printReport(
  results: CaseResult[],
  targets: Target[],
  serverVersion: string,
  redisVersion: string,
  fixture: Fixture,
  totalSeconds: number,
): void {
  console.log(
    `## session-shards batching benchmark\n\n` +
      `${settings.stores} local stores (${serverVersion}) and local redis-servers ${redisVersion} ` +
      `(no persistence for reads; for writes also an append-only file with appendfsync ` +
      `everysec and always), Node ${environment.node}, ${environment.cpus} CPUs (${environment.cpuModel}) ` +
      `shared by client and servers; ${settings.sessions.toLocaleString('en-US')} sessions of ` +
      `~${averageBytes(fixture.data)} bytes of JSON shaped like express-session's (a cookie and ` +
      `~${averageBytes([sessionData(0)])} bytes of data), the same in every store; ` +
      `${settings.connectionsPerStore} connections per store and client ` +
      `(express-mysql-session and the one-store rows: the first store; connect-redis: one ` +
      `connection, redis v5 client); ` +
      `session-shards from dist/ (${environment.commit ?? 'no git'}), readSession with copies 2. ` +
      `${settings.secondsPerCase} s per row, in ${settings.rounds} rounds interleaved with ` +
      `the other rows of its table at the same in flight level.\n`,
  )
  for (const panel of ['read', 'write'] as const) {
    console.log(`### ${panel === 'read' ? 'Reads' : 'Writes'}\n`)
    console.log(
      markdownTable(
        [
          { header: 'case' },
          { header: 'in flight', align: 'right' },
          { header: 'ops/s', align: 'right' },
          { header: 'p50 ms', align: 'right' },
          { header: 'p99 ms', align: 'right' },
          { header: 'CPU µs/op', align: 'right' },
          { header: 'statements/op', align: 'right' },
          { header: 'vs raw mysql2', align: 'right' },
        ],
        results
          .filter((r) => r.panel === panel)
          .map((r) => [
            r.case,
            String(r.inFlight),
            formatNumber(r.opsPerSecond),
            formatNumber(r.p50Millis, 3),
            formatNumber(r.p99Millis, 3),
            formatNumber(r.cpuMicrosPerOp, 1),
            r.statementsPerOp === null ? '' : formatNumber(r.statementsPerOp, 2),
            versusRaw(results, r),
          ]),
      ),
    )
    console.log('')
  }
  console.log('### Targets\n')
  console.log(
    markdownTable(
      [
        { header: 'target' },
        { header: 'measured', align: 'right' },
        { header: 'ratio', align: 'right' },
        { header: 'met' },
      ],
      targets.map((t) => [
        t.target,
        t.measured,
        `${formatNumber(t.ratio, 2)}×`,
        t.met
          ? 'yes'
          : `no (needs ${t.rule === 'atLeast' ? '≥' : '≤'} ${formatNumber(t.bound, 2)}×)`,
      ]),
    ),
  )
  const spreads = results.map((r) => ({ r, spread: relativeSpread(r.roundOpsPerSecond) }))
  spreads.sort((a, b) => a.spread - b.spread)
  const median = spreads[Math.floor(spreads.length / 2)]!.spread
  const worst = spreads[spreads.length - 1]!
  console.log(
    `
CPU µs/op: this Node process's user + system CPU time over the row's timed rounds, divided by
its operations. It covers the client side only (the MariaDB and redis servers run in other
processes): the library or store module, its driver (mysql2, or the redis client), JSON and
the load generator's bookkeeping, which every row pays alike. Statements/op: statements
session-shards sent per operation (under 1 when batches carry several operations).
Ops/s of the ${settings.rounds} rounds of a row differ by ${formatNumber(median * 100)} % (median), ` +
      `at most ${formatNumber(worst.spread * 100)} % (${worst.r.case}, ${worst.r.inFlight} in flight); ` +
      'large spreads mean other load on the machine.',
  )
  console.log(`\nTotal time ${formatNumber(totalSeconds, 0)} s.`)
}
