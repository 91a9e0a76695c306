/**
 * Core benchmark: the library's readSession and writeSession against raw mysql2 running the
 * same SQL on the same stores, at 1, 16 and 64 operations in flight; plus the CPU cost of
 * computing a session's store order. Run with `npm run bench -- [--seconds N] [--quick]`.
 * The library is the compiled one in dist/ (see bench/lib/built-library.ts).
 */
import { performance } from 'node:perf_hooks'
import type { Pool } from 'mysql2/promise'
import type { SessionData, SessionManager } from '../lib/index.js'
import { caseTiming, parseBenchArgs } from './lib/args.js'
import { loadBuiltLibrary } from './lib/built-library.js'
import { watchConfigMismatches } from './lib/config-mismatch.js'
import type { Operation } from './lib/load.js'
import { runLoad } from './lib/load.js'
import { microsPerCall } from './lib/micro.js'
import { createProgress } from './lib/progress.js'
import { rawPool } from './lib/raw-pool.js'
import { RawStatements } from './lib/raw-statements.js'
import { describeEnvironment, writeResults } from './lib/results.js'
import { runRounds, timedRounds } from './lib/rounds.js'
import { averageBytes, sessionData } from './lib/session-data.js'
import type { Summary } from './lib/stats.js'
import { relativeSpread, roundRates, summarize } from './lib/stats.js'
import { formatNumber, LOAD_COLUMNS, loadCells, markdownTable } from './lib/table.js'
import { serverVersion as queryServerVersion, withLocalCluster } from './lib/with-cluster.js'

const USAGE = `Usage: npm run bench -- [--seconds N] [--quick]

Starts 3 local MariaDB stores and compares session-shards with raw mysql2 running the same
statements on the same stores, at 1, 16 and 64 operations in flight.

  --seconds N  timed seconds per case, in flight level and side (default 6; 1 with --quick)
  --quick      a short run to check that the benchmark works; not for citing`

const args = parseBenchArgs(USAGE)
const settings = {
  stores: 3,
  ...caseTiming(args),
  inFlight: [1, 16, 64],
  sessions: args.quick ? 2_000 : 10_000,
  /** Distinct ids for timing the uncached shuffle. */
  placementIds: args.quick ? 20_000 : 100_000,
  /** Matches the library's default `connectionsPerStore`. */
  connectionsPerStore: 10,
  ttlSeconds: 86_400,
}

const TABLE = 'sessions'
/** The copies 1 manager's table, filled like the other. */
const COPIES_1_TABLE = 'sessions_copies_1'
const library = await loadBuiltLibrary()
const {
  index: { createSessionManager, generateSessionId },
  placement: { classicOrder },
} = library
const raw = new RawStatements(library, TABLE, settings.ttlSeconds)
const progress = createProgress()

type CaseName = 'readSession' | 'writeSession copies=1' | 'writeSession copies=2'
type Side = 'library' | 'raw mysql2'

interface CaseResult extends Summary {
  case: CaseName
  side: Side
  inFlight: number
  /** Ops/s of each timed round: their spread shows how steady the machine was. */
  roundOpsPerSecond: number[]
  /** Library ops/s divided by raw ops/s at the same in flight level; on library rows only. */
  libraryToRaw: number | null
  /**
   * Statements the library sent per operation, warm-up included (from `stats()`); shows that
   * the gap to raw is not extra SQL. Library rows only.
   */
  statementsPerOp: number | null
}

interface Fixture {
  ids: string[]
  data: SessionData[]
  /** Per id (same index): the raw pools of the stores the library would use, in its order. */
  rawOrder: Pool[][]
}

/** Library operations started, counted inside the operations so that no wrapper adds cost. */
const libraryCalls = { count: 0 }

const startedAt = performance.now()
const environment = describeEnvironment()

