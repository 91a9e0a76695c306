/**
 * How long moving to session-shards takes: `session-shards import` (the built CLI, a process of
 * its own, as an operator runs it) from connect-redis's keys and from express-mysql-session's
 * table, N sessions each, beside the library writing the same sessions itself the way the
 * import does (`writeSession` at 32 in flight, compare-and-set at version 0, copies 2), in the
 * order they were made and in id order (the order the express-mysql-session import reads its
 * table in, which the stores' primary key favours): the yardsticks, against the same stores in
 * the same run. The target stores are emptied before every case, so each one writes every
 * session. The express-mysql-session table lives on a fourth store, the Redis keys in a
 * redis-server of the benchmark's own. Run with `npm run bench -- --suite import [--quick]`.
 */
import { spawn } from 'node:child_process'
import { performance } from 'node:perf_hooks'
import { fileURLToPath } from 'node:url'
import { createClient } from 'redis'
import type { SessionData } from '../lib/index.js'
import { parseBenchArgs } from './lib/args.js'
import { loadBuiltLibrary } from './lib/built-library.js'
import { createProgress } from './lib/progress.js'
import { startRedisServer } from './lib/redis-server.js'
import { describeEnvironment, writeResults } from './lib/results.js'
import { averageBytes, sessionData } from './lib/session-data.js'
import { median } from './lib/stats.js'
import { formatNumber, markdownTable } from './lib/table.js'
import { serverVersion, withLocalCluster } from './lib/with-cluster.js'

const USAGE = `Usage: npm run bench -- --suite import [--quick]

Imports N sessions with session-shards import, from connect-redis's keys and from an
express-mysql-session table, beside the library writing the same sessions itself, and
reports the time each takes and its ratio to the library's own writes in the same order.

  --quick      a short run to check that the benchmark works; not for citing`

const args = parseBenchArgs(USAGE)
const SESSIONS = args.quick ? 2_000 : 100_000
const ROUNDS = args.quick ? 1 : 3
/** The import's own: writes in flight, copies, rows or keys read per step. */
const IN_FLIGHT = 32
const COPIES = 2
const BATCH_SIZE = 500
const ROWS_PER_INSERT = 1_000
const CLI = fileURLToPath(new URL('../dist/cli/main.js', import.meta.url))
const EMS_TABLE = 'ems_sessions'

const { index: library } = await loadBuiltLibrary()
const progress = createProgress()

/** A session as express-session leaves it: the app's data, and the cookie with its expiry. */
function expressSession(index: number, expires: Date): SessionData {
  return {
    cookie: {
      originalMaxAge: 3_600_000,
      expires: expires.toISOString(),
      httpOnly: true,
      path: '/',
    },
    ...sessionData(index),
  }
}

type Case =
  | 'library writeSession'
  | 'library writeSession, in id order'
  | 'import connect-redis'
  | 'import express-mysql-session'
const CASES: readonly Case[] = [
  'library writeSession',
  'library writeSession, in id order',
  'import connect-redis',
  'import express-mysql-session',
]
/**
 * Which of the library's own runs each case compares with: the order of the writes matters to
 * the stores (the session id is their primary key; in key order InnoDB appends), and the
 * express-mysql-session import reads its table in id order, connect-redis's SCAN in hash order.
 */
const YARDSTICK: Record<Case, Case> = {
  'library writeSession': 'library writeSession',
  'library writeSession, in id order': 'library writeSession, in id order',
  'import connect-redis': 'library writeSession',
  'import express-mysql-session': 'library writeSession, in id order',
}

