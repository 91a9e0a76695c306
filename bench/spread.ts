/**
 * Where a lone write loses time when a cluster's sessions are spread over several stores: the
 * library's upsert (and `SELECT 1` for comparison) sent raw at 1 in flight, on one pool of one
 * store, on a pool of each of 3 stores in turn, and on 3 pools of one store in turn. The second
 * is what a copies 1 write does on 3 stores (each write lands on its session's first store);
 * the third keeps one server process but rotates connections as the second does. Interleaved
 * rounds, one process; ratios to the first layout.
 *
 * Usage: node --import tsx bench/spread.ts [--seconds N] [--quick]   (after `npm run build`)
 */
import type { Pool } from 'mysql2/promise'
import { caseTiming, parseBenchArgs } from './lib/args.js'
import { loadBuiltLibrary } from './lib/built-library.js'
import { createProgress } from './lib/progress.js'
import { rawPool } from './lib/raw-pool.js'
import { RawStatements } from './lib/raw-statements.js'
import { RoundMeter } from './lib/round-meter.js'
import { runRounds, timedRounds, type Contender } from './lib/rounds.js'
import { sessionData, writeSessions } from './lib/session-data.js'
import { summarize } from './lib/stats.js'
import { formatNumber, markdownTable } from './lib/table.js'
import { withLocalCluster } from './lib/with-cluster.js'

const USAGE = `node --import tsx bench/spread.ts [--seconds N] [--quick]

The library's upsert and SELECT 1 sent raw at 1 in flight: on one store, spread over 3 stores,
and over 3 pools of one store. Needs a build (npm run build).`

const SESSIONS = 3000
const CONNECTIONS = 10

const args = parseBenchArgs(USAGE)
const timing = caseTiming(args)
const progress = createProgress()

await withLocalCluster({ stores: 3 }, async (cluster) => {
  const library = await loadBuiltLibrary()
  const configs = cluster.storeConfigs()
  const manager = library.index.createSessionManager({ stores: configs, copies: 3 })
  await manager.applySchema()
  const ids = Array.from({ length: SESSIONS }, () => library.index.generateSessionId())
  await writeSessions(manager, ids, sessionData)
  await manager.close()

  const pool = (index: number): Pool => rawPool(configs[index]!, CONNECTIONS, { trace: false })
  const layouts: [string, Pool[]][] = [
    ['one pool on one store', [pool(0)]],
    ['a pool on each of 3 stores, in turn', [pool(0), pool(1), pool(2)]],
    ['3 pools on one store, in turn', [pool(0), pool(0), pool(0)]],
  ]
  const raw = new RawStatements(library, 'sessions', 3600)
  const data = ids.map((_, index) => sessionData(index))
  const statements: [string, (pool: Pool, index: number) => Promise<unknown>][] = [
    ['SELECT 1', (pool) => pool.execute('SELECT 1')],
    ['upsert', (pool, index) => raw.write([pool], ids[index]!, data[index], 1)],
  ]

  const rows: string[][] = []
  for (const [statement, send] of statements) {
    const contenders: Contender[] = layouts.map(([name, pools]) => {
      let sent = 0
      return {
        name,
        operation: () => {
          const index = sent++
          return send(pools[index % pools.length]!, index % SESSIONS)
        },
      }
    })
    const meter = new RoundMeter()
    const rounds = timedRounds(timing, 1, statement, progress)
    const outcome = await runRounds(contenders, {
      ...rounds,
      onRound: (info) => {
        meter.onRound(info)
        rounds.onRound?.(info)
      },
    })
    meter.finish()
    const summaries = layouts.map(([name]) => {
      const merged = outcome.get(name)!.merged
      return { name, ...summarize(merged), cpu: meter.totals(name).cpuMicros / merged.ops }
    })
    const first = summaries[0]!
    for (const row of summaries) {
      rows.push([
        statement,
        row.name,
        formatNumber(row.opsPerSecond),
        `${(row.opsPerSecond / first.opsPerSecond).toFixed(2)}×`,
        formatNumber(row.p50Millis, 3),
        formatNumber(row.cpu, 1),
      ])
    }
  }
  progress.clear()
  for (const [, pools] of layouts) await Promise.all(pools.map((p) => p.end()))
  console.log(
    markdownTable(
      [
        { header: 'statement' },
        { header: 'sent on' },
        { header: 'ops/s', align: 'right' },
        { header: 'vs one pool', align: 'right' },
        { header: 'p50 ms', align: 'right' },
        { header: 'CPU µs/op', align: 'right' },
      ],
      rows,
    ),
  )
})
