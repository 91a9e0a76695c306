/**
 * A/B of two compiled builds in separate processes: a fixed number of `readSession` or
 * `writeSession` calls per process, against stores that one long-running process holds, for
 * timing whole processes in turn (`farm-bench --vs` pairs them and reports the ratios of CPU,
 * wall time and peak memory). bench/ab.ts runs both builds in one process, which is quicker but
 * shares one heap: garbage one build leaves is collected during either build's rounds, so a
 * change in what a build allocates or keeps alive shows there at a fraction of its size.
 *
 * With `hold --redis` and `run --library connect-redis`, the same operations go through
 * connect-redis to a redis-server holding the same sessions: the yardstick of the issue's
 * client-CPU target for reads, timed the same way.
 *
 * Usage:
 *   node --import tsx bench/ab-processes.ts hold --state /tmp/ab.json &   # prints "ready"
 *   farm-bench -n 8 --timeout 900 \
 *     --vs 'node --import tsx bench/ab-processes.ts run --state /tmp/ab.json --library /tmp/before/dist' \
 *     -- node --import tsx bench/ab-processes.ts run --state /tmp/ab.json --library dist
 *   kill %1
 * Against redis: `hold --redis`, then `--vs '... run ... --library connect-redis'`; add
 * `--latency-log /tmp/lat.jsonl` to both commands for each run's latency and CPU per operation.
 */
import { appendFileSync, readFileSync, writeFileSync } from 'node:fs'
import { pathToFileURL } from 'node:url'
import { parseArgs } from 'node:util'
import { RedisStore } from 'connect-redis'
import { createClient } from 'redis'
import type { SessionData } from '../lib/index.js'
import { loadBuiltLibrary } from './lib/built-library.js'
import { startRedisServer } from './lib/redis-server.js'
import { sessionData, writeSessions } from './lib/session-data.js'
import { summarize } from './lib/stats.js'
import { withLocalCluster } from './lib/with-cluster.js'

const USAGE = `node --import tsx bench/ab-processes.ts hold|run --state FILE [options]

  hold              start 3 local stores, write the sessions, save FILE, and keep the
                    stores until SIGINT or SIGTERM
  run               run the operations against the stores FILE names, then exit
  --state FILE      where hold saves the stores and session ids (required)
  --redis           hold: also start a redis-server (nothing persisted) holding the
                    same sessions, written through connect-redis
  --library DIR     run: the build's dist/ directory, or connect-redis     [dist]
  --op read|write   run: readSession (copies 2) or writeSession (copies 1) [read]
  --operations N    run: operations, after 2,000 untimed ones              [400000]
  --in-flight N     run: operations in flight                              [64]
  --sessions N      hold: sessions written                                 [10000]
  --latency-log F   run: also time every operation and append one JSON line to F
                    (library, op, in flight, ops/s, p50, p99, CPU µs per operation of
                    the timed part alone): latency beside the whole process's CPU
                    that farm-bench reports, at the cost of two clock reads per
                    operation on both sides`

interface State {
  stores: Parameters<typeof import('../lib/index.js').createSessionManager>[0]['stores']
  ids: string[]
  /** With `hold --redis`: the redis-server holding the same sessions. */
  redisUrl?: string
}

/** One operation on session `index`: a read that must find it, or a write. */
type Operation = (index: number) => Promise<void>

