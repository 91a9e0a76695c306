import path from 'node:path'
import { parseArgs } from 'node:util'
import { parseArgsMessage, UsageError } from '../../lib/cli/command.js'

/** Command-line settings shared by the benchmarks. */
export interface BenchArgs {
  /** Timed seconds per case and side, when given with `--seconds`. */
  seconds: number | undefined
  /** A short run for checking that the benchmark works, not for citing. */
  quick: boolean
}

/**
 * Parses `--seconds N` and `--quick`; `--help` prints `usage` and exits. A bad argument prints
 * one line that names the flag (never the value given) and exits with code 2, before any
 * store starts.
 */
export function parseBenchArgs(usage: string, argv: string[] = process.argv.slice(2)): BenchArgs {
  try {
    return benchArgs(usage, argv)
  } catch (error) {
    const script = path.basename(process.argv[1] ?? 'bench', '.ts')
    console.error(`${script}: ${parseArgsMessage(error)}; see --help`)
    process.exit(2)
  }
}

/** {@link parseBenchArgs}' parsing; throws UsageError or parseArgs' error. */
export function benchArgs(usage: string, argv: string[]): BenchArgs {
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
      throw new UsageError('--seconds must be a positive number')
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
