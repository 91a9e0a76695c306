/**
 * What the safe default costs: readSession and writeSession with the defaults (`readQuorum`
 * `copies`, on the read lease: one store while nobody announced it stale), with the lease off
 * (`readLeaseMillis: 0`: the data from one store, a digest from the others, on every read)
 * and with the opt-in `readQuorum: 1` (one store, no hedging), side by side on the same
 * stores, at 1, 16 and 64 operations in flight.
 * Run with `npm run bench -- --suite read-quorum [--seconds N] [--quick]`.
 */
import { performance } from 'node:perf_hooks'
import type { SessionData, SessionManager } from '../lib/index.js'
import { caseTiming, parseBenchArgs } from './lib/args.js'
import { loadBuiltLibrary } from './lib/built-library.js'
import { watchConfigMismatches } from './lib/config-mismatch.js'
import type { Operation } from './lib/load.js'
import { runLoad } from './lib/load.js'
import { createProgress } from './lib/progress.js'
import { describeEnvironment, writeResults } from './lib/results.js'
import { runRounds, timedRounds } from './lib/rounds.js'
import { sessionData } from './lib/session-data.js'
import type { Summary } from './lib/stats.js'
import { roundRates, summarize } from './lib/stats.js'
import { formatNumber, LOAD_COLUMNS, loadCells, markdownTable } from './lib/table.js'
import { serverVersion as queryServerVersion, withLocalCluster } from './lib/with-cluster.js'

const USAGE = `Usage: npm run bench -- --suite read-quorum [--seconds N] [--quick]

Starts 3 local MariaDB stores and compares readSession and writeSession (copies 2) with the
defaults (readQuorum 2 on the read lease), with the lease off (digest reads on every read)
and with readQuorum 1, side by side.

  --seconds N  timed seconds per case, in flight level and side (default 6; 1 with --quick)
  --quick      a short run to check that the benchmark works; not for citing`

const args = parseBenchArgs(USAGE)
const settings = {
  stores: 3,
  copies: 2,
  ...caseTiming(args),
  inFlight: [1, 16, 64],
  sessions: args.quick ? 2_000 : 10_000,
}

const { index: library } = await loadBuiltLibrary()
const progress = createProgress()
const DEFAULT = 'default (read lease)'
const QUORUM = 'readLeaseMillis 0'
const SINGLE = 'readQuorum 1'

interface CaseResult extends Summary {
  case: 'readSession' | 'writeSession'
  setting: string
  inFlight: number
  roundOpsPerSecond: number[]
  /** Ops/s divided by readQuorum 1 ops/s at the same level; not on readQuorum 1 rows. */
  toSingle: number | null
  /** Statements sent per operation (from `stats()`). */
  statementsPerOp: number
}

const startedAt = performance.now()
const environment = describeEnvironment()

