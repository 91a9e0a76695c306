/** `session-shards schema apply`: the session tables on every store, each store reported. */
import { SchemaNotAppliedError } from '../../errors.js'
import { describeError } from '../../maintenance/inspection.js'
import { createSessionManager } from '../../session-manager.js'
import type { Command } from '../command.js'
import { UsageError } from '../command.js'
import { loadCommandConfig, oneShotOptions, storeAddress, type LoadedConfig } from '../config.js'
import { EXIT_OK, EXIT_PROBLEM } from '../output.js'

export const schemaCommand: Command = {
  help: `Usage: session-shards schema apply [--config <file>] [--json]

Creates the session tables (CREATE TABLE IF NOT EXISTS, with the configured table name) on
every configured store, all stores in parallel, and reports each store: ok, or its error.
Running it again changes nothing. The SQL is also in schema.sql in the package.

Exit code: 0 every store has the tables, 1 a store failed, 2 usage or configuration error.`,
  options: {},
  async run(context) {
    const [action, ...rest] = context.positionals
    if (action !== 'apply' || rest.length > 0) {
      throw new UsageError('the schema command takes one action: session-shards schema apply')
    }
    const config = await loadCommandConfig(context)
    const errors = await applySchema(config)
    const results = config.resolved.stores.map((store) => {
      const error = errors.get(store.id) ?? null
      return { id: store.id, address: storeAddress(store), ok: error === null, error }
    })
    const ok = results.every((result) => result.ok)
    const { out } = context
    out.result({ ok, table: config.resolved.table, stores: results })
    out.table(
      [{ header: 'store' }, { header: 'address' }, { header: 'schema' }],
      results.map((r) => [r.id, r.address, r.ok ? 'ok' : `error: ${r.error}`]),
    )
    out.line()
    out.line(
      ok
        ? `Table ${config.resolved.table} ready on ${results.length} store(s).`
        : `Failed on ${results.filter((r) => !r.ok).length} of ${results.length} store(s); fix them and run it again.`,
    )
    return ok ? EXIT_OK : EXIT_PROBLEM
  },
}

/**
 * Applies the schema on every configured store through the library (its statements, every
 * store in parallel); resolves each failing store's error summary, by id.
 */
async function applySchema(config: LoadedConfig): Promise<Map<string, string>> {
  // previousStores is left out: the schema goes where the configuration sends sessions.
  const { previousStores: _previous, ...options } = oneShotOptions(config)
  const manager = createSessionManager(options)
  try {
    await manager.applySchema()
    return new Map()
  } catch (error) {
    if (!(error instanceof SchemaNotAppliedError)) throw error
    return new Map(
      error.failures.map(({ storeId, error: cause }) => [storeId, describeError(cause)]),
    )
  } finally {
    await manager.close()
  }
}
