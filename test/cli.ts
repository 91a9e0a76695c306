import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import t from 'tap'
import { batchSizeOption } from '../lib/call-arguments.js'
import { sessionOrder } from '../lib/cli/session-order.js'
import { generateSessionId, InvalidOptionError, InvalidSessionIdError } from '../lib/index.js'
import type { SessionManagerOptions } from '../lib/index.js'
import { resolveOptions } from '../lib/options.js'
import { startTestCluster } from './helpers/cluster.js'
import { runCli, type CliOptions, type CliRun } from './helpers/cli.js'
import { createManager, startManager } from './helpers/manager.js'

// The session-shards CLI run as a child process (its built `bin`, or the source through tsx:
// helpers/cli.ts) against real stores.
const cluster = await startTestCluster(t, { stores: 3 })
const crashTest = cluster.canCrash ? t.test.bind(t) : t.skip.bind(t)
const password = cluster.stores[0]!.config.password
const storesVariable = cluster.stores.map((store) => `${store.id}=${store.uri}`).join(',')
// A working directory without config files, so only the environment configures the CLI.
const cwd = await mkdtemp(path.join(os.tmpdir(), 'session-shards-cli-test-'))
t.teardown(() => rm(cwd, { recursive: true, force: true }))

/** A secret for signed ids (32 characters at least). */
const SECRET = 'a signing secret of more than 32 characters'

/** Every output of every run, checked for the password at the end. */
const outputs: { args: string; text: string }[] = []

async function cli(args: string[], options: CliOptions = {}): Promise<CliRun> {
  const run = await runCli(args, {
    cwd,
    ...options,
    env: { SESSION_SHARDS_STORES: storesVariable, ...options.env },
  })
  outputs.push({ args: args.join(' '), text: run.stdout + run.stderr })
  return run
}

function json<T = any>(run: CliRun): T {
  try {
    return JSON.parse(run.stdout) as T
  } catch {
    throw new Error(
      `not one JSON document on stdout (exit ${run.code}): ${JSON.stringify(run.stdout.slice(0, 200))}; stderr: ${run.stderr.slice(0, 500)}`,
    )
  }
}

/**
 * Connections each store has accepted so far. The query that reads it opens one itself, so two
 * readings with nothing in between differ by exactly one on every store.
 */
async function connections(): Promise<number[]> {
  return Promise.all(
    cluster.stores.map(async (store) => {
      const rows = await store.query<{ Value: string }>("SHOW GLOBAL STATUS LIKE 'Connections'")
      return Number(rows[0]!.Value)
    }),
  )
}

/** Connections the stores accepted while `action` ran, besides the measuring ones. */
async function connectionsDuring(action: () => Promise<unknown>): Promise<number> {
  const before = await connections()
  await action()
  const after = await connections()
  return after.reduce((sum, value, index) => sum + value - before[index]! - 1, 0)
}

/** A config file in the working directory: the cluster's stores and `options`. */
async function configFile(name: string, options: Record<string, unknown>): Promise<string> {
  const stores = cluster.stores.map((store) => ({ id: store.id, uri: store.uri }))
  await writeFile(path.join(cwd, name), JSON.stringify({ stores, ...options }))
  return name
}

const COMMANDS = [
  'schema',
  'status',
  'locate',
  'show',
  'sweep',
  'repair',
  'rebalance',
  'import',
  'bench',
  'demo',
]

t.test('--help lists every command; each command has its own help', async (t) => {
  const top = await cli(['--help'])
  t.equal(top.code, 0)
  for (const name of COMMANDS) t.match(top.stdout, new RegExp(`^  ${name} `, 'm'), name)
  t.match(top.stdout, /Exit codes: 0 ok, 1 .*, 2 usage or configuration error/s)
  for (const name of COMMANDS) {
    const help = await cli([name, '--help'])
    t.equal(help.code, 0, `${name} --help exits 0`)
    t.match(help.stdout, new RegExp(`^Usage: session-shards ${name}`), `${name} --help`)
  }
  const bare = await cli([])
  t.equal(bare.code, 2, 'no command: usage error')
  t.match(bare.stderr, /^Usage: session-shards <command>/)
})

