import { mkdtemp, readFile, rm } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import t from 'tap'
import { schemaFile } from '../lib/index.js'
import { isValidTableName, missingColumns, schemaStatements } from '../lib/schema.js'
import { runCli } from './helpers/cli.js'
import { startTestCluster } from './helpers/cluster.js'
import { createManager, startManager } from './helpers/manager.js'

t.test('schema.sql is the schema the library applies', async (t) => {
  const file = await readFile(new URL('../schema.sql', import.meta.url), 'utf8')
  t.equal(file, schemaFile())
})

t.test('applying the schema twice keeps what is stored', async (t) => {
  const cluster = await startTestCluster(t, { stores: 1 })
  const manager = await startManager(t, cluster, { copies: 1 })
  const id = await manager.createSession({ kept: true })
  await manager.applySchema()
  const store = cluster.stores[0]!
  for (const statement of file(await readFile(new URL('../schema.sql', import.meta.url), 'utf8'))) {
    await store.query(statement)
  }
  t.same(await manager.readSession(id), { kept: true })
  const columns = await store.query<{ COLUMN_NAME: string }>(
    'SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION',
    ['sessions'],
  )
  t.same(
    columns.map((c) => c.COLUMN_NAME),
    ['id', 'version', 'expires_at', 'deleted', 'data', 'ttl_seconds', 'owner'],
  )
})

function file(text: string): string[] {
  return text
    .split(/;\s*\n/)
    .map((statement) => statement.replace(/^--.*$/gm, '').trim())
    .filter((statement) => statement !== '')
}

t.test('applySchema reaches a store that requests skip as down', async (t) => {
  // An operator restores a wiped store and applies the schema before any health probe has
  // put it back in service: the schema is administration, not a request the circuit guards.
  const cluster = await startTestCluster(t, { stores: 2 })
  const manager = await startManager(t, cluster, {
    copies: 1,
    failThreshold: 1,
    healthCheckIntervalMillis: 3_600_000,
  })
  const store = cluster.stores[0]!
  await store.stop()
  await manager.writeSession(manager.generateId(), {}).catch(() => {})
  await Promise.all(
    Array.from({ length: 20 }, () => manager.readSession(manager.generateId()).catch(() => null)),
  )
  t.equal(manager.stats().stores[0]!.state, 'down', 'requests opened its circuit')
  await store.wipe()
  await store.start()
  await manager.applySchema()
  const tables = await store.query<{ n: number }>(
    "SELECT COUNT(*) AS n FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'sessions'",
  )
  t.equal(Number(tables[0]!.n), 1, 'the session table is back')
})

t.test('applySchema is not bound by the request deadline (queryTimeoutMillis)', async (t) => {
  // Creating tables takes longer than a request may: a manager tuned for snappy requests
  // (here 1 ms, to make it certain) still creates its tables.
  const cluster = await startTestCluster(t, { stores: 1 })
  const manager = createManager(t, cluster, {
    copies: 1,
    table: 'quick_requests',
    queryTimeoutMillis: 1,
  })
  await manager.applySchema()
  const tables = await cluster.stores[0]!.query<{ TABLE_NAME: string }>(
    "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME LIKE 'quick\\_requests%' ORDER BY TABLE_NAME",
  )
  t.same(
    tables.map((row) => row.TABLE_NAME),
    [
      'quick_requests',
      'quick_requests_hints',
      'quick_requests_locks',
      'quick_requests_peers',
      'quick_requests_stale',
    ],
  )
})