const startedAt = performance.now()
const redis = await startRedisServer()
try {
  await withLocalCluster({ stores: 4 }, async (cluster) => {
    const targets = cluster.stores.slice(0, 3)
    const source = cluster.stores[3]!
    const stores = cluster.storeConfigs().slice(0, 3)
    const version = await serverVersion(cluster)
    const schema = library.createSessionManager({ stores, copies: COPIES })
    await schema.applySchema()
    await schema.close()

    const expires = new Date(Date.now() + 3_600_000)
    const ids = Array.from({ length: SESSIONS }, () => library.generateSessionId())
    const sessions = ids.map((_, index) => expressSession(index, expires))

    progress.update(`loading ${formatNumber(SESSIONS)} sessions into redis-server`)
    const client = createClient({ url: redis.url })
    await client.connect()
    for (let start = 0; start < SESSIONS; start += ROWS_PER_INSERT) {
      const batch = client.multi()
      for (let index = start; index < Math.min(SESSIONS, start + ROWS_PER_INSERT); index++) {
        batch.set(`sess:${ids[index]}`, JSON.stringify(sessions[index]), {
          expiration: { type: 'EX', value: 3600 },
        })
      }
      await batch.exec()
    }
    await client.close()

    progress.update(
      `loading ${formatNumber(SESSIONS)} sessions into an express-mysql-session table`,
    )
    await source.query(
      `CREATE TABLE ${EMS_TABLE} (session_id VARCHAR(128) COLLATE utf8mb4_bin NOT NULL, ` +
        'expires INT UNSIGNED NOT NULL, data MEDIUMTEXT COLLATE utf8mb4_bin, ' +
        'PRIMARY KEY (session_id)) ENGINE=InnoDB',
    )
    const expiresSeconds = Math.round(expires.getTime() / 1000)
    for (let start = 0; start < SESSIONS; start += ROWS_PER_INSERT) {
      const rows = ids
        .slice(start, start + ROWS_PER_INSERT)
        .map((id, k) => [id, expiresSeconds, JSON.stringify(sessions[start + k])])
      await source.query(`INSERT INTO ${EMS_TABLE} (session_id, expires, data) VALUES ?`, [rows])
    }

    const emptyTargets = (): Promise<unknown> =>
      Promise.all(targets.map((store) => store.query('TRUNCATE TABLE sessions')))

    // In the order the express-mysql-session import reads its table (MariaDB's binary collation
    // of ASCII ids is JavaScript's string order).
    const idOrder = ids.map((_, index) => index).sort((a, b) => (ids[a]! < ids[b]! ? -1 : 1))
    const randomOrder = ids.map((_, index) => index)
    const libraryWrites = async (order: readonly number[]): Promise<void> => {
      const manager = library.createSessionManager({ stores, copies: COPIES })
      try {
        let next = 0
        const lane = async (): Promise<void> => {
          while (next < SESSIONS) {
            const index = order[next++]!
            await manager.writeSession(ids[index]!, sessions[index]!, {
              expiresAt: expires,
              expectedVersion: 0,
            })
          }
        }
        await Promise.all(Array.from({ length: IN_FLIGHT }, lane))
      } finally {
        await manager.close()
      }
    }
    const importFrom = async (kind: string, from: string, extra: string[]): Promise<void> => {
      const run = await runImport([kind, '--batch-size', String(BATCH_SIZE), '--json', ...extra], {
        SESSION_SHARDS_STORES: targets.map((store) => `${store.id}=${store.uri}`).join(','),
        SESSION_SHARDS_COPIES: String(COPIES),
        SESSION_SHARDS_IMPORT_FROM: from,
      })
      const result = JSON.parse(run.stdout) as { ok: boolean; imported: number }
      if (run.code !== 0 || !result.ok || result.imported !== SESSIONS) {
        throw new Error(`import ${kind} did not import every session: ${run.stdout}${run.stderr}`)
      }
    }
    const runCase: Record<Case, () => Promise<void>> = {
      'library writeSession': () => libraryWrites(randomOrder),
      'library writeSession, in id order': () => libraryWrites(idOrder),
      'import connect-redis': () => importFrom('connect-redis', redis.url, []),
      'import express-mysql-session': () =>
        importFrom('express-mysql-session', source.uri, ['--table', EMS_TABLE]),
    }

    const seconds = new Map<Case, number[]>(CASES.map((name) => [name, []]))
    for (let round = 0; round < ROUNDS; round++) {
      // Cases take turns, so that a slow spell of this shared machine lands on each alike.
      for (let turn = 0; turn < CASES.length; turn++) {
        const name = CASES[(round + turn) % CASES.length]!
        progress.update(`round ${round + 1}/${ROUNDS}: ${name}`)
        await emptyTargets()
        const started = performance.now()
        await runCase[name]()
        seconds.get(name)!.push((performance.now() - started) / 1000)
      }
    }
    progress.clear()

    const rows = CASES.map((name) => {
      const times = seconds.get(name)!
      const yardstick = median(seconds.get(YARDSTICK[name])!)
      return {
        case: name,
        sessions: SESSIONS,
        seconds: median(times),
        allSeconds: times,
        sessionsPerSecond: SESSIONS / median(times),
        comparedWith: YARDSTICK[name],
        toLibrary: median(times) / yardstick,
      }
    })
    const environment = describeEnvironment()
    console.log(
      `## Import: ${formatNumber(SESSIONS)} sessions of ${formatNumber(averageBytes(sessions))} ` +
        `bytes\n\nNode ${environment.node}, ${version}, 3 target stores and a fourth holding the ` +
        `express-mysql-session table, redis-server ${redis.version}; copies ${COPIES}, ` +
        `${IN_FLIGHT} writes in flight, ${BATCH_SIZE} sessions read per step; the median of ` +
        `${ROUNDS} round(s), the cases taking turns; the import's time is its whole process.\n`,
    )
    console.log(
      markdownTable(
        [
          { header: 'case' },
          { header: 'seconds', align: 'right' },
          { header: 'sessions/s', align: 'right' },
          { header: 'time / the library writing them itself, in the same order', align: 'right' },
        ],
        rows.map((row) => [
          row.case,
          formatNumber(row.seconds, 1),
          formatNumber(row.sessionsPerSecond),
          `${formatNumber(row.toLibrary, 2)}×`,
        ]),
      ),
    )
    const file = await writeResults(
      'import',
      {
        benchmark: 'import',
        environment,
        serverVersion: version,
        redisVersion: redis.version,
        settings: { sessions: SESSIONS, rounds: ROUNDS, inFlight: IN_FLIGHT, copies: COPIES },
        wallSeconds: (performance.now() - startedAt) / 1000,
        results: rows,
      },
      args,
    )
    console.log(`\nResults written to ${file}`)
  })
} finally {
  await redis.stop()
}

/** Runs the built CLI's `import` to its end; stdout and stderr piped (no progress bar). */
function runImport(
  args: string[],
  env: Record<string, string>,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [CLI, 'import', ...args], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let stdout = ''
  let stderr = ''
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk))
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk))
  return new Promise((resolve, reject) => {
    child.once('error', reject)
    child.once('close', (code) => resolve({ code, stdout, stderr }))
  })
}