await withLocalCluster(
  { stores: settings.stores },
  async (cluster) => {
    const configs = cluster.storeConfigs()
    const storeIds = configs.map((config) => config.id)
    const readManager = createSessionManager({ stores: configs, copies: 2 })
    const managers: Record<1 | 2, SessionManager> = {
      // A table of its own: managers with other copy counts on one table conflict, and then
      // read by quorum (see config-mismatch.ts).
      1: createSessionManager({ stores: configs, copies: 1, table: COPIES_1_TABLE }),
      2: readManager,
    }
    const mismatches = watchConfigMismatches(Object.values(managers))
    const rawPools = new Map(
      configs.map((config) => [config.id, rawPool(config, settings.connectionsPerStore)]),
    )
    try {
      const serverVersion = await queryServerVersion(cluster)
      await readManager.applySchema()
      await managers[1].applySchema()

      const fixture = makeFixture(storeIds, rawPools)
      await populate(readManager, fixture)
      await populate(managers[1], fixture)
      await checkSameAnswers(readManager, fixture)

      const placement = measurePlacement(storeIds, readManager, fixture)

      const results: CaseResult[] = []
      const plan: {
        name: CaseName
        manager: SessionManager
        library: Operation
        raw: Operation
      }[] = [
        {
          name: 'readSession',
          manager: readManager,
          library: libraryRead(readManager, fixture),
          raw: rawRead(fixture),
        },
        {
          name: 'writeSession copies=1',
          manager: managers[1],
          library: libraryWrite(managers[1], fixture),
          raw: rawWrite(fixture, 1),
        },
        {
          name: 'writeSession copies=2',
          manager: managers[2],
          library: libraryWrite(managers[2], fixture),
          raw: rawWrite(fixture, 2),
        },
      ]
      const steps = plan.length * settings.inFlight.length
      let step = 0
      for (const { name, manager, library, raw } of plan) {
        for (const inFlight of settings.inFlight) {
          step++
          const statementsBefore = statementsSent(manager)
          const callsBefore = libraryCalls.count
          const outcome = await runRounds(
            [
              { name: 'library', operation: library },
              { name: 'raw mysql2', operation: raw },
            ],
            timedRounds(
              settings,
              inFlight,
              `[${step}/${steps}] ${name} · ${inFlight} in flight`,
              progress,
            ),
          )
          const statementsPerOp =
            (statementsSent(manager) - statementsBefore) / (libraryCalls.count - callsBefore)
          const libraryOutcome = outcome.get('library')!
          const rawOutcome = outcome.get('raw mysql2')!
          const librarySummary = summarize(libraryOutcome.merged)
          const rawSummary = summarize(rawOutcome.merged)
          results.push(
            {
              case: name,
              side: 'library',
              inFlight,
              ...librarySummary,
              roundOpsPerSecond: roundRates(libraryOutcome.rounds),
              libraryToRaw: librarySummary.opsPerSecond / rawSummary.opsPerSecond,
              statementsPerOp,
            },
            {
              case: name,
              side: 'raw mysql2',
              inFlight,
              ...rawSummary,
              roundOpsPerSecond: roundRates(rawOutcome.rounds),
              libraryToRaw: null,
              statementsPerOp: null,
            },
          )
        }
      }
      progress.clear()
      mismatches.check()

      const readP50 = {
        library: results.find(
          (r) => r.case === 'readSession' && r.side === 'library' && r.inFlight === 1,
        )!.p50Millis,
        raw: results.find(
          (r) => r.case === 'readSession' && r.side === 'raw mysql2' && r.inFlight === 1,
        )!.p50Millis,
      }
      const totalSeconds = (performance.now() - startedAt) / 1000
      printReport(results, placement, readP50, serverVersion, totalSeconds)
      const file = await writeResults(
        'core',
        {
          benchmark: 'core',
          environment,
          server: serverVersion,
          settings: { ...settings, library: 'dist/', dataBytes: averageBytes(fixture.data) },
          wallSeconds: totalSeconds,
          results,
          placement: {
            ...placement,
            readRoundTripP50Micros: { library: readP50.library * 1000, raw: readP50.raw * 1000 },
          },
        },
        args,
      )
      console.log(`\nResults written to ${file}`)
    } finally {
      progress.clear()
      await Promise.allSettled([
        ...Object.values(managers).map((manager) => manager.close()),
        ...[...rawPools.values()].map((pool) => pool.end()),
      ])
    }
  },
  () => progress.clear(),
)

