/**
 * Contention benchmark, on 3 local stores with 2 copies:
 * 1. updateSession and increment with 64 calls in flight on one session and spread over 1,000
 *    sessions, side by side in interleaved rounds, with blind writeSession over 1,000 sessions
 *    as the ceiling. Every counter is checked against the calls that succeeded: a lost update
 *    shows as MISMATCH and fails the run.
 * 2. list() and count() over 1,000,000 sessions (100,000 with --quick), bulk-loaded with raw
 *    multi-row INSERTs onto the stores the library places them on, with the peak memory of the
 *    listing.
 * `npm run bench` runs it after the core benchmark; alone: `npm run build`, then
 * `node --import tsx bench/contention.ts [--seconds N] [--quick]`. The library is the compiled
 * one in dist/ (see bench/lib/built-library.ts).
 */
import { performance } from 'node:perf_hooks'
import type { Pool } from 'mysql2/promise'
import type { SessionManager } from '../lib/index.js'
import { caseTiming, parseBenchArgs } from './lib/args.js'
import { loadBuiltLibrary } from './lib/built-library.js'
import { bulkLoadSessions, settleStores } from './lib/bulk-load.js'
import type { Operation } from './lib/load.js'
import { runLoad } from './lib/load.js'
import { runIsolated } from './lib/isolated.js'
import type { ListingProbeInput, ListingProbeOutput } from './lib/listing-probe.js'
import type { MemoryPeak } from './lib/memory.js'
import { createProgress } from './lib/progress.js'
import { rawPool } from './lib/raw-pool.js'
import { describeEnvironment, writeResults } from './lib/results.js'
import { runRounds } from './lib/rounds.js'
import { averageBytes, sessionData } from './lib/session-data.js'
import type { Summary } from './lib/stats.js'
import { relativeSpread, roundRates, summarize } from './lib/stats.js'
import { formatNumber, markdownTable } from './lib/table.js'
import { serverVersion as queryServerVersion, withLocalCluster } from './lib/with-cluster.js'

const USAGE = `Usage: node --import tsx bench/contention.ts [--seconds N] [--quick]
(npm run bench builds the library and runs this after the core benchmark)

Starts 3 local MariaDB stores (copies 2) and measures updateSession and increment with 64
calls in flight on one session and over 1,000 sessions (blind writeSession as the ceiling),
checking every counter; then list() and count() over 1,000,000 bulk-loaded sessions, with
peak memory.

  --seconds N  timed seconds per case (default 6; 1 with --quick)
  --quick      a short run to check that the benchmark works (100,000 sessions to list);
               not for citing`

const args = parseBenchArgs(USAGE)
const settings = {
  stores: 3,
  copies: 2,
  ...caseTiming(args),
  inFlight: 64,
  /** Sessions the spread cases pick from at random, per method. */
  spreadSessions: 1_000,
  listSessions: args.quick ? 100_000 : 1_000_000,
  rowsPerInsert: 5_000,
  memorySampleMillis: 50,
  /** Longest wait for the stores to write back what the load dirtied. */
  settleMillis: 60_000,
  ttlSeconds: 86_400,
}

/** The contention cases use the default table; the listing has a table of its own. */
const LIST_TABLE = 'listed_sessions'
const {
  index: { createSessionManager, generateSessionId, VersionConflictError },
} = await loadBuiltLibrary()
const progress = createProgress()

type Method = 'updateSession' | 'increment' | 'writeSession'

/** What one method's calls did, warm-up included; counted inside the calls. */
interface Tally {
  succeeded: number
  /** Calls that gave up with a VersionConflictError once their retries were spent. */
  gaveUp: number
  /** Read-change-write cycles: calls of the change function. */
  attempts: number
  /** Most cycles one call took. */
  maxAttempts: number
}

interface Case {
  method: Method
  sessions: number
  manager: SessionManager
  ids: string[]
  tally: Tally
  /** False for writeSession, which has no cycles to count. */
  countsAttempts: boolean
  operation: Operation
}

interface CounterCheck {
  /** Successful calls, warm-up included. */
  expected: number
  /** Sum of the counters read back through the library. */
  counted: number
  ok: boolean
}

