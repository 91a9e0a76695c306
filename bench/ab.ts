/**
 * A/B of two compiled builds of the library, side by side in one process: each build's
 * `readSession` or `writeSession`, and the library's own statement through raw mysql2, in
 * short interleaved rounds on the same 3 local stores. For judging one change: on a shared
 * machine two runs of the batching suite can differ by more than a change does, while rounds
 * that alternate within one process see the same machine.
 *
 * Usage (the "before" build from another checkout, e.g. a worktree of the previous commit):
 *   git worktree add /tmp/before <commit>
 *   (cd /tmp/before && ln -s "$PWD/node_modules" . && npx tsc -p tsconfig.build.json)
 *   npm run build
 *   node --import tsx bench/ab.ts --before /tmp/before/dist --op read --in-flight 1
 */
import { parseArgs } from 'node:util'
import { pathToFileURL } from 'node:url'
import type { SessionManager } from '../lib/index.js'
import { loadBuiltLibrary } from './lib/built-library.js'
import type { Contender } from './lib/rounds.js'
import { runRounds } from './lib/rounds.js'
import { RoundMeter } from './lib/round-meter.js'
import { createProgress } from './lib/progress.js'
import { rawPool } from './lib/raw-pool.js'
import { RawStatements } from './lib/raw-statements.js'
import { sessionData, writeSessions } from './lib/session-data.js'
import { summarize } from './lib/stats.js'
import { formatNumber, markdownTable } from './lib/table.js'
import { withLocalCluster } from './lib/with-cluster.js'

const USAGE = `node --import tsx bench/ab.ts --before DIR [options]

  --before DIR      the other build's dist/ directory (required)
  --after DIR       the build under test (default: this checkout's dist/)
  --op read|write   readSession (copies 2) or writeSession (copies 1)   [read]
  --in-flight N     operations in flight                                 [1]
  --rounds N        interleaved rounds per side                          [9]
  --seconds S       seconds per round                                    [2]
  --sessions N      sessions, read and written at random; more than the
                    managers' orderCacheSize (10,000) makes most operations
                    compute their session's order                        [10000]`

const TTL_SECONDS = 86_400

const settings = parseSettings()
const progress = createProgress()
const builds = {
  before: await loadBuiltLibrary(settings.before),
  after: await loadBuiltLibrary(settings.after),
}

await withLocalCluster({ stores: 3 }, async (cluster) => {
  const configs = cluster.storeConfigs()
  const copies = settings.op === 'read' ? 2 : 1
  const managers = {
    before: builds.before.index.createSessionManager({ stores: configs, copies }),
    after: builds.after.index.createSessionManager({ stores: configs, copies }),
  }
  const pools = new Map(configs.map((config) => [config.id, rawPool(config, 10, { trace: false })]))
  try {
    await managers.after.applySchema()
    const ids = Array.from({ length: settings.sessions }, () =>
      builds.after.index.generateSessionId(),
    )
    const data = ids.map((_, index) => sessionData(index))
    progress.update(`writing ${settings.sessions} sessions`)
    await writeSessions(managers.after, ids, (index) => data[index]!)
    const storeIds = configs.map((config) => config.id)
    const rawOrder = ids.map((id) =>
      builds.after.placement.classicOrder(storeIds, id).map((storeId) => pools.get(storeId)!),
    )
    const raw = new RawStatements(builds.after, 'sessions', TTL_SECONDS)
    const pick = (): number => Math.floor(Math.random() * settings.sessions)
    const libraryCase = (name: string, manager: SessionManager): Contender => ({
      name,
      operation:
        settings.op === 'read'
          ? async () => {
              if ((await manager.readSession(ids[pick()]!)) === null) {
                throw new Error('readSession found no session; the fixture is broken.')
              }
            }
          : async () => {
              const index = pick()
              await manager.writeSession(ids[index]!, data[index]!)
            },
    })
    const contenders: Contender[] = [
      {
        name: 'raw mysql2',
        operation: async () => {
          const index = pick()
          await (settings.op === 'read'
            ? raw.read(rawOrder[index]!, ids[index]!)
            : raw.write(rawOrder[index]!, ids[index]!, data[index], 1))
        },
      },
      libraryCase('before', managers.before),
      libraryCase('after', managers.after),
    ]
    const meter = new RoundMeter()
    const outcome = await runRounds(contenders, {
      inFlight: settings.inFlight,
      rounds: settings.rounds,
      roundMillis: settings.seconds * 1000,
      warmupMillis: 1000,
      onRound: (info) => {
        meter.onRound(info)
        progress.update(
          `${info.contender} · ${info.warmup ? 'warm-up' : `round ${info.round}/${info.rounds}`}`,
        )
      },
    })
    meter.finish()
    progress.clear()
    report(outcome, meter)
  } finally {
    await Promise.all([
      managers.before.close(),
      managers.after.close(),
      ...[...pools.values()].map((pool) => pool.end()),
    ])
  }
})

