/** `session-shards repair` (and rebalance): the repair scan with a progress bar, Ctrl-C and resume. */
import type { RepairCursor, RepairOptions, RepairResult } from '../../maintenance/repair-scan.js'
import type { SessionManager } from '../../session-manager.js'
import type { Command, CommandContext } from '../command.js'
import { batchSizeArgument, MAX_BATCH_SIZE, noPositionals, UsageError } from '../command.js'
import { allStores, loadCommandConfig, type LoadedConfig } from '../config.js'
import { openManager } from '../manager.js'
import { EXIT_INTERRUPTED, EXIT_OK, EXIT_PROBLEM, formatCount } from '../output.js'
import { stoppableByCtrlC } from '../interrupt.js'
import { createProgressBar, progressWanted } from '../progress.js'

/** The options of `repair` and `rebalance`. */
export const WALK_OPTIONS = {
  'batch-size': { type: 'string' },
  'resume-from': { type: 'string' },
} as const

export const repairCommand: Command = {
  help: `Usage: session-shards repair [--batch-size N] [--resume-from <store>] [--config <file>] [--json]

Walks every store that is up, N session ids at a time, and puts each session's newest copy (or
its tombstone) on the first \`copies\` stores of its order that are up; removes stale copies,
copies outside those stores once the right stores hold the session, and tombstones whose time
is up. The same as sm.repair(). Idempotent: a second run right after finds nothing to do.
Run it once every store is back after an outage. Shows a progress bar on a terminal.

Ctrl-C stops it after the batch in progress and prints how to resume.

  --batch-size N         session ids read per statement while scanning, at most ${formatCount(MAX_BATCH_SIZE)}
                         (default 500)
  --resume-from <store>  start the walk at this store (as printed by a stopped run)

Exit code: 0 repaired, 1 a store was down (not scanned) or some sessions could not be
repaired (run it again), 2 usage or configuration error, 130 stopped by Ctrl-C.`,
  options: WALK_OPTIONS,
  run: (context) => runRepairScan(context, 'repair'),
}

/**
 * `repair` and `rebalance`: the same scan of every store (the manager's repair), with a
 * progress bar, Ctrl-C to stop after a batch, and `--resume-from` to continue.
 */
export async function runRepairScan(
  context: CommandContext,
  kind: 'repair' | 'rebalance',
): Promise<number> {
  noPositionals(context, kind)
  const batchSize = batchSizeArgument(context.values['batch-size'])
  const config = await loadCommandConfig(context)
  const resumeFrom = resumeCursor(config, context.values['resume-from'])
  const { out } = context
  const manager = await openManager(config)
  const enabled = progressWanted(out.json)
  const bar = createProgressBar({
    enabled,
    total: 1,
    format: `${kind} {bar} {value}/{total} rows | {store} ({storeIndex}/{storeCount}) | copied {copied} removed {removed}`,
    payload: { store: '', storeIndex: 0, storeCount: 0, copied: 0, removed: 0 },
    fallback: (line) => out.error(line),
  })
  try {
    if (enabled) bar.setTotal(await countRows(manager))
    const options: RepairOptions = {
      ...(batchSize === undefined ? {} : { batchSize }),
      ...(resumeFrom === undefined ? {} : { resumeFrom }),
      onProgress: (p) =>
        bar.update(p.scanned, {
          store: p.storeId,
          storeIndex: p.storeIndex,
          storeCount: p.storeCount,
          copied: p.copied,
          removed: p.removed,
        }),
    }
    // The walk is idempotent: a run stopped by Ctrl-C leaves nothing half done.
    const result = await stoppableByCtrlC(kind, bar, (signal) =>
      manager.repair({ ...options, signal }),
    )
    return report(context, kind, result, resumeFrom)
  } finally {
    await manager.close()
  }
}

function report(
  context: CommandContext,
  kind: string,
  result: RepairResult,
  resumed: RepairCursor | undefined,
): number {
  const { out } = context
  // The cursor's id is a session id, a credential: only its store is shown.
  const { resumeFrom, ...counts } = result
  const stoppedAt = resumeFrom?.storeId ?? null
  const ok = stoppedAt === null && result.failed === 0 && result.skippedStores.length === 0
  out.result({ ok, ...counts, stoppedAt })
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
  if (stoppedAt !== null) {
    out.line(
      `Stopped in ${stoppedAt}. Resume with: session-shards ${kind} --resume-from ${stoppedAt}`,
    )
    return EXIT_INTERRUPTED
  }
  if (result.skippedStores.length > 0) {
    out.line(
      `Not scanned (down, or out of reach from here): ${result.skippedStores.join(', ')}. Run ${kind} again once they answer.`,
    )
  }
  if (result.failed > 0) {
    out.line(`${formatCount(result.failed)} session(s) could not be moved; run ${kind} again.`)
  }
  if (ok && resumed) {
    out.line(
      `Walk finished from ${resumed.storeId} on. A full run (without --resume-from) that copies and removes nothing confirms that every session is where it belongs.`,
    )
  } else if (ok) out.line('Every session is where it belongs.')
  return ok ? EXIT_OK : EXIT_PROBLEM
}

/** `--resume-from <store>`: the walk restarts at the beginning of that store (it is idempotent). */
function resumeCursor(
  config: LoadedConfig,
  value: string | boolean | undefined,
): RepairCursor | undefined {
  if (value === undefined) return undefined
  const ids = allStores(config.resolved).map((store) => store.id)
  if (typeof value !== 'string' || !ids.includes(value)) {
    throw new UsageError(`--resume-from must name a configured store (${ids.join(', ')})`)
  }
  return { storeId: value, afterId: '' }
}

/** Rows on the stores that are up: the bar's total (the walk reads every row of every store up). */
async function countRows(manager: SessionManager): Promise<number> {
  const reports = await manager.storeReports({ counts: true })
  return reports.reduce(
    (sum, { state, rows }) =>
      state === 'down' || rows === null ? sum : sum + rows.live + rows.expired + rows.tombstones,
    0,
  )
}