t.test('--json: a run that fails still prints one JSON document on stdout', async (t) => {
  const malformed = await cli(['locate', 'too-short', '--json'])
  t.equal(malformed.code, 2)
  t.match(json(malformed), { ok: false, error: { code: 'INVALID_SESSION_ID' } })
  t.match(malformed.stderr, /^session-shards locate: Invalid session id/)
  const unknown = await cli(['locate', '--json', '--verbose'])
  t.equal(unknown.code, 2)
  t.match(json(unknown), { ok: false, error: { code: 'USAGE' } })
  const noConfig = await cli(['status', '--json'], { env: { SESSION_SHARDS_STORES: '' } })
  t.equal(noConfig.code, 2)
  t.match(json(noConfig), { ok: false, error: { code: 'USAGE', message: /no configuration/ } })
})

t.test('ids that begin with "-" are ids, not options (1 in 64 generated ids does)', async (t) => {
  const manager = await startManager(t, cluster, { copies: 2 })
  // One dash, and two (1 in 4,096 generated ids begins so).
  for (const id of [`-A${generateSessionId().slice(2)}`, `--${generateSessionId().slice(2)}`]) {
    await manager.writeSession(id, { dash: true })
    for (const args of [
      ['locate', id, '--json'],
      ['locate', '--json', id],
      ['show', id, '--json'],
    ]) {
      const run = await cli(args)
      t.equal(run.code, 0, `${args.join(' ')}: exit 0 (${run.stderr.trim()})`)
      t.equal(json(run).id, id, `${args[0]}: the id as given`)
      if (args[0] === 'show') t.equal(json(run).verdict.state, 'live', 'and its copy found')
    }
  }
  t.equal((await cli(['locate', '--jsn'])).code, 2, 'a mistyped long option is still refused')
  t.equal((await cli(['locate', '-x'])).code, 2, 'a short unknown option is still refused')
})

t.test('schema apply is idempotent and reports every store', async (t) => {
  for (const round of [1, 2]) {
    const run = await cli(['schema', 'apply', '--json'])
    t.equal(run.code, 0, `run ${round} exits 0`)
    const result = json(run)
    t.equal(result.ok, true)
    t.same(
      result.stores.map((s: { id: string; ok: boolean }) => [s.id, s.ok]),
      cluster.stores.map((store) => [store.id, true]),
    )
  }
  const human = await cli(['schema', 'apply'])
  t.equal(human.code, 0)
  for (const store of cluster.stores)
    t.match(human.stdout, new RegExp(`${store.id}\\s.*\\sok$`, 'm'))
})

t.test('status --json: every store up, with probe, rows and circuit', async (t) => {
  const manager = await startManager(t, cluster)
  await manager.createSession({ status: 1 })
  const run = await cli(['status', '--json'])
  t.equal(run.code, 0)
  const status = json(run)
  t.equal(status.ok, true)
  t.equal(status.copies, 2)
  t.equal(status.table, 'sessions')
  t.equal(status.stores.length, cluster.stores.length)
  for (const [index, store] of cluster.stores.entries()) {
    const shown = status.stores[index]
    t.equal(shown.id, store.id)
    t.equal(
      shown.address,
      `${store.host}:${store.port}/${store.config.database}`,
      'host:port/db only',
    )
    t.equal(shown.reachable, true)
    t.type(shown.probeMillis, 'number')
    t.same(Object.keys(shown.rows).sort(), ['expired', 'live', 'tombstones'])
    t.equal(shown.circuit, 'up')
    t.equal(shown.error, null)
  }
  const live = status.stores.reduce(
    (sum: number, s: { rows: { live: number } }) => sum + s.rows.live,
    0,
  )
  t.ok(live >= 2, 'the session written counts on its 2 stores')
  const noCounts = json(await cli(['status', '--json', '--no-counts']))
  t.equal(noCounts.stores[0].rows, null, '--no-counts skips the counts')
})

