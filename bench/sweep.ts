/**
 * Sweeps under load: a table with many expired rows on 3 stores, swept by two app servers at
 * once (with the background sweep's dutyCycle) while a third serves a 64-in-flight read/write
 * workload. Reports the workload's ops/s,
 * p50 and p99 before, during and after the sweep, the peak memory of this process, and what the
 * two sweeps did (rows deleted, statements sent, stores skipped because the other held them).
 * Then a sweep of as many rows again with no workload, whose live heap (after a full garbage
 * collection, every second) shows what the sweep itself keeps in memory.
 * Run with `npm run bench -- --suite sweep [--seconds N] [--quick]`.
 */
import { performance } from 'node:perf_hooks'
import type { SessionManager, SweepResult } from '../lib/index.js'
import { parseBenchArgs } from './lib/args.js'
import { loadBuiltLibrary } from './lib/built-library.js'
import { bulkLoadSessions, settleStores } from './lib/bulk-load.js'
import type { LoadResult } from './lib/load.js'
import { runLoad } from './lib/load.js'
import { collectGarbage, sampleMemory } from './lib/memory.js'
import type { MemoryPeak } from './lib/memory.js'
import { createProgress } from './lib/progress.js'
import { rawPool } from './lib/raw-pool.js'
import { describeEnvironment, writeResults } from './lib/results.js'
import { sessionData } from './lib/session-data.js'
import type { Summary } from './lib/stats.js'
import { mergeResults, summarize } from './lib/stats.js'
import { formatNumber, markdownTable } from './lib/table.js'
import { serverVersion as queryServerVersion, withLocalCluster } from './lib/with-cluster.js'

const USAGE = `Usage: npm run bench -- --suite sweep [--seconds N] [--quick]

Starts 3 local MariaDB stores, loads 500,000 expired sessions (2 copies each: 1,000,000 rows)
and 10,000 live ones, then runs a 64-in-flight read/write workload before, during and after
two app servers sweep at once. Then loads as many expired sessions again and sweeps them with
no workload, taking the live heap (after a full garbage collection) every second.

  --seconds N  seconds of workload before and after the sweep (default 10; 2 with --quick)
  --quick      a short run to check that the benchmark works (15,000 expired sessions);
               not for citing`

const args = parseBenchArgs(USAGE)
const settings = {
  stores: 3,
  copies: 2,
  expiredSessions: args.quick ? 15_000 : 500_000,
  liveSessions: args.quick ? 2_000 : 10_000,
  inFlight: 64,
  phaseSeconds: args.seconds ?? (args.quick ? 2 : 10),
  /** The workload runs in slices this long while the sweep goes on, until it has finished. */
  sliceMillis: 500,
  rowsPerInsert: 5_000,
  sweepBatchSize: 500,
  /** The background sweep's setting (lib/cluster-operations.ts). */
  dutyCycle: 0.2,
  memorySampleMillis: 50,
  /**
   * The sweep alone (no workload, one manager, dutyCycle 1): the live heap after a full
   * garbage collection every this often, to show what the sweep itself keeps in memory.
   */
  liveHeapEveryMillis: 1_000,
  settleMillis: 60_000,
  /** The p99 the workload may reach during the sweep, as a multiple of the p99 before it. */
  p99Allowance: 1.25,
}

const { index: library } = await loadBuiltLibrary()
const progress = createProgress()
const startedAt = performance.now()
const environment = describeEnvironment()

interface Phase extends Summary {
  phase: 'before' | 'during the sweep' | 'after'
  memory: MemoryPeak
}