function makeFixture(storeIds: string[], rawPools: Map<string, Pool>): Fixture {
  const ids = Array.from({ length: settings.sessions }, () => generateSessionId())
  const data = ids.map((_, index) => sessionData(index))
  // Computed before any timing, so the raw side pays nothing for placement.
  const rawOrder = ids.map((id) =>
    classicOrder(storeIds, id).map((storeId) => rawPools.get(storeId)!),
  )
  return { ids, data, rawOrder }
}

async function populate(manager: SessionManager, fixture: Fixture): Promise<void> {
  let next = 0
  await runLoad(
    async () => {
      const index = next++
      await manager.writeSession(fixture.ids[index]!, fixture.data[index]!)
    },
    {
      inFlight: 64,
      count: fixture.ids.length,
      onProgress: (done) => progress.update(`populating ${done}/${fixture.ids.length} sessions`),
    },
  )
}

/** Both sides must read the same bytes from the same store, or the comparison means nothing. */
async function checkSameAnswers(manager: SessionManager, fixture: Fixture): Promise<void> {
  for (const index of [0, Math.floor(fixture.ids.length / 2), fixture.ids.length - 1]) {
    const id = fixture.ids[index]!
    const fromLibrary = await manager.readSession(id)
    const fromRaw = await raw.read(fixture.rawOrder[index]!, id)
    const expected = JSON.stringify(fixture.data[index])
    if (JSON.stringify(fromLibrary) !== expected || JSON.stringify(fromRaw) !== expected) {
      throw new Error(`Session ${index} reads back differently through the library and raw mysql2.`)
    }
  }
}

function statementsSent(manager: SessionManager): number {
  return manager.stats().stores.reduce((sum, store) => sum + store.operations, 0)
}

function randomIndex(fixture: Fixture): number {
  return Math.floor(Math.random() * fixture.ids.length)
}

function libraryRead(manager: SessionManager, fixture: Fixture): Operation {
  return async () => {
    libraryCalls.count++
    const data = await manager.readSession(fixture.ids[randomIndex(fixture)]!)
    if (data === null) throw new Error('readSession found no session; the fixture is broken.')
  }
}

/** The library's read statement on the store it reads first, decoded like the library does. */
function rawRead(fixture: Fixture): Operation {
  return async () => {
    const index = randomIndex(fixture)
    await raw.read(fixture.rawOrder[index]!, fixture.ids[index]!)
  }
}

function libraryWrite(manager: SessionManager, fixture: Fixture): Operation {
  return async () => {
    libraryCalls.count++
    const index = randomIndex(fixture)
    await manager.writeSession(fixture.ids[index]!, fixture.data[index]!)
  }
}

/** The library's upsert on the first `copies` stores of the id's order, in parallel. */
function rawWrite(fixture: Fixture, copies: 1 | 2): Operation {
  return async () => {
    const index = randomIndex(fixture)
    await raw.write(fixture.rawOrder[index]!, fixture.ids[index]!, fixture.data[index], copies)
  }
}

interface PlacementCost {
  /** `classicOrder` on ids never seen before: the seeded shuffle itself. */
  classicOrderUncachedMicros: number
  /** `manager.locate` on ids whose order is cached. */
  locateCachedMicros: number
  ids: number
}