t.test('status reports a live manager whose store list differs', async (t) => {
  const [first, second] = cluster.storeConfigs()
  const other = await startManager(t, cluster, { stores: [first!, second!] })
  const run = await cli(['status', '--json'])
  t.equal(run.code, 1, 'a problem: exit 1')
  const status = json(run)
  t.equal(status.ok, false)
  t.match(status.configMismatches, [
    { theirs: { stores: [first!.id, second!.id].sort() }, ours: { copies: 2 } },
  ])
  const human = await cli(['status', '--no-counts'])
  t.match(human.stdout, /config mismatch: a live manager places sessions with stores /)
  await other.close()
  t.equal((await cli(['status', '--json', '--no-counts'])).code, 0, 'agreed again once it closed')
})

t.test('locate prints the order and marks the first copies', async (t) => {
  const manager = await startManager(t, cluster)
  const id = generateSessionId()
  const run = await cli(['locate', id, '--json'])
  t.equal(run.code, 0)
  const result = json(run)
  t.same(
    result.order.map((entry: { storeId: string }) => entry.storeId),
    manager.locate(id),
  )
  t.same(
    result.order.map((entry: { holdsCopy: boolean }) => entry.holdsCopy),
    [true, true, false],
  )
  const human = await cli(['locate', id])
  t.equal(human.code, 0)
  t.match(human.stdout, new RegExp(`1\\s+${manager.locate(id)[0]}\\s+copy`))
  const bad = await cli(['locate', 'too-short'])
  t.equal(bad.code, 2, 'a malformed id is a usage error')
  t.match(bad.stderr, /Invalid session id/)
  t.equal((await cli(['locate'])).code, 2, 'no id')
})

t.test('locate asks no store, for a good id or a malformed one (docs/cli.md)', async (t) => {
  t.equal(await connectionsDuring(async () => {}), 0, 'the measure: no connection in between')
  let run: CliRun | undefined
  const opened = await connectionsDuring(async () => {
    run = await cli(['locate', generateSessionId(), '--json'])
  })
  t.equal(run!.code, 0)
  t.equal(opened, 0, 'no connection to any store')
  let bad: CliRun | undefined
  const openedForBad = await connectionsDuring(async () => {
    bad = await cli(['locate', 'too-short'])
  })
  t.equal(bad!.code, 2)
  t.equal(openedForBad, 0, 'a malformed id: no connection either')
})

t.test("the order locate computes is a manager's, for any placement", async (t) => {
  const stores = cluster.storeConfigs()
  const variants: Partial<SessionManagerOptions>[] = [
    {},
    { placement: 'rendezvous' },
    { copies: 1, previousStores: stores.slice(0, 2), previousPlacement: 'rendezvous' },
    { stores: [...stores].reverse(), placement: 'rendezvous', secrets: [SECRET] },
  ]
  for (const options of variants) {
    const manager = createManager(t, cluster, options)
    const resolved = resolveOptions({ stores, ...options })
    const ids = Array.from({ length: 300 }, () => manager.generateId())
    const differ = ids.filter(
      (id) => sessionOrder(resolved, id).join() !== manager.locate(id).join(),
    )
    t.same(differ, [], `${JSON.stringify(options.placement ?? 'classic')}: 300 ids agree`)
  }
  const signed = createManager(t, cluster, { secrets: [SECRET] })
  const resolved = resolveOptions({ stores, secrets: [SECRET] })
  t.throws(() => sessionOrder(resolved, generateSessionId()), InvalidSessionIdError, 'unsigned')
  t.throws(() => signed.locate(generateSessionId()), InvalidSessionIdError, 'as the manager')
  t.throws(() => sessionOrder(resolved, 'too-short'), InvalidSessionIdError, 'malformed')
})

t.test("locate gives a manager's order, under either placement", async (t) => {
  for (const placement of ['classic', 'rendezvous'] as const) {
    const manager = createManager(t, cluster, { placement })
    const config = await configFile(`${placement}.json`, { placement })
    for (let n = 0; n < 3; n++) {
      const id = generateSessionId()
      const run = await cli(['locate', id, '--json', '--config', config])
      t.equal(run.code, 0)
      t.same(
        json(run).order.map((entry: { storeId: string }) => entry.storeId),
        manager.locate(id),
        `${placement}: ${id}`,
      )
    }
  }
})

