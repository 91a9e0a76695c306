import { parseArgs } from 'node:util'

/** Command-line settings shared by the benchmarks. */
export interface BenchArgs {
  /** Timed seconds per case and side, when given with `--seconds`. */
  seconds: number | undefined
  /** A short run for checking that the benchmark works, not for citing. */
  quick: boolean
}

/**
 * Parses `--seconds N` and `--quick`; `--help` prints `usage` and exits. Bad values throw a
 * TypeError naming the flag.
 */
export function parseBenchArgs(usage: string, argv: string[] = process.argv.slice(2)): BenchArgs {
  const { values } = parseArgs({
    args: argv,
    options: {
      seconds: { type: 'string' },
      quick: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  })
  if (values.help === true) {
    console.log(usage)
    process.exit(0)
  }
  let seconds: number | undefined
  if (values.seconds !== undefined) {
    seconds = Number(values.seconds)
    if (!Number.isFinite(seconds) || seconds <= 0) {
      throw new TypeError(
        `--seconds must be a positive number; got ${JSON.stringify(values.seconds)}`,
      )
    }
  }
  return { seconds, quick: values.quick === true }
}

/**
 * How long each case runs, in how many interleaved rounds, after how long a warm-up: the
 * defaults (`secondsPerCase` 6) or, with `--quick`, a short run; `--seconds` overrides.
 */
export function caseTiming(
  args: BenchArgs,
  defaults = { seconds: 6, warmupMillis: 500 },
): { secondsPerCase: number; rounds: number; warmupMillis: number } {
  return {
    secondsPerCase: args.seconds ?? (args.quick ? 1 : defaults.seconds),
    rounds: args.quick ? 2 : 4,
    warmupMillis: args.quick ? Math.min(200, defaults.warmupMillis) : defaults.warmupMillis,
  }
}
