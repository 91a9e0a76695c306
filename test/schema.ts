import { readFile } from 'node:fs/promises'
import t from 'tap'
import { schemaFile } from '../lib/index.js'
import { isValidTableName, schemaStatements } from '../lib/schema.js'
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