t.test('show: every copy on every store after a write through a manager', async (t) => {
  const manager = await startManager(t, cluster, { copies: 2 })
  const id = generateSessionId()
  const data = { userId: 42, cart: [1, 2, 3] }
  const written = await manager.writeSession(id, data)
  const run = await cli(['show', id, '--json'])
  t.equal(run.code, 0)
  const shown = json(run)
  const order = manager.locate(id)
  t.same(
    shown.stores.map((s: { storeId: string }) => s.storeId),
    order,
  )
  for (const store of shown.stores.slice(0, 2)) {
    t.equal(store.holdsCopy, true)
    t.equal(store.copy.version, written.version, `${store.storeId} has the written version`)
    t.equal(store.copy.deleted, false)
    t.equal(store.copy.dataBytes, Buffer.byteLength(JSON.stringify(data)))
    t.ok(Date.parse(store.copy.expiresAt) > Date.now())
  }
  t.equal(shown.stores[2].copy, null, 'no copy on the third store')
  t.equal(shown.verdict.state, 'live')
  t.notMatch(run.stdout, /cart/, 'the data itself is never printed')

  await manager.destroySession(id)
  const destroyed = json(await cli(['show', id, '--json']))
  t.equal(destroyed.verdict.state, 'destroyed')
  const human = await cli(['show', id])
  t.match(human.stdout, /tombstone/)
  t.match(human.stdout, /^Destroyed: /m)
})

t.test(
  'show refuses a malformed or unsigned id before asking any store (docs/cli.md)',
  async (t) => {
    let malformed: CliRun | undefined
    const opened = await connectionsDuring(async () => {
      malformed = await cli(['show', 'too-short', '--json'])
    })
    t.equal(malformed!.code, 2, 'a usage error')
    t.match(json(malformed!), { ok: false, error: { code: 'INVALID_SESSION_ID' } })
    t.equal(opened, 0, 'a malformed id: no connection to any store')

    const secrets = [SECRET]
    const config = await configFile('signed.json', { secrets })
    let unsigned: CliRun | undefined
    const openedForUnsigned = await connectionsDuring(async () => {
      unsigned = await cli(['show', generateSessionId(), '--config', config])
    })
    t.equal(unsigned!.code, 2, 'with secrets, an unsigned id is a usage error')
    t.match(unsigned!.stderr, /not signed/)
    t.equal(openedForUnsigned, 0, 'an unsigned id: no connection to any store')

    const manager = await startManager(t, cluster, { secrets })
    const id = await manager.createSession({ signed: true })
    const signed = await cli(['show', id, '--json', '--config', config])
    t.equal(signed.code, 0, `a signed id is shown (${signed.stderr.trim()})`)
    t.equal(json(signed).verdict.state, 'live')
  },
)

t.test(
  'show: a stored expiry no Date can hold is shown in milliseconds, not a crash',
  async (t) => {
    const manager = await startManager(t, cluster, { copies: 2 })
    const id = generateSessionId()
    await manager.writeSession(id, { odd: true })
    t.teardown(() =>
      Promise.all(cluster.stores.map((s) => s.query('DELETE FROM sessions WHERE id = ?', [id]))),
    )
    // A row written by other software (or by hand): BIGINT holds it, no Date does.
    const holder = manager.locate(id)[0]!
    await cluster.store(holder).query('UPDATE sessions SET expires_at = ? WHERE id = ?', [9e15, id])
    const run = await cli(['show', id, '--json'])
    t.equal(run.code, 0, `every store answered (stderr: ${run.stderr.trim()})`)
    const shown = json(run).stores.find((s: { storeId: string }) => s.storeId === holder)
    t.equal(shown.copy.expiresAt, 9e15, 'the raw milliseconds')
    t.notMatch(run.stderr, /Invalid time value/, 'no RangeError')
    const human = await cli(['show', id])
    t.equal(human.code, 0)
    t.match(human.stdout, new RegExp(`${holder}\\s.*\\s9000000000000000 ms\\s`))
  },
)

