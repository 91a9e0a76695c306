// `npm run chaos` with bad arguments: exit code 2 and one line that names the option, not its
// value, before any store starts (a value it cannot use once made a run that never ended).
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { finished } from './helpers/cli.js'

const CHAOS = fileURLToPath(new URL('../bench/chaos.ts', import.meta.url))
const TSX = import.meta.resolve('tsx')

function chaos(args: string[]): ReturnType<typeof finished> {
  return finished(
    spawn(process.execPath, ['--import', TSX, CHAOS, ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
    }),
  )
}

t.test('--help prints the usage and exits 0', async (t) => {
  const run = await chaos(['--help'])
  t.equal(run.code, 0)
  t.match(run.stdout, /^Usage: npm run chaos -- \[options\]/)
  t.match(run.stdout, /--read-lease-millis N/)
  t.equal(run.stderr, '')
})

const refused: [args: string[], message: RegExp][] = [
  [['--seconds', 'abc'], /^chaos: --seconds must be a whole number of at least 1;/],
  [['--seconds', '0.5'], /^chaos: --seconds must be a whole number of at least 1;/],
  [['--in-flight', '-3'], /^chaos: Option '--in-flight' argument is ambiguous;/],
  [['--in-flight=-3'], /^chaos: --in-flight must be a whole number of at least 1;/],
  [['--stores', '2', '--copies', '3'], /^chaos: --copies must be at most --stores;/],
  [['--copies', '2', '--read-quorum', '3'], /^chaos: --read-quorum must be at most --copies;/],
  [['--faults', 'kill,melt'], /^chaos: --faults takes blackhole, .* or none;/],
  [['--fault-millis', '0'], /^chaos: --fault-millis must be a whole number of at least 1;/],
  [['--mystery'], /^chaos: Unknown option '--mystery';/],
]

for (const [args, message] of refused) {
  t.test(`${args.join(' ')}: exit code 2, one line`, async (t) => {
    const run = await chaos(args)
    t.equal(run.code, 2)
    t.equal(run.stdout, '', 'no report: nothing ran')
    t.match(run.stderr, message)
    t.equal(run.stderr.trim().split('\n').length, 1, 'one line, no stack')
    for (const value of args.filter((arg) => !arg.startsWith('--') && arg.length > 1)) {
      t.notOk(run.stderr.includes(value), `the value ${JSON.stringify(value)} is not echoed`)
    }
  })
}

t.test('an option the managers refuse: exit code 2, the typed error in one line', async (t) => {
  const run = await chaos(['--stores', '2', '--seconds', '1', '--read-lease-millis', '5'])
  t.equal(run.code, 2)
  t.match(run.stderr, /^chaos: readLeaseMillis option must be a whole number of milliseconds/)
  t.equal(run.stderr.trim().split('\n').length, 1, 'one line, no stack')
})
