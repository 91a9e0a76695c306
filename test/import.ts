// `session-shards import express-mysql-session`: the sessions an app kept with
// express-mysql-session (its own table, written through its own store) copied into the
// stores, read back through the Express store as the app will read them after the switch.
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { createRequire } from 'node:module'
import os from 'node:os'
import path from 'node:path'
import session from 'express-session'
import t from 'tap'
import { importedSession } from '../lib/cli/imported-session.js'
import { generateSessionId } from '../lib/index.js'
import { runCli, type CliRun } from './helpers/cli.js'
import { expressGetter, sessionWith } from './helpers/express-sessions.js'
import { driverOptions, startTestCluster } from './helpers/cluster.js'
import { startManager } from './helpers/manager.js'

interface SourceStore {
  set(id: string, data: session.SessionData, callback: (error?: unknown) => void): void
  onReady(): Promise<void>
  close(): Promise<void>
}
const createSourceStoreClass = createRequire(import.meta.url)('express-mysql-session') as (
  expressSession: typeof session,
) => new (options: Record<string, unknown>) => SourceStore

t.test(
  "what a row becomes: the cookie's expiry, else the row's; unreadable; expired",
  async (t) => {
    const now = Date.parse('2026-12-02T10:00:00Z')
    const inAnHour = '2026-12-02T11:00:00.250Z'
    const cases: [what: string, data: string | Buffer | null, expires: number, wanted: unknown][] =
      [
        [
          "the cookie's expiry, to the millisecond",
          JSON.stringify({ cookie: { expires: inAnHour }, user: 'ada' }),
          now / 1000 + 3600,
          { data: { user: 'ada' }, expiresAt: Date.parse(inAnHour) },
        ],
        [
          "a cookie without an expiry: the row's",
          JSON.stringify({ cookie: { originalMaxAge: null }, user: 'ada' }),
          now / 1000 + 60,
          { expiresAt: now + 60_000 },
        ],
        [
          "no cookie: the row's",
          '{"n":1}',
          now / 1000 + 5,
          { data: { n: 1 }, expiresAt: now + 5000 },
        ],
        [
          'bytes from a binary column',
          Buffer.from('{"cookie":{},"n":2}'),
          now / 1000 + 5,
          { data: { n: 2 } },
        ],
        [
          'a cookie that expired though the row, rounded up, has not',
          JSON.stringify({ cookie: { expires: '2026-12-02T09:59:59.600Z' } }),
          now / 1000 + 0.4,
          'expired',
        ],
        ['expiring now is expired', '{}', now / 1000, 'expired'],
        ['JSON cut short', '{"cookie": {', now / 1000 + 60, 'unreadable'],
        ['an array', '[1, 2]', now / 1000 + 60, 'unreadable'],
        ['a string', '"ada"', now / 1000 + 60, 'unreadable'],
        ['JSON null', 'null', now / 1000 + 60, 'unreadable'],
        ['no data', null, now / 1000 + 60, 'unreadable'],
        [
          'a cookie whose expiry no Date can hold',
          JSON.stringify({ cookie: { originalMaxAge: 1e300, maxAge: 1e300 } }),
          now / 1000 + 60,
          'unreadable',
        ],
        ['a source expiry no Date can hold (a Redis TTL)', '{"cookie":{}}', 9e15, 'unreadable'],
        [
          'a cookie that expired long before any Date',
          JSON.stringify({ cookie: { maxAge: -1e300 } }),
          now / 1000 - 60,
          'expired',
        ],
        [
          // express-session with resave: false touches instead of saving unchanged data, and a
          // source's touch moves only its own expiry: the user is still logged in there.
          "a cookie older than the source's expiry: the source touched it since",
          JSON.stringify({ cookie: { expires: '2026-12-02T09:50:00.000Z' }, user: 'ada' }),
          now / 1000 + 600,
          { data: { user: 'ada' }, expiresAt: now + 600_000 },
        ],
        [
          "a cookie barely before the source's expiry: the source rounded it",
          JSON.stringify({ cookie: { expires: '2026-12-02T10:00:59.400Z' } }),
          now / 1000 + 60,
          { expiresAt: now + 59_400 },
        ],
        [
          "no expiry from the cookie or the source: the stores' default",
          '{"cookie":{"originalMaxAge":null},"n":3}',
          Number.NaN,
          { data: { n: 3 }, expiresAt: undefined },
        ],
      ]
    for (const [what, data, expires, wanted] of cases) {
      const expiresAt = Number.isNaN(expires) ? undefined : expires * 1000
      const got = importedSession({ id: 'x', expiresAt, data }, now)
      if (typeof wanted === 'string') t.equal(got, wanted, what)
      else t.match(got, wanted, what)
    }
  },
)