t.test('sweep deletes expired copies', async (t) => {
  const manager = await startManager(t, cluster, { copies: 2 })
  const id = generateSessionId()
  await manager.writeSession(id, { short: true }, { expiresAt: Date.now() + 50 })
  // Expired more than the sweep's grace (300 s) ago.
  for (const store of cluster.stores) {
    await store.query('UPDATE sessions SET expires_at = ? WHERE id = ?', [Date.now() - 301_000, id])
  }
  const run = await cli(['sweep', '--json', '--batch-size', '10', '--duty-cycle', '0.5'])
  t.equal(run.code, 0)
  const result = json(run)
  t.equal(result.ok, true)
  t.ok(result.deleted >= 2, `${result.deleted} rows deleted, the 2 copies among them`)
  t.equal(result.stores.length, cluster.stores.length)
  t.equal(json(await cli(['show', id, '--json'])).verdict.state, 'none', 'no copy left')
  t.equal(
    (await cli(['sweep', '--batch-size', '0'])).code,
    2,
    'a bad --batch-size is a usage error',
  )
  for (const bad of ['0', '', '1.5', '20%', '1e-1', '0x1']) {
    const refused = await cli(['sweep', '--duty-cycle', bad])
    t.equal(refused.code, 2, `--duty-cycle ${JSON.stringify(bad)} is a usage error`)
    t.match(refused.stderr, /--duty-cycle must be a number above 0 and at most 1/)
    if (bad.length > 1) t.notOk(refused.stderr.includes(bad), 'the bad value is not echoed')
  }
})

t.test('repair copies a missing copy back, and a second run finds nothing', async (t) => {
  const manager = await startManager(t, cluster, { copies: 2 })
  const id = generateSessionId()
  await manager.writeSession(id, { repair: 1 })
  const second = manager.locate(id)[1]!
  await cluster.store(second).query('DELETE FROM sessions WHERE id = ?', [id])
  const run = await cli(['repair', '--json'])
  t.equal(run.code, 0)
  const result = json(run)
  t.equal(result.ok, true)
  t.ok(result.copied >= 1, `${result.copied} copied`)
  t.equal(result.failed, 0)
  t.same(result.skippedStores, [])
  const shown = json(await cli(['show', id, '--json']))
  t.ok(shown.stores[1].copy !== null, `${second} holds its copy again`)
  const again = json(await cli(['repair', '--json']))
  t.equal(again.copied, 0, 'idempotent')
  const human = await cli(['repair'])
  t.equal(human.code, 0)
  t.match(human.stdout, /scanned\s+copied\s+removed\s+failed/)
})

t.test('rebalance empties a store that is only in previousStores', async (t) => {
  const manager = await startManager(t, cluster, { copies: 2 })
  const ids = await Promise.all(
    Array.from({ length: 30 }, (_, i) => manager.createSession({ rebalance: i })),
  )
  // As the procedure says: no app server left on the old config (its hint replay could put a
  // copy back on the leaving store behind the rebalance) before the rebalance starts.
  await manager.close()
  const stores = cluster.stores.map((store) => ({ id: store.id, uri: store.uri }))
  const leaving = stores[2]!.id
  await writeFile(
    path.join(cwd, 'shrink.json'),
    JSON.stringify({ stores: stores.slice(0, 2), previousStores: stores, copies: 2 }),
  )
  const run = await cli(['rebalance', '--json', '--config', 'shrink.json'])
  t.equal(run.code, 0)
  t.match(json(run), { ok: true, done: true, failed: 0, stoppedAt: null })
  const status = json(await cli(['status', '--json', '--config', 'shrink.json']))
  t.match(
    status.stores.find((s: { id: string }) => s.id === leaving),
    { retiring: true, rows: { live: 0 } },
    `${leaving} holds no live session`,
  )
  const shown = json(await cli(['show', ids[0]!, '--json', '--config', 'shrink.json']))
  t.same(
    shown.stores.map((s: { storeId: string; retiring: boolean }) => s.retiring),
    [false, false, true],
    'show asks the retiring store last',
  )
  t.equal(shown.stores[2].storeId, leaving)
  t.equal(shown.stores[2].copy, null, 'it holds no copy any more')
  t.match(json(await cli(['rebalance', '--json', '--config', 'shrink.json'])), {
    copied: 0,
    removed: 0,
  })
  t.equal((await cli(['rebalance', '--resume-from', 'store-z'])).code, 2, 'unknown store')
  // Back to the three stores of the environment's configuration.
  t.equal((await cli(['rebalance'])).code, 0)
  const reader = await startManager(t, cluster, { copies: 2 })
  for (const id of ids) t.ok(await reader.readSession(id), 'every session still reads')
})

