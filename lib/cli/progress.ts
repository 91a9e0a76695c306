/** Progress bars on a terminal, plain lines or nothing elsewhere. */
import cliProgress from 'cli-progress'

/** A progress bar, or nothing at all where no person watches. */
export interface ProgressBar {
  /** Moves the bar; `payload` fills the `{name}` tokens of the format. */
  update(value: number, payload?: Record<string, string | number>): void
  setTotal(total: number): void
  /** Prints a line above the bar (or, without a bar, through the fallback). */
  log(line: string): void
  /** Erases the bar. Safe to call more than once. */
  stop(): void
}

/**
 * Whether to draw bars: only for a person at a terminal. Not in a pipe or a file, not when `CI`
 * is set, not with `--json`, so that redirected output holds only results.
 */
export function progressWanted(
  json: boolean,
  stream: NodeJS.WriteStream = process.stdout,
): boolean {
  return stream.isTTY === true && !process.env['CI'] && !json
}

/**
 * A cli-progress bar on stdout when `enabled`, else a no-op whose `log` goes to `fallback`.
 *
 * @example
 * const bar = createProgressBar({ enabled: progressWanted(json), total: 100, format: '{bar} {value}/{total}' })
 * bar.update(50)
 * bar.stop()
 */
export function createProgressBar(options: {
  enabled: boolean
  total: number
  format: string
  payload?: Record<string, string | number>
  fallback?: (line: string) => void
}): ProgressBar {
  if (!options.enabled) {
    return {
      update() {},
      setTotal() {},
      log: (line) => options.fallback?.(line),
      stop() {},
    }
  }
  // Drawn from the first update on, so that lines logged before it print plainly.
  let multi: cliProgress.MultiBar | undefined
  let bar: cliProgress.SingleBar | undefined
  let total = Math.max(1, options.total)
  let stopped = false
  return {
    update: (value, payload) => {
      if (stopped) return
      if (multi === undefined || bar === undefined) {
        multi = new cliProgress.MultiBar(
          {
            format: options.format,
            stream: process.stdout,
            hideCursor: true,
            clearOnComplete: true,
            stopOnComplete: false,
            barsize: 24,
          },
          cliProgress.Presets.shades_classic,
        )
        bar = multi.create(total, value, { ...options.payload, ...payload })
      } else bar.update(value, payload ?? {})
    },
    setTotal: (value) => {
      total = Math.max(1, value)
      bar?.setTotal(total)
    },
    log: (line) => {
      if (multi !== undefined && !stopped) multi.log(`${line}\n`)
      else options.fallback?.(line)
    },
    stop: () => {
      if (stopped) return
      stopped = true
      multi?.stop()
    },
  }
}