await withLocalCluster(
  { stores: settings.stores },
  async (cluster) => {
    const stores = cluster.storeConfigs()
    // A table per configuration: managers with other read settings on one table conflict, and
    // then all read by quorum (see config-mismatch.ts).
    const base = { stores, copies: settings.copies }
    const managers = new Map<string, SessionManager>([
      [DEFAULT, library.createSessionManager(base)],
      [
        QUORUM,
        library.createSessionManager({ ...base, readLeaseMillis: 0, table: 'sessions_quorum' }),
      ],
      [SINGLE, library.createSessionManager({ ...base, readQuorum: 1, table: 'sessions_single' })],
    ])
    const mismatches = watchConfigMismatches(managers.values())
    try {
      const serverVersion = await queryServerVersion(cluster)
      const first = managers.get(DEFAULT)!
      const ids = Array.from({ length: settings.sessions }, () => library.generateSessionId())
      const data = ids.map((_, index) => sessionData(index))
      for (const manager of managers.values()) {
        await manager.applySchema()
        let next = 0
        await runLoad(() => manager.writeSession(ids[next]!, data[next++]!), {
          inFlight: 64,
          count: ids.length,
          onProgress: (done) => progress.update(`populating ${done}/${ids.length} sessions`),
        })
      }
      await waitForLease(first, ids[0]!)
      const results: CaseResult[] = []
      // Calls started per manager, warm-ups included, as statements are counted.
      const calls = new Map<SessionManager, number>()
      const count = (manager: SessionManager): void => {
        calls.set(manager, (calls.get(manager) ?? 0) + 1)
      }
      const operations = {
        readSession:
          (manager: SessionManager): Operation =>
          async () => {
            count(manager)
            const found = await manager.readSession(ids[randomIndex()]!)
            if (found === null)
              throw new Error('readSession found no session; the fixture is broken.')
          },
        writeSession:
          (manager: SessionManager): Operation =>
          async () => {
            count(manager)
            const index = randomIndex()
            await manager.writeSession(ids[index]!, data[index] as SessionData)
          },
      }
      const steps = Object.keys(operations).length * settings.inFlight.length
      let step = 0
      for (const [name, operation] of Object.entries(operations) as [
        CaseResult['case'],
        (manager: SessionManager) => Operation,
      ][]) {
        for (const inFlight of settings.inFlight) {
          step++
          const before = new Map(
            [...managers.values()].map((m) => [
              m,
              { statements: statementsSent(m), calls: calls.get(m) ?? 0 },
            ]),
          )
          const outcome = await runRounds(
            [...managers].map(([setting, manager]) => ({
              name: setting,
              operation: operation(manager),
            })),
            timedRounds(
              settings,
              inFlight,
              `[${step}/${steps}] ${name} · ${inFlight} in flight`,
              progress,
            ),
          )
          const single = summarize(outcome.get(SINGLE)!.merged)
          for (const [setting, manager] of managers) {
            const result = outcome.get(setting)!
            const summary = summarize(result.merged)
            const { statements, calls: callsBefore } = before.get(manager)!
            results.push({
              case: name,
              setting,
              inFlight,
              ...summary,
              roundOpsPerSecond: roundRates(result.rounds),
              toSingle: setting === SINGLE ? null : summary.opsPerSecond / single.opsPerSecond,
              statementsPerOp:
                (statementsSent(manager) - statements) / ((calls.get(manager) ?? 0) - callsBefore),
            })
          }
        }
      }
      progress.clear()
      mismatches.check()
      const totalSeconds = (performance.now() - startedAt) / 1000
      console.log(
        `## readQuorum: the defaults against the lease off and readQuorum 1\n\n${settings.stores} local stores ` +
          `(${serverVersion}), copies ${settings.copies}, Node ${environment.node}, ` +
          `${environment.cpus} CPUs shared by client and servers; library from dist/ ` +
          `(${environment.commit ?? 'no git'}). ${settings.secondsPerCase} s per row, in ` +
          `${settings.rounds} rounds interleaved with its counterparts.\n`,
      )
      console.log(
        markdownTable(
          [
            { header: 'case' },
            { header: 'setting' },
            ...LOAD_COLUMNS,
            { header: 'statements/op', align: 'right' },
            { header: '/readQuorum 1', align: 'right' },
          ],
          results.map((r) => [
            r.case,
            r.setting,
            ...loadCells(r),
            formatNumber(r.statementsPerOp, 2),
            r.toSingle === null ? '' : `${formatNumber(r.toSingle, 2)}×`,
          ]),
        ),
      )
      const file = await writeResults(
        'read-quorum',
        {
          benchmark: 'read-quorum',
          environment,
          server: serverVersion,
          settings: { ...settings, library: 'dist/' },
          wallSeconds: totalSeconds,
          results,
        },
        args,
      )
      console.log(`\nResults written to ${file}\nTotal time ${formatNumber(totalSeconds, 0)} s.`)
    } finally {
      progress.clear()
      await Promise.allSettled([...managers.values()].map((manager) => manager.close()))
    }
  },
  () => progress.clear(),
)

function randomIndex(): number {
  return Math.floor(Math.random() * settings.sessions)
}

function statementsSent(manager: SessionManager): number {
  return manager.stats().stores.reduce((sum, store) => sum + store.operations, 0)
}

/**
 * The read lease holds once the manager has heard every store (a fraction of a second), after a
 * read: a manager that has not read for ten leases (populating) pauses the lease's rounds.
 */
async function waitForLease(manager: SessionManager, sessionId: string): Promise<void> {
  const until = performance.now() + 10_000
  while (manager.stats().readLease?.holds !== true) {
    if (performance.now() > until) throw new Error('the read lease never held: is a store down?')
    await manager.readSession(sessionId)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}