interface ContentionResult extends Summary {
  case: Method
  sessions: number
  inFlight: number
  roundOpsPerSecond: number[]
  /** Timed calls that gave up with VersionConflictError (not in ops or latencies). */
  gaveUp: number
  /** Same, warm-up included. */
  gaveUpTotal: number
  /** (change-function calls − successes) / successes, timed rounds; null for blind writes. */
  extraAttemptsPerSuccess: number | null
  /** Most read-change-write cycles one call took, warm-up included; null for blind writes. */
  maxAttempts: number | null
  /** Statements the manager sent per successful call, timed rounds. */
  statementsPerSuccess: number
  /** The counters against the successful calls; null for blind writes. */
  check: CounterCheck | null
}

interface ListingStep {
  step: 'bulk load' | 'list()' | 'count()'
  sessions: number
  seconds: number
  perSecond: number
  /** Null for the bulk load, whose memory is the loader's, not the library's. */
  memory: MemoryPeak | null
  /** For list() and count(): as many as were loaded (list(): each greater than the one before). */
  ok: boolean | null
}

const startedAt = performance.now()
const environment = describeEnvironment()
let failedChecks = 0
/** Time the stores took to write back what the bulk load dirtied, before the listing. */
let settleSeconds = 0

await withLocalCluster(
  { stores: settings.stores },
  async (cluster) => {
    const configs = cluster.storeConfigs()
    const managers: SessionManager[] = []
    const newManager = (table?: string): SessionManager => {
      const manager = createSessionManager({
        stores: configs,
        copies: settings.copies,
        ...(table === undefined ? {} : { table }),
      })
      managers.push(manager)
      return manager
    }
    const rawPools = new Map<string, Pool>(configs.map((config) => [config.id, rawPool(config, 2)]))
    try {
      const serverVersion = await queryServerVersion(cluster)
      await newManager().applySchema()

      const contentionStarted = performance.now()
      const contention: ContentionResult[] = []
      const groups: { sessions: number; methods: Method[] }[] = [
        { sessions: 1, methods: ['updateSession', 'increment'] },
        {
          sessions: settings.spreadSessions,
          methods: ['updateSession', 'increment', 'writeSession'],
        },
      ]
      for (const [index, group] of groups.entries()) {
        const cases: Case[] = []
        for (const method of group.methods) {
          cases.push(await prepareCase(newManager(), method, group.sessions))
        }
        contention.push(...(await runGroup(cases, `${index + 1}/${groups.length}`)))
      }
      const contentionSeconds = (performance.now() - contentionStarted) / 1000
      await Promise.allSettled(managers.splice(0).map((manager) => manager.close()))

      const listing = await measureListing(newManager(LIST_TABLE), rawPools, configs)
      progress.clear()

      failedChecks =
        contention.filter((r) => r.check !== null && !r.check.ok).length +
        listing.filter((step) => step.ok === false).length
      const totalSeconds = (performance.now() - startedAt) / 1000
      printReport(contention, listing, serverVersion, contentionSeconds, totalSeconds)
      const file = await writeResults(
        'contention',
        {
          benchmark: 'contention',
          environment,
          server: serverVersion,
          settings: { ...settings, library: 'dist/', dataBytes: averageBytes([sessionData(0)]) },
          wallSeconds: totalSeconds,
          contention,
          listing,
          settleSeconds,
        },
        args,
      )
      console.log(`\nResults written to ${file}`)
    } finally {
      progress.clear()
      await Promise.allSettled([
        ...managers.map((manager) => manager.close()),
        ...[...rawPools.values()].map((pool) => pool.end()),
      ])
    }
  },
  () => progress.clear(),
)
if (failedChecks > 0) {
  console.error(`\n${failedChecks} correctness check(s) failed: see MISMATCH above.`)
  process.exitCode = 1
}