t.test(
  '--batch-size past the library bound: a usage error before any store is asked',
  async (t) => {
    t.equal(batchSizeOption(10_000), 10_000, "the library's bound: 10,000")
    t.throws(() => batchSizeOption(10_001), InvalidOptionError)
    for (const command of ['repair', 'rebalance', 'sweep']) {
      let run: CliRun | undefined
      const opened = await connectionsDuring(async () => {
        run = await cli([command, '--batch-size', '10001', '--json'])
      })
      t.equal(run!.code, 2, `${command}: exit 2 (stderr: ${run!.stderr.trim()})`)
      t.match(run!.stderr, /--batch-size must be at most 10,000/, `${command}: names the flag`)
      t.equal(opened, 0, `${command}: no connection to any store`)
    }
    t.equal((await cli(['sweep', '--batch-size', '10000'])).code, 0, 'the bound itself is taken')
  },
)

t.test('bench says how to run the benchmark', async (t) => {
  const run = await cli(['bench', '--json'])
  t.equal(run.code, 0)
  t.match(json(run), { ran: false, clone: true })
  t.match((await cli(['bench'])).stdout, /npm run bench/)
})

t.test('bad configuration: one line on stderr, exit code 2, no password', async (t) => {
  await writeFile(
    path.join(cwd, 'broken.json'),
    `{ "stores": [{ "id": "a", "uri": "mysql://shards:${password}@127.0.0.1:1/db" } }`,
  )
  await writeFile(
    path.join(cwd, 'broken.mjs'),
    `export default { stores: [{ id: 'a', uri: 'mysql://shards:${password}@127.0.0.1:1/db' }] `,
  )
  await writeFile(path.join(cwd, 'wrong-type.json'), '[1, 2]')
  // Options, then 2 MiB of whitespace: valid JSON, but no config file is that large.
  await writeFile(
    path.join(cwd, 'huge.json'),
    Buffer.concat([Buffer.from('{"stores": []}'), Buffer.alloc(2 * 1024 * 1024, ' ')]),
  )
  // A key (someone else's file, say) that would set the terminal's title and clear a line.
  await writeFile(
    path.join(cwd, 'escapes.json'),
    JSON.stringify({ stores: [], '\u001b]0;pwned\u0007\u001b[2K': 1 }),
  )
  const cases: [string, string[], Record<string, string>][] = [
    ['no configuration at all', ['status'], { SESSION_SHARDS_STORES: '' }],
    [
      'a URI with a bad port',
      ['status'],
      { SESSION_SHARDS_STORES: `a=mysql://shards:${password}@127.0.0.1:port/db` },
    ],
    [
      'an entry without an id',
      ['status'],
      { SESSION_SHARDS_STORES: `mysql://shards:${password}@127.0.0.1/db` },
    ],
    ['copies above the number of stores', ['status'], { SESSION_SHARDS_COPIES: '4' }],
    ['copies not a number', ['status'], { SESSION_SHARDS_COPIES: 'two' }],
    ['invalid JSON holding the password', ['status', '--config', 'broken.json'], {}],
    ['an .mjs that does not load', ['status', '--config', 'broken.mjs'], {}],
    ['a config file that is not an object', ['status', '--config', 'wrong-type.json'], {}],
    ['a missing config file', ['status', '--config', 'missing.json'], {}],
    ['a config file of another kind', ['status', '--config', 'config.yaml'], {}],
    ['a config file larger than 1 MiB', ['status', '--config', 'huge.json'], {}],
    ['an unknown option', ['status', '--verbose'], {}],
    ['an unknown command', ['statsu'], {}],
    ['an unknown command with terminal escapes', ['\u001b[2J\u001b[Hx'], {}],
    ['an unknown option with terminal escapes', ['status', '--config', 'escapes.json'], {}],
    ['a stray argument', ['repair', 'now'], {}],
  ]
  for (const [what, args, env] of cases) {
    const run = await cli(args, { env })
    t.equal(run.code, 2, `${what}: exit code 2`)
    t.equal(run.stdout, '', `${what}: nothing on stdout`)
    t.match(run.stderr, /^session-shards[^\n]*\n$/, `${what}: one line (${run.stderr.trim()})`)
    t.notMatch(run.stderr, /[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/, `${what}: no escapes`)
  }
  const huge = await cli(['status', '--config', 'huge.json'])
  t.match(huge.stderr, /the --config file is larger than 1 MiB/, 'not read whole')
})

t.test('a store URI given as --config is not repeated in the error', async (t) => {
  // Errors never show a value given for an option: a URI pasted where the file name goes
  // holds a password.
  const password = 'pw-Zq8vTn3kLr5x'
  const uri = `mysql://app:${password}@10.0.0.11:3306/sessions`
  for (const suffix of ['', '.json', '.mjs']) {
    for (const json of [[], ['--json']]) {
      const run = await cli(['status', ...json, '--config', `${uri}${suffix}`])
      t.equal(run.code, 2, 'a usage error')
      t.notMatch(run.stderr + run.stdout, password, `URI${suffix} ${json}: no password`)
      t.notMatch(run.stderr + run.stdout, '10.0.0.11', `URI${suffix} ${json}: no URI`)
      t.match(run.stderr + run.stdout, '--config file', 'says which file it means')
    }
  }
})

t.test('a config file in the working directory, .mjs or .json', async (t) => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'session-shards-cli-config-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const stores = cluster.stores.map((store) => ({ id: store.id, uri: store.uri }))
  await writeFile(
    path.join(dir, 'session-shards.config.mjs'),
    `export default ${JSON.stringify({ stores, copies: 3 })}\n`,
  )
  const fromMjs = await cli(['status', '--json', '--no-counts'], {
    cwd: dir,
    env: { SESSION_SHARDS_STORES: '' },
  })
  t.equal(fromMjs.code, 0)
  t.equal(json(fromMjs).copies, 3, 'options from session-shards.config.mjs')
  await writeFile(path.join(dir, 'other.json'), JSON.stringify({ stores, copies: 1 }))
  const fromFlag = await cli(['locate', generateSessionId(), '--json', '--config', 'other.json'], {
    cwd: dir,
  })
  t.equal(fromFlag.code, 0)
  t.equal(json(fromFlag).copies, 1, '--config wins over the file in the directory')
})