await withLocalCluster({ stores: settings.stores }, async (cluster) => {
  const stores = cluster.storeConfigs()
  const manager = (): SessionManager =>
    library.createSessionManager({ stores, copies: settings.copies, sweepIntervalSeconds: 0 })
  const app = manager()
  const sweepers = [manager(), manager()]
  const rawPools = new Map(stores.map((config) => [config.id, rawPool(config, 4)]))
  try {
    const serverVersion = await queryServerVersion(cluster)
    await app.applySchema()
    const loadExpired = (): Promise<{ rows: number; seconds: number }> =>
      bulkLoadSessions({
        locate: (id) => app.locate(id),
        rawPools,
        table: 'sessions',
        count: settings.expiredSessions,
        copies: settings.copies,
        rowsPerInsert: settings.rowsPerInsert,
        // Expired an hour ago: past the sweep's grace (sweepGraceSeconds, 300 s).
        expiresAtMillis: Date.now() - 3_600_000,
        progress,
      })
    const load = await loadExpired()
    const ids = Array.from({ length: settings.liveSessions }, () => library.generateSessionId())
    let next = 0
    await runLoad(() => app.writeSession(ids[next]!, sessionData(next++)), {
      inFlight: settings.inFlight,
      count: ids.length,
    })
    progress.update('letting the stores write back the load')
    await settleStores(rawPools, settings.settleMillis)

    // Half reads, half writes of random live sessions: what app servers do while one sweeps.
    const operation = async (): Promise<void> => {
      const index = Math.floor(Math.random() * ids.length)
      if (Math.random() < 0.5) {
        if ((await app.readSession(ids[index]!)) === null) {
          throw new Error('readSession found no live session; the sweep deleted one.')
        }
      } else await app.writeSession(ids[index]!, sessionData(index))
    }
    const measure = async (
      phase: Phase['phase'],
      slices: () => Promise<LoadResult[]>,
    ): Promise<Phase> => {
      collectGarbage()
      const memory = sampleMemory(settings.memorySampleMillis)
      const result = mergeResults(await slices())
      return { phase, ...summarize(result), memory: memory.stop() }
    }
    const steady = async (phase: Phase['phase']): Promise<Phase> => {
      progress.update(`workload, ${phase}`)
      return measure(phase, async () => [
        await runLoad(operation, {
          inFlight: settings.inFlight,
          durationMillis: settings.phaseSeconds * 1000,
        }),
      ])
    }

    const before = await steady('before')
    const statementsBefore = sweepers.map(statementsSent)
    let sweepSeconds = 0
    let sweeps: SweepResult[] = []
    const during = await measure('during the sweep', async () => {
      const sweepStarted = performance.now()
      let deleted = 0
      const running = Promise.all(
        sweepers.map((sweeper) =>
          sweeper.sweep({
            batchSize: settings.sweepBatchSize,
            dutyCycle: settings.dutyCycle,
            onProgress: () => {
              deleted += settings.sweepBatchSize
              progress.update(`sweeping under load: about ${deleted.toLocaleString('en-US')} rows`)
            },
          }),
        ),
      ).then((results) => {
        sweepSeconds = (performance.now() - sweepStarted) / 1000
        sweeps = results
      })
      let finished = false
      void running.finally(() => (finished = true))
      const slices: LoadResult[] = []
      while (!finished) {
        slices.push(
          await runLoad(operation, {
            inFlight: settings.inFlight,
            durationMillis: settings.sliceMillis,
          }),
        )
      }
      await running
      return slices
    })
    const after = await steady('after')
    progress.clear()

    const statements = sweepers.map(
      (sweeper, index) => statementsSent(sweeper) - statementsBefore[index]!,
    )
    const expiredLeft = await countExpired(rawPools)
    // Counted before the sweep alone, which loads and sweeps rows of its own.
    const alone = await sweepAlone(sweepers[0]!, async () => (await loadExpired()).rows)
    const deletedRows = sweeps.reduce((sum, sweep) => sum + sweep.deleted, 0)
    const skipped = sweeps.flatMap((sweep) =>
      sweep.stores.filter((store) => store.sweptElsewhere === true),
    ).length
    const phases = [before, during, after]
    const p99Ratio = during.p99Millis / before.p99Millis
    const heapGrowth = during.memory.peakHeapUsedBytes - before.memory.peakHeapUsedBytes
    const wallSeconds = (performance.now() - startedAt) / 1000

    console.log(
      `## session-shards sweep benchmark\n\n` +
        `${settings.stores} local stores (${serverVersion}), Node ${environment.node}, ` +
        `${environment.cpus} CPUs (${environment.cpuModel}) shared by client and servers; ` +
        `${settings.expiredSessions.toLocaleString('en-US')} expired sessions ` +
        `(${load.rows.toLocaleString('en-US')} rows, loaded in ${formatNumber(load.seconds)} s) and ` +
        `${settings.liveSessions.toLocaleString('en-US')} live ones; workload: ` +
        `${settings.inFlight} in flight, half readSession, half writeSession (copies ` +
        `${settings.copies}), ${settings.phaseSeconds} s before and after the sweep; two ` +
        `managers sweep at once (batches of ${settings.sweepBatchSize}, dutyCycle ` +
        `${settings.dutyCycle}, as the background sweep).\n`,
    )
    console.log(
      markdownTable(
        [
          { header: 'workload' },
          { header: 'seconds', align: 'right' },
          { header: 'ops/s', align: 'right' },
          { header: 'p50 ms', align: 'right' },
          { header: 'p99 ms', align: 'right' },
          { header: 'peak heap MB', align: 'right' },
          { header: 'peak RSS MB', align: 'right' },
        ],
        phases.map((phase) => [
          phase.phase,
          formatNumber(phase.seconds, 1),
          formatNumber(phase.opsPerSecond),
          formatNumber(phase.p50Millis, 3),
          formatNumber(phase.p99Millis, 3),
          formatNumber(phase.memory.peakHeapUsedBytes / 2 ** 20, 1),
          formatNumber(phase.memory.peakRssBytes / 2 ** 20, 1),
        ]),
      ),
    )
    console.log(
      `\nSweep: ${deletedRows.toLocaleString('en-US')} rows deleted in ${formatNumber(sweepSeconds, 1)} s ` +
        `(${formatNumber(deletedRows / sweepSeconds)} rows/s); statements sent by the two sweeping ` +
        `managers: ${statements.join(' and ')} (batches of ${settings.sweepBatchSize} need ` +
        `${Math.ceil(load.rows / settings.sweepBatchSize).toLocaleString('en-US')} at least); ` +
        `stores skipped because the other sweep held them: ${skipped} of ${settings.stores * 2}; ` +
        `expired rows left: ${expiredLeft}.`,
    )
    console.log(
      `Sweep alone (no workload, one manager, dutyCycle 1): ${alone.deletedRows.toLocaleString('en-US')} ` +
        `rows deleted in ${formatNumber(alone.seconds, 1)} s; live heap after a full GC ` +
        `${formatNumber(alone.baselineLiveBytes / 2 ** 20, 1)} MB before it, at most ` +
        `${formatNumber(alone.maxLiveBytes / 2 ** 20, 1)} MB during it (${alone.samples} samples), ` +
        `${formatNumber(alone.afterLiveBytes / 2 ** 20, 1)} MB after it.`,
    )
    console.log(
      `Foreground p99 during the sweep: ${formatNumber(p99Ratio, 2)}× before ` +
        `(target ≤ ${settings.p99Allowance}×: ${p99Ratio <= settings.p99Allowance ? 'met' : 'not met'}); ` +
        `peak heap during the sweep ${heapGrowth >= 0 ? '+' : ''}${formatNumber(heapGrowth / 2 ** 20, 1)} MB ` +
        `against before. Total time ${formatNumber(wallSeconds)} s.`,
    )
    const file = await writeResults(
      'sweep',
      {
        benchmark: 'sweep',
        environment,
        server: serverVersion,
        settings,
        wallSeconds,
        load,
        phases,
        sweep: {
          seconds: sweepSeconds,
          deletedRows,
          statements,
          skipped,
          expiredLeft,
          results: sweeps,
        },
        p99Ratio,
        sweepAlone: alone,
      },
      args,
    )
    console.log(`\nResults written to ${file}`)
  } finally {
    progress.clear()
    await Promise.allSettled([
      app.close(),
      ...sweepers.map((sweeper) => sweeper.close()),
      ...[...rawPools.values()].map((pool) => pool.end()),
    ])
  }
})

