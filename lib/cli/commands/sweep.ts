/** `session-shards sweep`: expired sessions and spent tombstones deleted on every store. */
import type { SessionManager } from '../../session-manager.js'
import type { Command } from '../command.js'
import { batchSizeArgument, MAX_BATCH_SIZE, noPositionals, shareArgument } from '../command.js'
import { loadCommandConfig } from '../config.js'
import { openManager } from '../manager.js'
import { EXIT_INTERRUPTED, EXIT_OK, EXIT_PROBLEM, formatCount } from '../output.js'
import { stoppableByCtrlC } from '../interrupt.js'
import { createProgressBar, progressWanted } from '../progress.js'

export const sweepCommand: Command = {
  help: `Usage: session-shards sweep [--batch-size N] [--duty-cycle F] [--config <file>] [--json]

Deletes rows whose expiry has passed (expired sessions, and tombstones whose time is up) on
every store that is up, through the expiry index, N rows per statement, stores in parallel.
The same as sm.sweep(), which the sweepIntervalSeconds option also runs in the background.
Shows a progress bar on a terminal. Ctrl-C stops it after the batch in progress (what is left,
the next sweep deletes); a second Ctrl-C exits at once.

  --batch-size N  rows deleted per statement, at most ${formatCount(MAX_BATCH_SIZE)} (default 500)
  --duty-cycle F  the share of time the sweep may keep each store busy, above 0 and at most 1:
                  after each batch it pauses so that its statements take at most this share
                  (0.2: a 40 ms batch is followed by a 160 ms pause); default 1, no pauses.
                  Lower it to sweep a big backlog beside live traffic.

Exit code: 0 every store swept, 1 a store was down or failed, 2 usage or configuration error,
130 stopped by Ctrl-C.`,
  options: { 'batch-size': { type: 'string' }, 'duty-cycle': { type: 'string' } },
  async run(context) {
    noPositionals(context, 'sweep')
    const batchSize = batchSizeArgument(context.values['batch-size'])
    const dutyCycle = shareArgument('duty-cycle', context.values['duty-cycle'])
    const config = await loadCommandConfig(context)
    const { out } = context
    const manager = await openManager(config)
    const bar = createProgressBar({
      enabled: progressWanted(out.json),
      total: 1,
      format: 'sweep {bar} {value}/{total} expired rows deleted',
      fallback: (line) => out.error(line),
    })
    try {
      if (progressWanted(out.json)) bar.setTotal(await countExpired(manager))
      const perStore = new Map<string, number>()
      const result = await stoppableByCtrlC('sweep', bar, (signal) =>
        manager.sweep({
          ...(batchSize === undefined ? {} : { batchSize }),
          ...(dutyCycle === undefined ? {} : { dutyCycle }),
          signal,
          onProgress: ({ storeId, deleted }) => {
            perStore.set(storeId, deleted)
            bar.update([...perStore.values()].reduce((sum, n) => sum + n, 0))
          },
        }),
      )
      const ok =
        result.stopped !== true && result.stores.every((store) => store.error === undefined)
      out.result({ ok, ...result })
      out.table(
        [{ header: 'store' }, { header: 'deleted', align: 'right' }, { header: 'note' }],
        result.stores.map((s) => [
          s.storeId,
          formatCount(s.deleted),
          s.error ?? (s.sweptElsewhere === true ? 'skipped: another sweep is sweeping it' : ''),
        ]),
      )
      out.line()
      out.line(`${formatCount(result.deleted)} expired row(s) deleted.`)
      if (result.stopped === true) {
        out.line('Stopped by Ctrl-C: the next sweep deletes what is left.')
        return EXIT_INTERRUPTED
      }
      return ok ? EXIT_OK : EXIT_PROBLEM
    } finally {
      await manager.close()
    }
  },
}

/** Expired rows over every store that answers: the bar's total. */
async function countExpired(manager: SessionManager): Promise<number> {
  const reports = await manager.storeReports({ counts: true })
  return reports.reduce((sum, { rows }) => sum + (rows?.expired ?? 0), 0)
}