t.test(
  'a store that refuses the login: exit code 1, no password or user name either',
  async (t) => {
    const store = cluster.stores[0]!
    const wrong = `wrong-${password}-x`
    // The server's refusal names the user ("Access denied for user 'x'@'host'").
    const user = 'ops_alice_prod'
    for (const login of [store.config.user, user]) {
      const uri = `mysql://${login}:${encodeURIComponent(wrong)}@${store.host}:${store.port}/${store.config.database}`
      const env = { SESSION_SHARDS_STORES: `${store.id}=${uri}` }
      for (const args of [
        ['status'],
        ['status', '--json'],
        ['schema', 'apply'],
        ['schema', 'apply', '--json'],
      ]) {
        const run = await cli(args, { env })
        const printed = run.stdout + run.stderr
        t.equal(run.code, 1, `${args.join(' ')}: exit 1`)
        t.match(printed, /Access denied/, `${args.join(' ')}: says why`)
        t.notMatch(printed, wrong, `${args.join(' ')}: the wrong password is not printed`)
        // The harness's user name is also part of its database's: look for it as the server quotes it.
        const shown = login === user ? login : `'${login}'`
        t.notMatch(printed, shown, `${args.join(' ')}: the user name is not printed`)
      }
    }
  },
)

crashTest('with a store killed: status, show, sweep and repair exit 1', async (t) => {
  const manager = await startManager(t, cluster, { copies: 2 })
  const id = generateSessionId()
  await manager.writeSession(id, { outage: 1 })
  const down = cluster.store(manager.locate(id)[0]!)
  await down.kill()
  t.teardown(() => (down.running ? undefined : down.start()))

  const status = await cli(['status', '--json'])
  t.equal(status.code, 1, 'status: a store is down')
  const shown = json(status).stores.find((s: { id: string }) => s.id === down.id)
  t.match(shown, { reachable: false, probeMillis: null, rows: null, circuit: 'down' })
  t.type(shown.error, 'string')
  const human = await cli(['status'])
  t.equal(human.code, 1)
  t.match(human.stdout, new RegExp(`${down.id}\\s+\\S+\\s+down`))

  const show = await cli(['show', id, '--json'])
  t.equal(show.code, 1, 'show: a store could not be asked')
  t.equal(json(show).verdict.state, 'live', 'the other copy answers')

  t.equal((await cli(['sweep'])).code, 1, 'sweep: a store was not swept')

  const repair = await cli(['repair', '--json'])
  t.equal(repair.code, 1, 'repair: a store was not scanned')
  t.same(json(repair).skippedStores, [down.id])

  await down.start()
  t.equal((await cli(['status'])).code, 0, 'status: 0 again once it is back')
  t.equal((await cli(['repair'])).code, 0, 'repair after the outage')
})