/** A counter session (~200 bytes of data and `n: 0`) per id, and the operation that drives them. */
async function prepareCase(
  manager: SessionManager,
  method: Method,
  sessions: number,
): Promise<Case> {
  const ids = Array.from({ length: sessions }, () => generateSessionId())
  let next = 0
  await runLoad(
    async () => {
      const index = next++
      await manager.writeSession(ids[index]!, { ...sessionData(index), n: 0 })
    },
    { inFlight: Math.min(64, sessions), count: sessions },
  )
  const tally: Tally = { succeeded: 0, gaveUp: 0, attempts: 0, maxAttempts: 0 }
  const pick = sessions === 1 ? () => ids[0]! : () => ids[Math.floor(Math.random() * sessions)]!
  const counted = async (call: Promise<unknown>): Promise<void> => {
    try {
      await call
      tally.succeeded++
    } catch (error) {
      if (error instanceof VersionConflictError) tally.gaveUp++
      throw error
    }
  }
  let operation: Operation
  switch (method) {
    case 'updateSession':
      operation = () => {
        let attempts = 0
        return counted(
          manager
            .updateSession(pick(), (data) => {
              attempts++
              tally.attempts++
              if (data === null)
                throw new Error('A counter session is missing; the fixture is broken.')
              return { ...data, n: (data.n as number) + 1 }
            })
            .finally(() => (tally.maxAttempts = Math.max(tally.maxAttempts, attempts))),
        )
      }
      break
    case 'increment':
      countCycles(manager, tally)
      operation = () => counted(manager.increment(pick(), 'n'))
      break
    case 'writeSession': {
      const data = ids.map((_, index) => ({ ...sessionData(index), n: 0 }))
      operation = () => {
        const index = Math.floor(Math.random() * sessions)
        return counted(manager.writeSession(ids[index]!, data[index]!))
      }
      break
    }
  }
  return {
    method,
    sessions,
    manager,
    ids,
    tally,
    countsAttempts: method !== 'writeSession',
    operation,
  }
}

/**
 * increment() takes no change function to count, but runs its read-change-write cycles through
 * the manager's own updateSession: this wrapper on the instance counts them (one closure per
 * call, nothing beside a round trip). If a later version stops going through updateSession,
 * the count stays 0 and the report says "not measured" instead of a wrong figure.
 */
function countCycles(manager: SessionManager, tally: Tally): void {
  const update = manager.updateSession.bind(manager)
  manager.updateSession = (sessionId, change, options) => {
    let attempts = 0
    return update(
      sessionId,
      (data) => {
        attempts++
        tally.attempts++
        return change(data)
      },
      options,
    ).finally(() => (tally.maxAttempts = Math.max(tally.maxAttempts, attempts)))
  }
}

/** Runs the cases of one session count side by side in interleaved rounds, then checks them. */
async function runGroup(cases: Case[], label: string): Promise<ContentionResult[]> {
  const timedFrom = new Map<Case, { tally: Tally; statements: number }>()
  const outcome = await runRounds(
    cases.map((c) => ({
      name: c.method,
      operation: c.operation,
      tolerate: (error: unknown) =>
        c.method !== 'writeSession' && error instanceof VersionConflictError,
    })),
    {
      inFlight: settings.inFlight,
      rounds: settings.rounds,
      roundMillis: (settings.secondsPerCase * 1000) / settings.rounds,
      warmupMillis: settings.warmupMillis,
      onRound: ({ contender, round, rounds, warmup }) => {
        // Every warm-up runs before the first timed round: from here on, counts are timed.
        if (!warmup && timedFrom.size === 0) {
          for (const c of cases) {
            timedFrom.set(c, { tally: { ...c.tally }, statements: statementsSent(c.manager) })
          }
        }
        progress.update(
          `[${label}] ${contender} · ${cases[0]!.sessions.toLocaleString('en-US')} session(s) · ` +
            `${settings.inFlight} in flight · ${warmup ? 'warm-up' : `round ${round}/${rounds}`}`,
        )
      },
    },
  )
  const results: ContentionResult[] = []
  for (const c of cases) {
    progress.update(`[${label}] checking the ${c.method} counters`)
    const { merged, rounds } = outcome.get(c.method)!
    const before = timedFrom.get(c)!
    const attempts = c.tally.attempts - before.tally.attempts
    const measured = c.countsAttempts && c.tally.attempts > 0
    results.push({
      case: c.method,
      sessions: c.sessions,
      inFlight: settings.inFlight,
      ...summarize(merged),
      roundOpsPerSecond: roundRates(rounds),
      gaveUp: merged.failed,
      gaveUpTotal: c.tally.gaveUp,
      extraAttemptsPerSuccess: measured ? (attempts - merged.ops) / merged.ops : null,
      maxAttempts: measured ? c.tally.maxAttempts : null,
      statementsPerSuccess: (statementsSent(c.manager) - before.statements) / merged.ops,
      check: c.method === 'writeSession' ? null : await checkCounters(c),
    })
  }
  return results
}

