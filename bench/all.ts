/**
 * `npm run bench`: the benchmark suites one after another, each in a Node process of its own,
 * so one suite's cluster, heap and connections never weigh on the next one's figures (the
 * listing's memory, above all, is measured in a process that holds nothing else). Stops at the
 * first suite that fails and exits with its code.
 */
import { spawn } from 'node:child_process'
import { constants } from 'node:os'
import { performance } from 'node:perf_hooks'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { parseArgsMessage, UsageError } from '../lib/cli/command.js'
import { benchArgs } from './lib/args.js'

const SUITES = {
  core: 'readSession and writeSession against raw mysql2, and placement cost',
  contention: 'updateSession, increment under contention; list(), count() over 1,000,000 sessions',
  batching:
    'readSession, writeSession with batching on and off against raw mysql2, express-mysql-session, connect-redis',
  'read-quorum': 'readSession, writeSession with the default readQuorum against readQuorum 1',
  'at-rest': 'bytes stored and CPU per encode and decode with compression and encryption',
  sweep: 'two app servers sweeping 1,000,000 expired rows under a 64-in-flight workload',
  import:
    'session-shards import from connect-redis and express-mysql-session beside the library writing the same sessions',
} as const
type Suite = keyof typeof SUITES

const USAGE = `Usage: npm run bench -- [--suite NAME] [--seconds N] [--quick]

Builds the library, then runs each benchmark suite on its own 3 local MariaDB stores and
writes bench/results/<suite>-latest.json (<suite>-quick.json with --quick).

  --suite NAME  all (default), or one suite:${Object.entries(SUITES)
    .map(([name, what]) => `\n                  ${name}: ${what}`)
    .join('')}
  --seconds N   timed seconds per case (default 6; 1 with --quick)
  --quick       a short run to check that the benchmarks work; not for citing`

/** The arguments, checked before any suite starts; a bad one exits with code 2. */
function parseArguments(): { suite: string; passOn: string[] } {
  const { values } = parseArgs({
    options: {
      suite: { type: 'string', default: 'all' },
      seconds: { type: 'string' },
      quick: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  })
  if (values.help === true) {
    console.log(USAGE)
    process.exit(0)
  }
  const suite = values.suite ?? 'all'
  if (suite !== 'all' && !Object.hasOwn(SUITES, suite)) {
    throw new UsageError(`--suite must be all or one of ${Object.keys(SUITES).join(', ')}`)
  }
  const passOn = [
    ...(values.seconds === undefined ? [] : ['--seconds', values.seconds]),
    ...(values.quick === true ? ['--quick'] : []),
  ]
  // The suites check --seconds themselves, with the same rule; checked here too, up front.
  benchArgs(USAGE, passOn)
  return { suite, passOn }
}

let parsed: { suite: string; passOn: string[] }
try {
  parsed = parseArguments()
} catch (error) {
  console.error(`bench: ${parseArgsMessage(error)}; see npm run bench -- --help`)
  process.exit(2)
}
const { suite, passOn } = parsed
const suites = suite === 'all' ? (Object.keys(SUITES) as Suite[]) : [suite as Suite]

let child: ReturnType<typeof spawn> | undefined
// Ctrl-C reaches the whole foreground process group, the suite included, which stops its
// stores and exits; this process just waits for it. A SIGTERM sent to this process alone is
// passed on.
process.on('SIGINT', () => {})
process.on('SIGTERM', () => child?.kill('SIGTERM'))

const durations: string[] = []
const startedAt = performance.now()
for (const [index, name] of suites.entries()) {
  if (index > 0) console.log('')
  const started = performance.now()
  const script = fileURLToPath(new URL(`${name}.ts`, import.meta.url))
  // process.execArgv carries `--import tsx` on to the suite.
  child = spawn(process.execPath, [...process.execArgv, script, ...passOn], { stdio: 'inherit' })
  const exit = await new Promise<{ code: number | null; signal: NodeJS.Signals | null }>(
    (resolve, reject) => {
      child!.once('error', reject)
      child!.once('exit', (code, signal) => resolve({ code, signal }))
    },
  )
  child = undefined
  durations.push(`${name} ${Math.round((performance.now() - started) / 1000)} s`)
  if (exit.code !== 0) {
    const how =
      exit.signal === null ? `exited with code ${exit.code}` : `was stopped by ${exit.signal}`
    console.error(`\nThe ${name} benchmark ${how}; the remaining suites did not run.`)
    process.exit(exit.code ?? 128 + (exit.signal === null ? 0 : constants.signals[exit.signal]))
  }
}
if (suites.length > 1) {
  console.log(
    `\nAll suites: ${durations.join(', ')}; ` +
      `${Math.round((performance.now() - startedAt) / 1000)} s in all.`,
  )
}