const TABLE = 'ems_sessions'
const cluster = await startTestCluster(t, { stores: 3 })
const crashTest = cluster.canCrash ? t.test.bind(t) : t.skip.bind(t)
const source = cluster.stores[0]!
const password = source.config.password
const storesVariable = cluster.stores.map((store) => `${store.id}=${store.uri}`).join(',')
const cwd = await mkdtemp(path.join(os.tmpdir(), 'session-shards-import-test-'))
t.teardown(() => rm(cwd, { recursive: true, force: true }))

function importCli(args: string[], env: Record<string, string> = {}): Promise<CliRun> {
  return runCli(['import', ...args], {
    cwd,
    env: { SESSION_SHARDS_STORES: storesVariable, SESSION_SHARDS_IMPORT_FROM: source.uri, ...env },
  })
}

const manager = await startManager(t, cluster, { copies: 2 })
const get = expressGetter(manager)

// The source: express-mysql-session's own table in the first store's database, written
// through its own store.
const SourceStore = createSourceStoreClass(session)
const sourceStore = new SourceStore({
  ...driverOptions(source.config),
  createDatabaseTable: true,
  schema: { tableName: TABLE },
})
await sourceStore.onReady()
const put = (id: string, data: session.SessionData): Promise<void> =>
  new Promise((resolve, reject) =>
    sourceStore.set(id, data, (error) => (error ? reject(error) : resolve())),
  )
const live = Array.from({ length: 230 }, (_, index) => ({
  id: generateSessionId(),
  data: sessionWith({ user: `user-${index}` }, 3_600_000),
}))
for (const { id, data } of live) await put(id, data)
const unusualId = 'legacy:42,with=odd characters'
await put(unusualId, sessionWith({ user: 'legacy' }, 3_600_000))
// A cookie without an expiry (a browser-session cookie): the row's expiry is the session's.
const browserSessionId = generateSessionId()
const browserSessionExpires = Math.floor(Date.now() / 1000) + 7200
await source.query(`INSERT INTO ${TABLE} (session_id, expires, data) VALUES (?, ?, ?)`, [
  browserSessionId,
  browserSessionExpires,
  JSON.stringify({ cookie: { originalMaxAge: null, path: '/' }, user: 'browser session' }),
])
const expiredId = generateSessionId()
await source.query(`INSERT INTO ${TABLE} (session_id, expires, data) VALUES (?, ?, ?)`, [
  expiredId,
  Math.floor(Date.now() / 1000) - 60,
  JSON.stringify({ cookie: {}, user: 'gone' }),
])
// Already in the stores: written since the switch (newer), and logged out since.
const newerId = live[0]!.id
await manager.writeSession(newerId, { cookie: {}, user: 'written after the switch' })
const loggedOutId = live[1]!.id
await manager.writeSession(loggedOutId, { cookie: {}, user: 'about to log out' })
await manager.destroySession(loggedOutId)
const unreadable = [generateSessionId(), generateSessionId()]
for (const [id, data] of [
  [unreadable[0], '{"cookie": {}, "user": '],
  [unreadable[1], '[1, 2, 3]'],
]) {
  await source.query(`INSERT INTO ${TABLE} (session_id, expires, data) VALUES (?, ?, ?)`, [
    id,
    Math.floor(Date.now() / 1000) + 3600,
    data,
  ])
}
t.teardown(() => sourceStore.close())