function measurePlacement(
  storeIds: string[],
  manager: SessionManager,
  fixture: Fixture,
): PlacementCost {
  progress.update('timing placement')
  const fresh = Array.from({ length: settings.placementIds }, () => generateSessionId())
  const classicOrderUncachedMicros = microsPerCall(fresh, (id) => classicOrder(storeIds, id))
  // Every fixture id is in the manager's order cache since populate() wrote it.
  const warm = Array.from(
    { length: settings.placementIds },
    (_, index) => fixture.ids[index % fixture.ids.length]!,
  )
  const locateCachedMicros = microsPerCall(warm, (id) => manager.locate(id))
  return { classicOrderUncachedMicros, locateCachedMicros, ids: settings.placementIds }
}

function printReport(
  results: CaseResult[],
  placement: PlacementCost,
  readP50: { library: number; raw: number },
  serverVersion: string,
  totalSeconds: number,
): void {
  console.log(
    `## session-shards core benchmark\n\n` +
      `${settings.stores} local stores (${serverVersion}), Node ${environment.node}, ` +
      `${environment.cpus} CPUs (${environment.cpuModel}) shared by client and servers; ` +
      `${settings.sessions.toLocaleString('en-US')} sessions of ~${averageBytes([sessionData(0)])} bytes of JSON, ` +
      `${settings.connectionsPerStore} connections per store on each side; library from dist/ ` +
      `(${environment.commit ?? 'no git'}). ` +
      `${settings.secondsPerCase} s per row, in ${settings.rounds} rounds interleaved with its counterpart.\n`,
  )
  console.log(
    markdownTable(
      [
        { header: 'case' },
        { header: 'side' },
        ...LOAD_COLUMNS,
        { header: 'library/raw ops/s', align: 'right' },
      ],
      results.map((r) => [
        r.case,
        r.side,
        ...loadCells(r),
        r.libraryToRaw === null ? '' : `${formatNumber(r.libraryToRaw, 2)}×`,
      ]),
    ),
  )
  const perOp = [...new Set(results.map((r) => r.case))].map((name) => {
    const values = results.flatMap((r) =>
      r.case === name && r.statementsPerOp !== null ? [r.statementsPerOp] : [],
    )
    return `${name} ${values.map((value) => formatNumber(value, 2)).join('/')}`
  })
  const spreads = results.map((r) => ({ r, spread: relativeSpread(r.roundOpsPerSecond) }))
  spreads.sort((a, b) => a.spread - b.spread)
  const median = spreads[Math.floor(spreads.length / 2)]!.spread
  const worst = spreads[spreads.length - 1]!
  console.log(
    `
Statements the library sent per operation (1/16/64 in flight): ${perOp.join('; ')}.
` +
      `Ops/s of the ${settings.rounds} rounds of a row differ by ${formatNumber(median * 100)} % (median), ` +
      `at most ${formatNumber(worst.spread * 100)} % (${worst.r.case}, ${worst.r.side}, ${worst.r.inFlight} in flight); ` +
      'large spreads mean other load on the machine.',
  )
  const share = (micros: number, p50Millis: number): string =>
    `${formatNumber((micros / (p50Millis * 1000)) * 100, 2)} %`
  console.log(
    `\nCPU cost of computing a session's store order (${placement.ids.toLocaleString('en-US')} ids), ` +
      `next to a read round trip at 1 in flight (p50: library ${formatNumber(readP50.library * 1000)} µs, ` +
      `raw ${formatNumber(readP50.raw * 1000)} µs):\n`,
  )
  console.log(
    markdownTable(
      [
        { header: 'step' },
        { header: 'µs per op', align: 'right' },
        { header: 'share of raw read p50', align: 'right' },
      ],
      [
        [
          'classicOrder, uncached',
          formatNumber(placement.classicOrderUncachedMicros, 2),
          share(placement.classicOrderUncachedMicros, readP50.raw),
        ],
        [
          'manager.locate, cached',
          formatNumber(placement.locateCachedMicros, 2),
          share(placement.locateCachedMicros, readP50.raw),
        ],
      ],
    ),
  )
  console.log(`\nTotal time ${formatNumber(totalSeconds, 0)} s.`)
}
