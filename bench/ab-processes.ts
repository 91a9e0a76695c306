/**
 * A/B of two compiled builds in separate processes: a fixed number of `readSession` or
 * `writeSession` calls per process, against stores that one long-running process holds, for
 * timing whole processes in turn (`farm-bench --vs` pairs them and reports the ratios of CPU,
 * wall time and peak memory). bench/ab.ts runs both builds in one process, which is quicker but
 * shares one heap: garbage one build leaves is collected during either build's rounds, so a
 * change in what a build allocates or keeps alive shows there at a fraction of its size.
 *
 * Usage:
 *   node --import tsx bench/ab-processes.ts hold --state /tmp/ab.json &   # prints "ready"
 *   farm-bench -n 8 --timeout 900 \
 *     --vs 'node --import tsx bench/ab-processes.ts run --state /tmp/ab.json --library /tmp/before/dist' \
 *     -- node --import tsx bench/ab-processes.ts run --state /tmp/ab.json --library dist
 *   kill %1
 */
import { readFileSync, writeFileSync } from 'node:fs'
import { pathToFileURL } from 'node:url'
import { parseArgs } from 'node:util'
import type { SessionData } from '../lib/index.js'
import { loadBuiltLibrary } from './lib/built-library.js'
import { sessionData, writeSessions } from './lib/session-data.js'
import { withLocalCluster } from './lib/with-cluster.js'

const USAGE = `node --import tsx bench/ab-processes.ts hold|run --state FILE [options]

  hold              start 3 local stores, write the sessions, save FILE, and keep the
                    stores until SIGINT or SIGTERM
  run               run the operations against the stores FILE names, then exit
  --state FILE      where hold saves the stores and session ids (required)
  --library DIR     run: the build's dist/ directory                      [dist]
  --op read|write   run: readSession (copies 2) or writeSession (copies 1) [read]
  --operations N    run: operations, after 2,000 untimed ones              [400000]
  --in-flight N     run: operations in flight                              [64]
  --sessions N      hold: sessions written                                 [10000]`

interface State {
  stores: Parameters<typeof import('../lib/index.js').createSessionManager>[0]['stores']
  ids: string[]
}

const { positionals, values } = parseArgs({
  allowPositionals: true,
  options: {
    state: { type: 'string' },
    library: { type: 'string', default: 'dist' },
    op: { type: 'string', default: 'read' },
    operations: { type: 'string', default: '400000' },
    'in-flight': { type: 'string', default: '64' },
    sessions: { type: 'string', default: '10000' },
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
    writeFileSync(statePath, JSON.stringify({ stores, ids } satisfies State))
    console.log('ready')
    // Until a signal: withLocalCluster then stops the stores.
    await new Promise(() => setInterval(() => {}, 2 ** 30))
  })
} else {
  const { stores, ids } = JSON.parse(readFileSync(statePath, 'utf8')) as State
  const library = pathToFileURL(`${values.library.replace(/\/$/, '')}/`)
  const { index } = await loadBuiltLibrary(library)
  const op = values.op
  const manager = index.createSessionManager({ stores, copies: op === 'read' ? 2 : 1 })
  const data: SessionData[] = ids.map((_, i) => sessionData(i))
  const pick = (): number => Math.floor(Math.random() * ids.length)
  const one = async (): Promise<void> => {
    const i = pick()
    if (op === 'write') await manager.writeSession(ids[i]!, data[i]!)
    else if ((await manager.readSession(ids[i]!)) === null) throw new Error('a session is missing')
  }
  for (let i = 0; i < 2000; i++) await one()
  let left = count('operations', values.operations)
  const workers = Array.from({ length: count('in-flight', values['in-flight']) }, async () => {
    while (left-- > 0) await one()
  })
  await Promise.all(workers)
  await manager.close()
}