t.test('every live session is copied in, in pages; what the stores hold stays', async (t) => {
  const run = await importCli([
    'express-mysql-session',
    '--table',
    TABLE,
    '--batch-size',
    '50',
    '--json',
  ])
  t.equal(run.code, 1, `two rows could not be read: exit 1 (${run.stderr.trim()})`)
  const result = JSON.parse(run.stdout)
  t.match(result, {
    ok: false,
    table: TABLE,
    imported: live.length - 2 + 2,
    present: 2,
    expired: 0,
    unreadable: 2,
    failed: 0,
  })
  t.notOk(run.stdout.includes(password) || run.stderr.includes(password), 'no password')

  for (const { id, data } of live.slice(2)) {
    const read = await get(id)
    t.equal(read?.['user' as never], data['user' as never], `${id}: its data`)
    t.equal(
      Math.floor(new Date(read!.cookie.expires!).getTime() / 1000),
      Math.floor(data.cookie.expires!.getTime() / 1000),
      `${id}: its cookie's expiry`,
    )
  }
  t.match(await get(unusualId), { user: 'legacy' }, 'an unusual id, read where the store looks')
  t.match(
    await manager.readSession(browserSessionId, { withVersion: true }),
    { data: { user: 'browser session' }, expiresAt: browserSessionExpires * 1000 },
    "a cookie without an expiry: the row's",
  )
  t.match(await get(newerId), { user: 'written after the switch' }, 'a newer session stays')
  t.equal(await get(loggedOutId), null, 'a logged-out session is not brought back')
  t.equal(await get(expiredId), null, 'an expired row is skipped')
  for (const id of unreadable) t.equal(await get(id), null, 'an unreadable row is skipped')
})

t.test('run again: nothing written twice; exit 0 once every row can be read', async (t) => {
  await source.query(`DELETE FROM ${TABLE} WHERE session_id IN (?, ?)`, unreadable)
  const run = await importCli(['express-mysql-session', '--table', TABLE, '--json'])
  t.equal(run.code, 0, run.stderr)
  t.match(JSON.parse(run.stdout), {
    ok: true,
    imported: 0,
    present: live.length + 2,
    unreadable: 0,
    failed: 0,
  })
  const human = await importCli(['express-mysql-session', '--table', TABLE])
  t.equal(human.code, 0)
  t.match(human.stdout, /0 session\(s\) imported from ems_sessions, 232 already there\./)
})

t.test('columns renamed by schema.columnNames: --columns', async (t) => {
  await source.query(
    'CREATE TABLE renamed (sid VARCHAR(128) PRIMARY KEY, exp INT UNSIGNED, payload MEDIUMTEXT)',
  )
  const id = generateSessionId()
  const data = sessionWith({ user: 'renamed' }, 600_000)
  await source.query('INSERT INTO renamed (sid, exp, payload) VALUES (?, ?, ?)', [
    id,
    Math.round(data.cookie.expires!.getTime() / 1000),
    JSON.stringify(data),
  ])
  const args = ['--table', 'renamed', '--columns', 'sid,exp,payload', '--json']
  const run = await importCli(['express-mysql-session', ...args])
  t.equal(run.code, 0, run.stderr)
  t.match(JSON.parse(run.stdout), { ok: true, table: 'renamed', imported: 1 })
  t.match(await get(id), { user: 'renamed' })
})

t.test('a cookie whose expiry no Date holds is unreadable, not a failed write', async (t) => {
  // express-session turns such a maxAge into an Invalid Date: the session is broken at the
  // source, and a write the stores refuse would be run again, and refused again, for ever.
  await source.query(
    'CREATE TABLE endless (session_id VARCHAR(128) COLLATE utf8mb4_bin PRIMARY KEY, ' +
      'expires INT UNSIGNED NOT NULL, data MEDIUMTEXT)',
  )
  const id = generateSessionId()
  await source.query('INSERT INTO endless VALUES (?, ?, ?)', [
    id,
    Math.floor(Date.now() / 1000) + 3600,
    JSON.stringify({ cookie: { originalMaxAge: 1e300, maxAge: 1e300 }, user: 1 }),
  ])
  const run = await importCli(['express-mysql-session', '--table', 'endless', '--json'])
  t.equal(run.code, 1, 'an unreadable session: exit 1')
  t.match(JSON.parse(run.stdout), { ok: false, imported: 0, unreadable: 1, failed: 0 })
  t.notMatch(run.stdout, /firstFailure/, 'no write failed')
  t.equal(await get(id), null, 'nothing written')
})

crashTest(
  'a store killed before the import: every session still imported, none lost',
  async (t) => {
    const more = Array.from({ length: 60 }, () => ({
      id: generateSessionId(),
      data: sessionWith({ user: 'during the outage' }, 3_600_000),
    }))
    for (const { id, data } of more) await put(id, data)
    const down = cluster.store('store-c')
    await down.kill()
    t.teardown(() => (down.running ? undefined : down.start()))
    const run = await importCli(['express-mysql-session', '--table', TABLE, '--json'])
    t.equal(run.code, 0, run.stderr)
    t.match(JSON.parse(run.stdout), { ok: true, imported: more.length, failed: 0 })
    await down.start()
    // A manager that never saw the outage: the copies are where its reads look.
    const after = await startManager(t, cluster, { copies: 2 })
    for (const { id } of more) {
      t.match(await after.readSession(id), { user: 'during the outage' }, `${id} after the restart`)
    }
  },
)