/** The counters, read back through the library, must add up to the calls that succeeded. */
async function checkCounters(c: Case): Promise<CounterCheck> {
  let counted = 0
  for (const id of c.ids) {
    const data = await c.manager.readSession(id)
    counted += typeof data?.n === 'number' ? data.n : NaN
  }
  return { expected: c.tally.succeeded, counted, ok: counted === c.tally.succeeded }
}

function statementsSent(manager: SessionManager): number {
  return manager.stats().stores.reduce((sum, store) => sum + store.operations, 0)
}

/**
 * Loads `settings.listSessions` sessions behind the library's back, then times list() and
 * count() over them, each in a fresh process whose memory is sampled (bench/lib/listing-probe.ts).
 */
async function measureListing(
  manager: SessionManager,
  rawPools: Map<string, Pool>,
  stores: ListingProbeInput['stores'],
): Promise<ListingStep[]> {
  await manager.applySchema()
  const load = await bulkLoad(manager, rawPools, settings.listSessions)
  progress.update('waiting for the stores to write back what the load dirtied')
  const settleStarted = performance.now()
  await settle(rawPools)
  settleSeconds = (performance.now() - settleStarted) / 1000
  const steps: ListingStep[] = [load]
  for (const step of ['list()', 'count()'] as const) {
    progress.update(
      `${step} over ${settings.listSessions.toLocaleString('en-US')} sessions, in a process of its own`,
    )
    const input: ListingProbeInput = {
      step,
      stores,
      copies: settings.copies,
      table: LIST_TABLE,
      memorySampleMillis: settings.memorySampleMillis,
    }
    const output = await runIsolated<ListingProbeInput, ListingProbeOutput>(
      new URL('./lib/listing-probe.ts', import.meta.url),
      input,
    )
    steps.push({
      step,
      sessions: output.sessions,
      seconds: output.seconds,
      perSecond: output.sessions / output.seconds,
      memory: output.memory,
      ok: output.sessions === settings.listSessions && output.inOrder !== false,
    })
  }
  return steps
}

/** The bulk load of the listing's sessions (see bench/lib/bulk-load.ts), as a listing step. */
async function bulkLoad(
  manager: SessionManager,
  rawPools: Map<string, Pool>,
  count: number,
): Promise<ListingStep> {
  const { seconds } = await bulkLoadSessions({
    locate: (id) => manager.locate(id),
    rawPools,
    table: LIST_TABLE,
    count,
    copies: settings.copies,
    rowsPerInsert: settings.rowsPerInsert,
    expiresAtMillis: Date.now() + settings.ttlSeconds * 1000,
    progress,
  })
  return {
    step: 'bulk load',
    sessions: count,
    seconds,
    perSecond: count / seconds,
    memory: null,
    ok: null,
  }
}

/** Lets the stores write back what the load dirtied (see bench/lib/bulk-load.ts). */
function settle(rawPools: Map<string, Pool>): Promise<void> {
  return settleStores(rawPools, settings.settleMillis)
}

function megabytes(bytes: number): string {
  return formatNumber(bytes / 2 ** 20, 1)
}