function report(outcome: Awaited<ReturnType<typeof runRounds>>, meter: RoundMeter): void {
  const rows = [...outcome].map(([name, { merged }]) => {
    const summary = summarize(merged)
    return { name, summary, cpuMicrosPerOp: meter.totals(name).cpuMicros / summary.ops }
  })
  const byName = new Map(rows.map((row) => [row.name, row]))
  const before = byName.get('before')!
  const after = byName.get('after')!
  console.log(
    `${settings.op === 'read' ? 'readSession (copies 2)' : 'writeSession (copies 1)'} at ` +
      `${settings.inFlight} in flight, ${settings.rounds} rounds of ${settings.seconds} s ` +
      `per side, ${settings.sessions} sessions\n`,
  )
  console.log(
    markdownTable(
      [
        { header: 'side' },
        { header: 'ops/s', align: 'right' },
        { header: 'p50 ms', align: 'right' },
        { header: 'p99 ms', align: 'right' },
        { header: 'CPU µs/op', align: 'right' },
      ],
      rows.map(({ name, summary, cpuMicrosPerOp }) => [
        name,
        formatNumber(summary.opsPerSecond),
        formatNumber(summary.p50Millis, 3),
        formatNumber(summary.p99Millis, 3),
        formatNumber(cpuMicrosPerOp, 1),
      ]),
    ),
  )
  const ratio = (value: number, base: number): string => `${(value / base).toFixed(3)}×`
  console.log(
    `\nafter / before: ${ratio(after.summary.opsPerSecond, before.summary.opsPerSecond)} ops/s, ` +
      `${ratio(after.cpuMicrosPerOp, before.cpuMicrosPerOp)} CPU per operation, ` +
      `${ratio(after.summary.p50Millis, before.summary.p50Millis)} p50`,
  )
}

function parseSettings(): {
  before: URL
  after: URL | undefined
  op: 'read' | 'write'
  inFlight: number
  rounds: number
  seconds: number
  sessions: number
} {
  const { values } = parseArgs({
    options: {
      before: { type: 'string' },
      after: { type: 'string' },
      op: { type: 'string', default: 'read' },
      'in-flight': { type: 'string', default: '1' },
      rounds: { type: 'string', default: '9' },
      seconds: { type: 'string', default: '2' },
      sessions: { type: 'string', default: '10000' },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  })
  if (values.help === true) {
    console.log(USAGE)
    process.exit(0)
  }
  if (values.before === undefined) throw new TypeError(`--before is required\n\n${USAGE}`)
  if (values.op !== 'read' && values.op !== 'write') {
    throw new TypeError('--op must be read or write')
  }
  const positive = (flag: string, text: string, integer: boolean): number => {
    const value = Number(text)
    if (!(value > 0) || (integer && !Number.isSafeInteger(value))) {
      throw new TypeError(`--${flag} must be a positive ${integer ? 'integer' : 'number'}`)
    }
    return value
  }
  const directory = (path: string): URL => pathToFileURL(path.endsWith('/') ? path : `${path}/`)
  return {
    before: directory(values.before),
    after: values.after === undefined ? undefined : directory(values.after),
    op: values.op,
    inFlight: positive('in-flight', values['in-flight'], true),
    rounds: positive('rounds', values.rounds, true),
    seconds: positive('seconds', values.seconds, false),
    sessions: positive('sessions', values.sessions, true),
  }
}
