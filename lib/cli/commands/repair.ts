import type { RepairResult } from '../../repair.js'
import type { Command } from '../command.js'
import { integerArgument, noPositionals } from '../command.js'
import { loadCommandConfig, type LoadedConfig } from '../config.js'
import { circuitState, openManager } from '../manager.js'
import { EXIT_OK, EXIT_PROBLEM, formatCount } from '../output.js'
import { createProgressBar, progressWanted } from '../progress.js'
import { StoreInspector } from '../store-inspector.js'

export const repairCommand: Command = {
  name: 'repair',
  summary: "put every session's copies where they belong (after an outage)",
  help: `Usage: session-shards repair [--batch-size N] [--config <file>] [--json]

Walks every store that is up, N session ids at a time, and puts each session's newest copy (or
its tombstone) on the first \`copies\` stores of its order that are up; removes stale copies,
copies outside those stores once the right stores hold the session, and tombstones whose time
is up. The same as sm.repair(). Idempotent: a second run right after finds nothing to do.
Run it once every store is back after an outage. Shows a progress bar on a terminal.

  --batch-size N  session ids read per statement while scanning (default 500)

Exit code: 0 repaired, 1 a store was down (not scanned) or some sessions could not be
repaired (run it again), 2 usage or configuration error.`,
  options: { 'batch-size': { type: 'string' } },
  async run(context) {
    noPositionals(context, 'repair')
    const batchSize = integerArgument('batch-size', context.values['batch-size'], 1)
    const config = await loadCommandConfig(context)
    const { out } = context
    const manager = await openManager(config)
    try {
      const enabled = progressWanted(out.json)
      const bar = createProgressBar({
        enabled,
        total: 1,
        format:
          'repair {bar} {value}/{total} rows | {store} ({storeIndex}/{storeCount}) | copied {copied} removed {removed}',
        payload: { store: '', storeIndex: 0, storeCount: 0, copied: 0, removed: 0 },
      })
      if (enabled) {
        const up = config.resolved.stores.filter((s) => circuitState(manager, s.id) !== 'down')
        bar.setTotal(
          await countRows(
            config,
            up.map((s) => s.id),
          ),
        )
      }
      let result: RepairResult
      try {
        result = await manager.repair({
          ...(batchSize === undefined ? {} : { batchSize }),
          onProgress: (p) =>
            bar.update(p.scanned, {
              store: p.storeId,
              storeIndex: p.storeIndex,
              storeCount: p.storeCount,
              copied: p.copied,
              removed: p.removed,
            }),
        })
      } finally {
        bar.stop()
      }
      const ok = result.failed === 0 && result.skippedStores.length === 0
      out.result({ ok, ...result })
      out.table(
        [
          { header: 'scanned', align: 'right' },
          { header: 'copied', align: 'right' },
          { header: 'removed', align: 'right' },
          { header: 'failed', align: 'right' },
        ],
        [[result.scanned, result.copied, result.removed, result.failed].map(formatCount)],
      )
      out.line()
      if (result.skippedStores.length > 0) {
        out.line(
          `Not scanned (down): ${result.skippedStores.join(', ')}. Run repair again once they are up.`,
        )
      }
      if (result.failed > 0)
        out.line(
          `${formatCount(result.failed)} session(s) could not be repaired; run repair again.`,
        )
      if (ok) out.line('Every session is where it belongs.')
      return ok ? EXIT_OK : EXIT_PROBLEM
    } finally {
      await manager.close()
    }
  },
}

/** Rows on the given stores: the bar's total (repair scans every row of every store up). */
async function countRows(config: LoadedConfig, storeIds: string[]): Promise<number> {
  const inspector = new StoreInspector(config.resolved)
  try {
    const counts = await Promise.all(storeIds.map((id) => inspector.rowCounts(id)))
    return counts.reduce(
      (sum, count) =>
        sum + (count.ok ? count.value.live + count.value.expired + count.value.tombstones : 0),
      0,
    )
  } finally {
    await inspector.close()
  }
}
