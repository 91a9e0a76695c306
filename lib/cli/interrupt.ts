/** Ctrl-C for the long-running commands that work in batches (sweep, repair, rebalance). */
import { EXIT_INTERRUPTED } from './output.js'
import type { ProgressBar } from './progress.js'

/**
 * Runs `work` with a signal that the first Ctrl-C aborts: the command stops after the batch in
 * progress and reports what it did. A second Ctrl-C exits at once (a batch cut short leaves
 * nothing half done), after erasing the bar, which hides the terminal's cursor while it runs.
 * The bar is stopped once `work` settles.
 */
export async function stoppableByCtrlC<T>(
  command: string,
  bar: ProgressBar,
  work: (signal: AbortSignal) => Promise<T>,
): Promise<T> {
  const stop = new AbortController()
  const onSignal = (): void => {
    if (stop.signal.aborted) {
      bar.stop()
      process.exit(EXIT_INTERRUPTED)
    }
    stop.abort()
    bar.log(`${command}: stopping after the batch in progress (Ctrl-C again to exit now)`)
  }
  process.on('SIGINT', onSignal)
  try {
    return await work(stop.signal)
  } finally {
    process.off('SIGINT', onSignal)
    bar.stop()
  }
}