t.test('no store reachable: every write fails, exit 1, the first failure said', async (t) => {
  // Every live row of the source by now (the tests before this one add some).
  const [{ live: liveRows } = { live: 0 }] = await source.query<{ live: number }>(
    `SELECT COUNT(*) AS live FROM ${TABLE} WHERE expires > UNIX_TIMESTAMP()`,
  )
  t.ok(liveRows > live.length, `${liveRows} live rows`)
  const run = await importCli(['express-mysql-session', '--table', TABLE, '--json'], {
    SESSION_SHARDS_STORES: `a=mysql://shards:${password}@127.0.0.1:1/sessions`,
    SESSION_SHARDS_COPIES: '1',
  })
  t.equal(run.code, 1)
  const result = JSON.parse(run.stdout)
  t.match(result, { ok: false, imported: 0, failed: Number(liveRows) })
  t.type(result.firstFailure, 'string')
  t.notOk(run.stdout.includes(password) || run.stderr.includes(password), 'no password')
})

t.test('usage errors: exit 2, one line, no value echoed', async (t) => {
  const hostile = 'sessions; DROP TABLE sessions'
  const cases: [string, string[], Record<string, string>, RegExp][] = [
    ['no source kind', [], {}, /import takes the source kind/],
    ['an unknown source kind', ['connect-mongo'], {}, /import takes the source kind/],
    ["a kind named like Object's own", ['constructor'], {}, /import takes the source kind/],
    ['a kind named __proto__', ['__proto__'], {}, /import takes the source kind/],
    [
      "another kind's option",
      ['express-mysql-session', '--prefix', hostile],
      {},
      /--prefix is an option of import connect-redis/,
    ],
    [
      'no source',
      ['express-mysql-session'],
      { SESSION_SHARDS_IMPORT_FROM: '' },
      /set SESSION_SHARDS_IMPORT_FROM/,
    ],
    [
      'a source that is not mysql',
      ['express-mysql-session'],
      { SESSION_SHARDS_IMPORT_FROM: `redis://:${password}@127.0.0.1/0` },
      /must be mysql:/,
    ],
    [
      'a password that is not URI encoding',
      ['express-mysql-session'],
      { SESSION_SHARDS_IMPORT_FROM: `mysql://shards:%zz${password}@127.0.0.1/sessions` },
      /has a password that is not valid URI encoding/,
    ],
    [
      'a hostile table name',
      ['express-mysql-session', '--table', hostile],
      {},
      /--table must be 1 to 64 letters/,
    ],
    [
      'columns that are not three names',
      ['express-mysql-session', '--columns', `id,${hostile}`],
      {},
      /--columns must be three names/,
    ],
    [
      'a bad batch size',
      ['express-mysql-session', '--batch-size', '0'],
      {},
      /--batch-size must be a whole number/,
    ],
    [
      'a batch size past the bound',
      ['express-mysql-session', '--batch-size', '10001'],
      {},
      /--batch-size must be at most 10,000/,
    ],
  ]
  for (const [what, args, env, message] of cases) {
    const run = await importCli(args, env)
    t.equal(run.code, 2, `${what}: exit 2`)
    t.match(run.stderr, message, what)
    t.match(run.stderr, /^session-shards import[^\n]*\n$/, `${what}: one line`)
    t.notOk(
      run.stderr.includes(password) || run.stderr.includes(hostile),
      `${what}: nothing echoed`,
    )
  }
  const config = path.join(cwd, 'signed.json')
  await writeFile(
    config,
    JSON.stringify({
      stores: cluster.stores.map((store) => ({ id: store.id, uri: store.uri })),
      secrets: ['a signing secret of more than 32 characters'],
    }),
  )
  const signed = await importCli(['express-mysql-session', '--config', config])
  t.equal(signed.code, 2, 'with secrets and unsigned ids refused: exit 2')
  t.match(signed.stderr, /set acceptUnsignedIds/)
})