t.test('no output of any run held the store password', async (t) => {
  t.ok(outputs.length > 40, `${outputs.length} runs checked`)
  for (const { args, text } of outputs) {
    if (text.includes(password) || text.includes(encodeURIComponent(password))) {
      t.fail(`session-shards ${args} printed the password`)
    }
  }
  t.pass('none did')
})

t.test('--json stays JSON whatever the store password is', async (t) => {
  // Passwords are masked in the strings of the document, not in its text: "true", a number or
  // a word of a key is as good a password as any, and must not break the JSON.
  for (const password of ['true', 'null', '0', 'holdsCopy']) {
    const stores = ['a', 'b', 'c'].map((id) => ({
      id,
      uri: `mysql://app:${password}@127.0.0.1:1/db`,
    }))
    await writeFile(path.join(cwd, 'password.json'), JSON.stringify({ stores }))
    // locate asks no store.
    const args = ['locate', generateSessionId(), '--json', '--config', 'password.json']
    const run = await runCli(args, { cwd })
    t.equal(run.code, 0, run.stderr)
    t.match(JSON.parse(run.stdout), { order: [{ holdsCopy: true }, { holdsCopy: true }, {}] })
  }
})

t.test('a misspelt option in a config file is refused before any store is asked', async (t) => {
  // With its default instead (copies 2 for 3), a repair would remove the third copies.
  const config = await configFile('misspelt.json', { copeis: 3 })
  const run = await cli(['repair', '--json', '--config', config])
  t.equal(run.code, 2, run.stderr)
  t.match(json(run), { ok: false, error: { code: 'USAGE', message: /"copeis" is not an option/ } })
  t.notMatch(run.stdout + run.stderr, /\b3\b/, 'the value is not shown')
  const fine = await configFile('spelt.json', { copies: 3 })
  t.equal((await cli(['locate', generateSessionId(), '--config', fine])).code, 0)
})

t.test('status --no-counts: a store whose session table cannot be read is not ok', async (t) => {
  // The health check docs/operations.md suggests for large tables: a missing table (or one the
  // user may not read) on one store is exit 1 as with counts, not ok.
  const table = 'status_unreadable'
  const manager = await startManager(t, cluster, { copies: 2, table })
  await manager.applySchema()
  await manager.close()
  const victim = cluster.stores[0]!
  await victim.query(`DROP TABLE \`${table}\``)
  const config = await configFile('status-unreadable.json', { table })
  const withCounts = await cli(['status', '--json', '--config', config])
  t.equal(withCounts.code, 1, 'with counts: exit 1')
  const run = await cli(['status', '--json', '--no-counts', '--config', config])
  t.equal(run.code, 1, 'without counts: exit 1 too')
  const status = json(run)
  t.equal(status.ok, false)
  const report = status.stores.find((store: { id: string }) => store.id === victim.id)
  t.match(report.error, /the session table is missing/, 'the store says why')
})