/** What {@link sweepAlone} measured; live heap figures are heapUsed after a full GC. */
interface SweepAlone {
  loadedRows: number
  deletedRows: number
  seconds: number
  baselineLiveBytes: number
  maxLiveBytes: number
  afterLiveBytes: number
  samples: number
}

/**
 * Loads expired rows (`load`), then sweeps them with `sweeper` alone at full pace, taking the
 * live heap after a full garbage collection every {@link settings.liveHeapEveryMillis}: with
 * no workload beside it, whatever the sweep kept (rows, ids, per-batch state) would show as
 * growth over the baseline. (The forced collections would distort a workload's latency,
 * which is why the sweep under load reports peaks instead.)
 */
async function sweepAlone(
  sweeper: SessionManager,
  load: () => Promise<number>,
): Promise<SweepAlone> {
  const loadedRows = await load()
  progress.update('sweeping alone')
  collectGarbage()
  const baselineLiveBytes = process.memoryUsage().heapUsed
  let maxLiveBytes = baselineLiveBytes
  let samples = 0
  const started = performance.now()
  let finished = false
  const sweeping = sweeper
    .sweep({ batchSize: settings.sweepBatchSize, dutyCycle: 1 })
    .finally(() => (finished = true))
  while (!finished) {
    await new Promise((resolve) => setTimeout(resolve, settings.liveHeapEveryMillis))
    if (finished) break
    collectGarbage()
    maxLiveBytes = Math.max(maxLiveBytes, process.memoryUsage().heapUsed)
    samples++
  }
  const result = await sweeping
  const seconds = (performance.now() - started) / 1000
  collectGarbage()
  const afterLiveBytes = process.memoryUsage().heapUsed
  return {
    loadedRows,
    deletedRows: result.deleted,
    seconds,
    baselineLiveBytes,
    maxLiveBytes,
    afterLiveBytes,
    samples,
  }
}

function statementsSent(manager: SessionManager): number {
  return manager.stats().stores.reduce((sum, store) => sum + store.operations, 0)
}

/** Rows whose expiry has passed, over every store. */
async function countExpired(rawPools: Map<string, ReturnType<typeof rawPool>>): Promise<number> {
  let total = 0
  for (const pool of rawPools.values()) {
    const [rows] = await pool.query('SELECT COUNT(*) AS n FROM sessions WHERE expires_at <= ?', [
      Date.now(),
    ])
    total += Number((rows as { n: number }[])[0]?.n ?? 0)
  }
  return total
}