t.test('a source that fails: exit 1, said by its code', async (t) => {
  const missing = await importCli(['express-mysql-session', '--table', 'no_such_table', '--json'])
  t.equal(missing.code, 1)
  t.match(JSON.parse(missing.stdout), { ok: false, sourceError: 'ER_NO_SUCH_TABLE', imported: 0 })
  const down = await importCli(['express-mysql-session'], {
    SESSION_SHARDS_IMPORT_FROM: `mysql://shards:${password}@127.0.0.1:1/sessions`,
  })
  t.equal(down.code, 1)
  t.match(down.stderr, /could not connect to the source \(ECONNREFUSED\)/)
  t.notOk(down.stderr.includes(password), 'no password')
})

t.test('a session the source kept alive by touch() is imported, with its expiry', async (t) => {
  // express-session with resave: false (its recommended setting) saves a session only when its
  // data changes, and touches it on other requests: express-mysql-session then moves the row's
  // expiry and leaves the stored JSON (the cookie's expiry too) as of the last save.
  const table = 'ems_touched'
  const store = new (
    createRequire(import.meta.url)('express-mysql-session')(session) as new (
      options: Record<string, unknown>,
    ) => SourceStore & {
      touch(id: string, data: session.SessionData, callback: (error?: unknown) => void): void
    }
  )({ ...driverOptions(source.config), createDatabaseTable: true, schema: { tableName: table } })
  await store.onReady()
  t.teardown(() => store.close())
  const id = generateSessionId()
  const call = (method: 'set' | 'touch', lifetime: number): Promise<void> =>
    new Promise((resolve, reject) =>
      store[method](id, sessionWith({ user: 'ada' }, lifetime), (error) =>
        error ? reject(error) : resolve(),
      ),
    )
  await call('set', 1500) // a login, its cookie good for 1.5 s
  await call('touch', 3_600_000) // a later request that changed nothing
  await new Promise((resolve) => setTimeout(resolve, 2000))
  const run = await importCli(['express-mysql-session', '--table', table, '--json'])
  t.match(JSON.parse(run.stdout), { imported: 1, expired: 0 }, run.stderr)
  t.match(await get(id), { user: 'ada' }, 'the user is still logged in')
  const stored = await manager.readSession(id, { withVersion: true })
  t.ok(stored!.expiresAt > Date.now() + 3_000_000, "the row's expiry, not the cookie's")
})

t.test('sessions that outlive a tombstone are counted and said', async (t) => {
  // A logout's tombstone is kept tombstoneTtlSeconds; a session imported with a longer life
  // can be logged out, swept, and found live in the old table by a later run: said, with the
  // option to raise.
  const table = 'ems_long_lived'
  await source.query(
    `CREATE TABLE ${table} (session_id VARCHAR(128) PRIMARY KEY, expires INT UNSIGNED, data MEDIUMTEXT)`,
  )
  t.teardown(() => source.query(`DROP TABLE ${table}`))
  const now = Math.floor(Date.now() / 1000)
  for (const hours of [1, 2, 3]) {
    await source.query(`INSERT INTO ${table} (session_id, expires, data) VALUES (?, ?, ?)`, [
      generateSessionId(),
      now + hours * 3600,
      JSON.stringify({ cookie: { originalMaxAge: null }, hours }),
    ])
  }
  const config = path.join(cwd, 'short-tombstones.json')
  await writeFile(
    config,
    JSON.stringify({
      stores: cluster.stores.map((store) => ({ id: store.id, uri: store.uri })),
      tombstoneTtlSeconds: 5400,
    }),
  )
  const json = await importCli([
    'express-mysql-session',
    '--table',
    table,
    '--json',
    '--config',
    config,
  ])
  t.equal(json.code, 0, json.stderr)
  t.match(JSON.parse(json.stdout), { ok: true, imported: 3, outlivingTombstones: 2 })
  await source.query(`UPDATE ${table} SET session_id = CONCAT(session_id, 'x')`)
  const human = await importCli(['express-mysql-session', '--table', table, '--config', config])
  t.equal(human.code, 0, human.stderr)
  t.match(
    human.stdout,
    /2 imported session\(s\) live longer than tombstoneTtlSeconds \(5,400\)[^]*Raise tombstoneTtlSeconds/,
  )
  const quiet = await importCli(['express-mysql-session', '--table', table, '--json'])
  t.match(
    JSON.parse(quiet.stdout),
    { imported: 0, outlivingTombstones: 0 },
    'none imported: none said',
  )
})
