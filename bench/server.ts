/**
 * Session server benchmark: requests/s of the line protocol's get and put at 64 connections,
 * side by side with the same work done by the library in-process, on 3 local MariaDB stores.
 *
 *   npm run build && node --import tsx bench/server.ts [--seconds N] [--quick]
 *
 * The server runs in a child process (as it would in production), so its CPU is not shared
 * with the benchmark's clients. Both sides run the compiled library from dist/ with the same
 * options, each with its own connection pools.
 */
import { spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { access } from 'node:fs/promises'
import { performance } from 'node:perf_hooks'
import { fileURLToPath } from 'node:url'
import type { SessionManager, SessionManagerOptions } from '../lib/index.js'
import { caseTiming, parseBenchArgs } from './lib/args.js'
import { loadBuiltLibrary } from './lib/built-library.js'
import { LineConnection } from './lib/line-connection.js'
import type { Operation } from './lib/load.js'
import { runLoad } from './lib/load.js'
import { createProgress } from './lib/progress.js'
import { describeEnvironment, writeResults } from './lib/results.js'
import { runRounds, timedRounds } from './lib/rounds.js'
import type { Summary } from './lib/stats.js'
import { roundRates, summarize } from './lib/stats.js'
import { formatNumber, markdownTable } from './lib/table.js'
import { withLocalCluster } from './lib/with-cluster.js'

const USAGE = `Usage: npm run build && node --import tsx bench/server.ts [--seconds N] [--quick]

Starts 3 local MariaDB stores and a session server (line protocol) in a child process, and
compares its get and put at 64 connections with the library doing the same in-process:
  get  open <id> r, get k, close         vs  sm.getValue(id, k)
  put  open <id> w, put k, commit, close vs  sm.withSessionLock(id, (d) => ({ ...d, k }))

  --seconds N  timed seconds per operation and side (default 8; 1 with --quick)
  --quick      a short run to check that the benchmark works; not for citing`

const args = parseBenchArgs(USAGE)
const settings = {
  stores: 3,
  copies: 2,
  connections: 64,
  ...caseTiming(args, { seconds: 8, warmupMillis: 1000 }),
  /** Sessions per connection; each connection (and in-process lane) works on its own. */
  sessionsPerConnection: args.quick ? 8 : 40,
  valueBytes: 64,
}

const DIST = new URL('../dist/', import.meta.url)
const {
  index: { createSessionManager },
} = await loadBuiltLibrary()
await access(fileURLToPath(new URL('server/index.js', DIST))).catch((error: unknown) => {
  throw new Error('dist/server/ is missing: run `npm run build` first.', { cause: error })
})

type OperationName = 'get' | 'put'
type Side = 'server' | 'in-process'

interface CaseResult extends Summary {
  operation: OperationName
  side: Side
  connections: number
  roundOpsPerSecond: number[]
}

/** The child: a session server over the stores, its port on stdout, a clean close on SIGTERM. */
const SERVER_PROCESS = `
const dist = process.env.BENCH_DIST
const { createSessionManager } = await import(dist + 'index.js')
const { startSessionServer } = await import(dist + 'server/index.js')
const manager = createSessionManager(JSON.parse(process.env.BENCH_MANAGER_OPTIONS))
const server = await startSessionServer({ manager, port: 0 })
process.stdout.write(JSON.stringify({ port: server.lineAddress.port }) + '\\n')
process.once('SIGTERM', async () => {
  await server.close()
  await manager.close()
  process.exit(0)
})
`

const progress = createProgress()
const environment = describeEnvironment()
const startedAt = performance.now()

await withLocalCluster(
  { stores: settings.stores },
  async (cluster) => {
    const options: SessionManagerOptions = {
      stores: cluster.storeConfigs(),
      copies: settings.copies,
    }
    const manager = createSessionManager(options)
    let child: ChildProcess | undefined
    const connections: LineConnection[] = []
    try {
      await manager.applySchema()
      const ids = await populate(manager)
      const started = await startServerProcess(options)
      child = started.child
      for (let i = 0; i < settings.connections; i++)
        connections.push(await LineConnection.open(started.port))

      const value = Buffer.alloc(settings.valueBytes, 'v')
      const sessionOf = lanes(ids)
      const plan: { operation: OperationName; server: Operation; inProcess: Operation }[] = [
        {
          operation: 'get',
          server: async (worker) => {
            const id = sessionOf(worker)
            const [payload] = await (connections[worker] as LineConnection).exchange(
              Buffer.from(`open ${id} r\nget k\nclose\n`),
              3,
            )
            if (payload === undefined || payload.length === 0) throw new Error('get found no value')
          },
          inProcess: async (worker) => {
            if ((await manager.getValue(sessionOf(worker), 'k')) === undefined) {
              throw new Error('getValue found no value')
            }
          },
        },
        {
          operation: 'put',
          server: async (worker) => {
            const id = sessionOf(worker)
            await (connections[worker] as LineConnection).exchange(
              Buffer.concat([
                Buffer.from(`open ${id} w\nput k ${value.length}\n`),
                value,
                Buffer.from('\ncommit\nclose\n'),
              ]),
              4,
            )
          },
          inProcess: async (worker) => {
            const text = value.toString('utf8')
            await manager.withSessionLock(sessionOf(worker), (data) => ({ ...data, k: text }))
          },
        },
      ]

      const results: CaseResult[] = []
      for (const [index, { operation, server, inProcess }] of plan.entries()) {
        const outcome = await runRounds(
          [
            { name: 'server', operation: server },
            { name: 'in-process', operation: inProcess },
          ],
          timedRounds(
            settings,
            settings.connections,
            `[${index + 1}/${plan.length}] ${operation}`,
            progress,
          ),
        )
        for (const side of ['server', 'in-process'] as const) {
          const result = outcome.get(side)
          if (result === undefined) throw new Error(`no result for ${side}`)
          results.push({
            operation,
            side,
            connections: settings.connections,
            ...summarize(result.merged),
            roundOpsPerSecond: roundRates(result.rounds),
          })
        }
      }
      progress.clear()
      const wallSeconds = (performance.now() - startedAt) / 1000
      printReport(results, wallSeconds)
      const file = await writeResults(
        'server',
        {
          benchmark: 'server',
          environment,
          settings: { ...settings, library: 'dist/', server: 'child process, line protocol' },
          wallSeconds,
          results,
        },
        args,
      )
      console.log(`\nResults written to ${file}`)
    } finally {
      progress.clear()
      for (const connection of connections) connection.close()
      if (child !== undefined) await stopServerProcess(child)
      await manager.close()
    }
  },
  () => progress.clear(),
)

/** Writes every session with a value at `k`; returns their ids. */
async function populate(manager: SessionManager): Promise<string[]> {
  const ids = Array.from({ length: settings.connections * settings.sessionsPerConnection }, () =>
    manager.generateId(),
  )
  let next = 0
  await runLoad(
    async () => {
      const id = ids[next++] as string
      await manager.writeSession(id, { k: 'v'.repeat(settings.valueBytes), user: 'bench', n: next })
    },
    {
      inFlight: 64,
      count: ids.length,
      onProgress: (done) => progress.update(`populating ${done}/${ids.length}`),
    },
  )
  return ids
}

/**
 * The session a lane uses next: lane w cycles through ids w, w + 64, w + 128... so no two
 * lanes ever touch one session, and put measures the lock's cost, not contention for it.
 */
function lanes(ids: readonly string[]): (worker: number) => string {
  const turn = new Array<number>(settings.connections).fill(0)
  return (worker) => {
    const step = (turn[worker] = ((turn[worker] as number) + 1) % settings.sessionsPerConnection)
    return ids[worker + step * settings.connections] as string
  }
}

async function startServerProcess(
  options: SessionManagerOptions,
): Promise<{ child: ChildProcess; port: number }> {
  const child = spawn(process.execPath, ['--input-type=module', '-e', SERVER_PROCESS], {
    env: { ...process.env, BENCH_DIST: DIST.href, BENCH_MANAGER_OPTIONS: JSON.stringify(options) },
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  const port = await new Promise<number>((resolve, reject) => {
    let output = ''
    child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
      output += chunk
      const line = output.split('\n', 1)[0] as string
      if (output.includes('\n')) resolve((JSON.parse(line) as { port: number }).port)
    })
    child.once('exit', (code) => reject(new Error(`the server process exited with code ${code}`)))
  })
  return { child, port }
}

async function stopServerProcess(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return
  const exited = new Promise((resolve) => child.once('exit', resolve))
  child.kill('SIGTERM')
  const timer = setTimeout(() => child.kill('SIGKILL'), 10_000)
  await exited
  clearTimeout(timer)
}

function printReport(results: readonly CaseResult[], wallSeconds: number): void {
  const find = (operation: OperationName, side: Side): CaseResult => {
    const result = results.find((r) => r.operation === operation && r.side === side)
    if (result === undefined) throw new Error(`missing ${operation} ${side}`)
    return result
  }
  const rows = (['get', 'put'] as const).map((operation) => {
    const server = find(operation, 'server')
    const inProcess = find(operation, 'in-process')
    return [
      operation,
      formatNumber(server.opsPerSecond),
      formatNumber(server.p50Millis, 2),
      formatNumber(server.p99Millis, 2),
      formatNumber(inProcess.opsPerSecond),
      formatNumber(inProcess.p50Millis, 2),
      formatNumber(inProcess.p99Millis, 2),
      formatNumber(server.opsPerSecond / inProcess.opsPerSecond, 2),
    ]
  })
  console.log(
    `\nSession server vs library in-process: ${settings.connections} connections / operations in flight, ` +
      `${settings.stores} local stores, copies = ${settings.copies}, ${settings.secondsPerCase} s per side ` +
      `in ${settings.rounds} alternating rounds (${wallSeconds.toFixed(0)} s in all)\n`,
  )
  console.log(
    markdownTable(
      [
        { header: 'operation' },
        { header: 'server ops/s', align: 'right' },
        { header: 'server p50 ms', align: 'right' },
        { header: 'server p99 ms', align: 'right' },
        { header: 'in-process ops/s', align: 'right' },
        { header: 'in-process p50 ms', align: 'right' },
        { header: 'in-process p99 ms', align: 'right' },
        { header: 'server / in-process', align: 'right' },
      ],
      rows,
    ),
  )
  console.log(
    '\nget: open <id> r + get + close (one store read) vs sm.getValue. ' +
      'put: open <id> w + put + commit + close (lock, read, fenced write, unlock) vs sm.withSessionLock.',
  )
}