function printReport(
  contention: ContentionResult[],
  listing: ListingStep[],
  serverVersion: string,
  contentionSeconds: number,
  totalSeconds: number,
): void {
  console.log(
    `## session-shards contention benchmark\n\n` +
      `${settings.stores} local stores (${serverVersion}), copies ${settings.copies}, Node ${environment.node}, ` +
      `${environment.cpus} CPUs (${environment.cpuModel}) shared by client and servers; ` +
      `sessions of ~${averageBytes([sessionData(0)])} bytes of JSON plus a counter \`n\`, ` +
      `default manager options (10 connections per store, updateSession's default retries); ` +
      `library from dist/ (${environment.commit ?? 'no git'}). ` +
      `${settings.secondsPerCase} s per row, in ${settings.rounds} rounds interleaved with the other rows ` +
      `of the same session count, after a ${settings.warmupMillis} ms warm-up each. ` +
      'Each method has its own manager and its own sessions.\n',
  )
  console.log(
    markdownTable(
      [
        { header: 'case' },
        { header: 'sessions', align: 'right' },
        { header: 'in flight', align: 'right' },
        { header: 'ops/s', align: 'right' },
        { header: 'p50 ms', align: 'right' },
        { header: 'p99 ms', align: 'right' },
        { header: 'retries per op', align: 'right' },
        { header: 'max cycles', align: 'right' },
        { header: 'gave up', align: 'right' },
        { header: 'statements per op', align: 'right' },
        { header: 'counter' },
      ],
      contention.map((r) => [
        r.case,
        r.sessions.toLocaleString('en-US'),
        String(r.inFlight),
        formatNumber(r.opsPerSecond),
        formatNumber(r.p50Millis, 2),
        formatNumber(r.p99Millis, 2),
        r.extraAttemptsPerSuccess === null
          ? r.case === 'writeSession'
            ? '—'
            : 'not measured'
          : formatNumber(r.extraAttemptsPerSuccess, 2),
        r.maxAttempts === null ? '—' : String(r.maxAttempts),
        r.case === 'writeSession'
          ? '—'
          : `${formatNumber(r.gaveUp)} (${formatNumber(r.gaveUpTotal)})`,
        formatNumber(r.statementsPerSuccess, 2),
        r.check === null
          ? '— (blind writes)'
          : `${r.check.ok ? 'OK' : 'MISMATCH'} ${formatNumber(r.check.counted)} / ${formatNumber(r.check.expected)}`,
      ]),
    ),
  )
  const spreads = contention.map((r) => ({ r, spread: relativeSpread(r.roundOpsPerSecond) }))
  spreads.sort((a, b) => a.spread - b.spread)
  const worst = spreads[spreads.length - 1]!
  console.log(
    `
ops/s, p50 and p99 count successful calls only. Retries per op: calls of the change function
minus successes, over successes (timed rounds; for increment, counted by wrapping the manager's
updateSession, which it runs). Max cycles: most read-change-write cycles one call took. Gave up:
calls that rejected with VersionConflictError once their retries were spent, in the timed rounds
(with warm-up). Counter: the counters read back through the library against the successful calls
(warm-up included); MISMATCH would be a lost or doubled update. Ops/s of a row's rounds differ by
at most ${formatNumber(worst.spread * 100)} % (${worst.r.case}, ${worst.r.sessions.toLocaleString('en-US')} session(s)). ` +
      `These cases took ${formatNumber(contentionSeconds, 0)} s.`,
  )

  console.log(
    `\n### list() and count() over ${settings.listSessions.toLocaleString('en-US')} sessions\n\n` +
      `Loaded with raw multi-row INSERTs (${settings.rowsPerInsert.toLocaleString('en-US')} rows each, ` +
      `in id order) onto the first ${settings.copies} stores of each id's \`locate()\`, ` +
      `so ${(settings.listSessions * settings.copies).toLocaleString('en-US')} rows; then ` +
      `${formatNumber(settleSeconds, 1)} s for the stores to write back the dirtied pages. ` +
      `list() (default page size) and count() each run in a new Node process with a new manager; ` +
      `memory is that process's, sampled every ${settings.memorySampleMillis} ms, ` +
      `the increase is over a baseline taken after a full GC right before the step.\n`,
  )
  console.log(
    markdownTable(
      [
        { header: 'step' },
        { header: 'sessions', align: 'right' },
        { header: 'seconds', align: 'right' },
        { header: 'sessions/s', align: 'right' },
        { header: 'peak RSS MB', align: 'right' },
        { header: 'RSS increase MB', align: 'right' },
        { header: 'peak heap MB', align: 'right' },
        { header: 'heap increase MB', align: 'right' },
        { header: 'check' },
      ],
      listing.map((step) => {
        const m = step.memory
        return [
          step.step,
          formatNumber(step.sessions),
          formatNumber(step.seconds, 1),
          formatNumber(step.perSecond),
          m === null ? '—' : megabytes(m.peakRssBytes),
          m === null ? '—' : megabytes(m.peakRssBytes - m.baselineRssBytes),
          m === null ? '—' : megabytes(m.peakHeapUsedBytes),
          m === null ? '—' : megabytes(m.peakHeapUsedBytes - m.baselineHeapUsedBytes),
          step.ok === null
            ? ''
            : step.ok
              ? 'OK'
              : `MISMATCH (expected ${formatNumber(settings.listSessions)})`,
        ]
      }),
    ),
  )
  console.log(`\nTotal time ${formatNumber(totalSeconds, 0)} s.`)
}
