import { readFile } from 'node:fs/promises'
import t from 'tap'
import { schemaFile } from '../lib/index.js'
import { startTestCluster } from './helpers/cluster.js'
import { startManager } from './helpers/manager.js'

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