t.test('the longest table name the option accepts gets its tables and indexes', async (t) => {
  // MySQL's identifiers are at most 64 characters; the expiry index, `<table>_expires_at`,
  // is the longest name made from the table's.
  const longest = Array.from({ length: 65 }, (_, n) => 'a'.repeat(64 - n)).find(isValidTableName)!
  for (const statement of schemaStatements(longest)) {
    for (const [, name] of statement.matchAll(/`([^`]+)`/g)) {
      t.ok(name!.length <= 64, `${name!.replace(longest, '<table>')}: ${name!.length} characters`)
    }
  }
  const cluster = await startTestCluster(t, { stores: 1 })
  const manager = createManager(t, cluster, { copies: 1, table: longest })
  await manager.applySchema()
  const indexes = await cluster.stores[0]!.query<{ INDEX_NAME: string }>(
    "SELECT DISTINCT INDEX_NAME FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? AND INDEX_NAME <> 'PRIMARY' ORDER BY INDEX_NAME",
    [longest],
  )
  t.same(
    indexes.map((row) => row.INDEX_NAME),
    [`${longest}_expires_at`, `${longest}_owner`],
  )
  const id = await manager.createSession({ long: true })
  t.same(await manager.readSession(id), { long: true }, 'and serves sessions')
})

t.test(
  'a table of that name that is not a session table: that store fails, nothing in it changes',
  async (t) => {
    // express-mysql-session's own table, under the name both tools default to: the usual source
    // of a migration, in the same database.
    const cluster = await startTestCluster(t, { stores: 2 })
    const [other, taken] = [cluster.stores[0]!, cluster.stores[1]!]
    await taken.query(
      'CREATE TABLE sessions (session_id VARCHAR(128) COLLATE utf8mb4_bin NOT NULL, ' +
        'expires INT UNSIGNED NOT NULL, data MEDIUMTEXT COLLATE utf8mb4_bin, PRIMARY KEY (session_id))',
    )
    await taken.query("INSERT INTO sessions VALUES ('old-session', 4000000000, '{\"user\":1}')")
    const manager = createManager(t, cluster, { copies: 2 })
    const error = await manager.applySchema().then(
      () => undefined,
      (error: unknown) => error,
    )
    t.match(error, {
      code: 'SCHEMA_NOT_APPLIED',
      failures: [{ storeId: taken.id, error: { code: 'SCHEMA_MISMATCH' } }],
    })
    t.match((error as Error).message, /sessions.*not a session-shards table.*id, version/)
    t.same(await taken.query('SELECT * FROM sessions'), [
      { session_id: 'old-session', expires: 4000000000, data: '{"user":1}' },
    ])
    const tables = await other.query<{ n: number }>(
      "SELECT COUNT(*) AS n FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME LIKE 'sessions%'",
    )
    t.equal(Number(tables[0]!.n), 5, 'the other store got its tables')

    const cwd = await mkdtemp(path.join(os.tmpdir(), 'session-shards-schema-test-'))
    t.teardown(() => rm(cwd, { recursive: true, force: true }))
    const stores = cluster.stores.map((store) => `${store.id}=${store.uri}`).join(',')
    const run = await runCli(['schema', 'apply', '--json'], {
      cwd,
      env: { SESSION_SHARDS_STORES: stores },
    })
    t.equal(run.code, 1, 'schema apply exits 1')
    t.match(JSON.parse(run.stdout), {
      ok: false,
      stores: [
        { id: other.id, ok: true, error: null },
        { id: taken.id, ok: false, error: /SCHEMA_MISMATCH .*not a session-shards table/ },
      ],
    })
  },
)

t.test(
  'tables of an earlier version get the columns added since, and keep their rows',
  async (t) => {
    const cluster = await startTestCluster(t, { stores: 1 })
    const store = cluster.stores[0]!
    // The hints table as the first release created it: no version column.
    await store.query(
      'CREATE TABLE sessions_hints (target_store VARBINARY(64) NOT NULL, id VARBINARY(128) NOT NULL, ' +
        'created_at BIGINT NOT NULL, PRIMARY KEY (target_store, id)) ENGINE=InnoDB',
    )
    await store.query("INSERT INTO sessions_hints VALUES ('store-x', 'an-id', 1)")
    const manager = createManager(t, cluster, { copies: 1 })
    await manager.applySchema()
    t.same(await store.query('SELECT target_store, id, created_at, version FROM sessions_hints'), [
      { target_store: Buffer.from('store-x'), id: Buffer.from('an-id'), created_at: 1, version: 0 },
    ])
    await manager.applySchema()
    t.pass('and applying it again changes nothing')
    // Two app servers (or a deploy's two CLI runs) upgrading at once both see the column missing.
    const second = createManager(t, cluster, { copies: 1 })
    for (let round = 0; round < 5; round++) {
      await store.query('ALTER TABLE sessions_hints DROP COLUMN version')
      const results = await Promise.allSettled([manager.applySchema(), second.applySchema()])
      t.same(
        results.filter((result) => result.status === 'rejected'),
        [],
        `round ${round}: both upgrades succeed`,
      )
    }
  },
)

t.test(
  'missingColumns: what a table of the schema lacks, names compared without case',
  async (t) => {
    const all = schemaStatements('s').flatMap((statement) => {
      const table = /`([^`]+)`/.exec(statement)![1]!
      return [...statement.matchAll(/^ {2}([a-z_]+) [A-Z]/gm)].map((m) => ({
        table,
        column: m[1]!,
      }))
    })
    t.equal(all.length, 22, 'every column of the five tables')
    t.same(missingColumns('s', all), [])
    t.same(
      missingColumns(
        's',
        all.map((row) => ({ table: row.table.toUpperCase(), column: row.column.toUpperCase() })),
      ),
      [],
    )
    const withoutSome = all.filter(
      (row) => !(row.table === 's' && row.column === 'owner') && row.table !== 's_peers',
    )
    t.same(missingColumns('s', withoutSome), [
      { table: 's', columns: ['owner'] },
      { table: 's_peers', columns: ['manager', 'fingerprint', 'config', 'expires_at'] },
    ])
  },
)