const { positionals, values } = parseArgs({
  allowPositionals: true,
  options: {
    state: { type: 'string' },
    library: { type: 'string', default: 'dist' },
    op: { type: 'string', default: 'read' },
    operations: { type: 'string', default: '400000' },
    'in-flight': { type: 'string', default: '64' },
    sessions: { type: 'string', default: '10000' },
    'latency-log': { type: 'string' },
    redis: { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  },
})
const mode = positionals[0]
if (values.help || (mode !== 'hold' && mode !== 'run') || values.state === undefined) {
  console.log(USAGE)
  process.exit(values.help ? 0 : 2)
}
if (values.op !== 'read' && values.op !== 'write') throw new TypeError('--op must be read or write')
const count = (flag: string, text: string): number => {
  const value = Number(text)
  if (!Number.isSafeInteger(value) || value < 1)
    throw new TypeError(`--${flag} must be a positive integer`)
  return value
}
const statePath = values.state

if (mode === 'hold') {
  const sessions = count('sessions', values.sessions)
  await withLocalCluster({ stores: 3 }, async (cluster) => {
    const { index } = await loadBuiltLibrary()
    const stores = cluster.storeConfigs()
    const manager = index.createSessionManager({ stores, copies: 2 })
    await manager.applySchema()
    const ids = Array.from({ length: sessions }, () => index.generateSessionId())
    await writeSessions(manager, ids, sessionData)
    await manager.close()
    const redis = values.redis ? await startRedisServer() : undefined
    try {
      if (redis !== undefined) {
        const peer = await connectRedis(redis.url)
        await writeSessions(peer, ids, sessionData)
        await peer.close()
      }
      writeFileSync(statePath, JSON.stringify({ stores, ids, redisUrl: redis?.url } as State))
      console.log('ready')
      // Until a signal: withLocalCluster then stops the stores (and the finally the redis).
      await new Promise((resolve) => {
        setInterval(() => {}, 2 ** 30)
        for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, resolve)
      })
    } finally {
      await redis?.stop()
    }
  })
} else {
  const { stores, ids, redisUrl } = JSON.parse(readFileSync(statePath, 'utf8')) as State
  const op = values.op
  const data: SessionData[] = ids.map((_, i) => sessionData(i))
  let close: () => Promise<void>
  let operation: Operation
  if (values.library === 'connect-redis') {
    if (redisUrl === undefined) throw new Error('--library connect-redis needs hold --redis')
    const peer = await connectRedis(redisUrl)
    close = () => peer.close()
    operation = async (i) => {
      if (op === 'write') await peer.writeSession(ids[i]!, data[i]!)
      else if ((await peer.readSession(ids[i]!)) == null) throw new Error('a session is missing')
    }
  } else {
    const library = pathToFileURL(`${values.library.replace(/\/$/, '')}/`)
    const { index } = await loadBuiltLibrary(library)
    const manager = index.createSessionManager({ stores, copies: op === 'read' ? 2 : 1 })
    close = () => manager.close()
    operation = async (i) => {
      if (op === 'write') await manager.writeSession(ids[i]!, data[i]!)
      else if ((await manager.readSession(ids[i]!)) === null)
        throw new Error('a session is missing')
    }
  }
  const one = (): Promise<void> => operation(Math.floor(Math.random() * ids.length))
  for (let i = 0; i < 2000; i++) await one()
  const operations = count('operations', values.operations)
  const inFlight = count('in-flight', values['in-flight'])
  const logPath = values['latency-log']
  const latenciesMillis = new Float64Array(logPath === undefined ? 0 : operations)
  let left = operations
  const started = performance.now()
  const cpuAtStart = process.cpuUsage()
  const workers = Array.from({ length: inFlight }, async () => {
    while (left-- > 0) {
      if (logPath === undefined) {
        await one()
        continue
      }
      const slot = left
      const start = performance.now()
      await one()
      latenciesMillis[slot] = performance.now() - start
    }
  })
  await Promise.all(workers)
  const elapsedMillis = performance.now() - started
  const cpu = process.cpuUsage(cpuAtStart)
  await close()
  if (logPath !== undefined) {
    const summary = summarize({ ops: operations, failed: 0, elapsedMillis, latenciesMillis })
    const cpuMicrosPerOp = (cpu.user + cpu.system) / operations
    const line = { library: values.library, op, inFlight, ...summary, cpuMicrosPerOp }
    appendFileSync(logPath, `${JSON.stringify(line)}\n`)
  }
}

/** A connect-redis store on one connection, with the manager's read and write shape. */
async function connectRedis(url: string) {
  const client = createClient({ url })
  await client.connect()
  const store = new RedisStore({ client })
  const call = <T>(body: (done: (error?: unknown, value?: T) => void) => void) =>
    new Promise<T | undefined>((resolve, reject) =>
      body((error, value) => (error ? reject(error) : resolve(value))),
    )
  return {
    readSession: (id: string) => call<SessionData | null>((done) => store.get(id, done)),
    writeSession: (id: string, data: SessionData) =>
      call<void>((done) => store.set(id, data as never, done)).then(() => undefined),
    close: () => client.close(),
  }
}
