// `npm run chaos` with arguments it cannot use: a typed error that names the option, not its
// value, before any store starts (a value it could not use once made a run that never ended),
// and, as a process, exit code 2 and one line.
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { chaosSettings } from '../bench/lib/chaos-settings.js'
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

t.test('settings: the defaults, and what the command line sets', async (t) => {
  t.match(chaosSettings([]), { seconds: 60, stores: 4, copies: 2, inFlight: 64, json: false })
  t.match(
    chaosSettings(['--seconds', '5', '--stores', '3', '--read-quorum', '1', '--faults', 'none']),
    { seconds: 5, stores: 3, readQuorum: 1, faultKinds: [] },
  )
  t.equal(chaosSettings(['--help']), 'help')
})

const refused: [args: string[], code: string | undefined, message: RegExp][] = [
  [['--seconds', 'abc'], undefined, /^--seconds must be a whole number of at least 1$/],
  [['--seconds', '0.5'], undefined, /^--seconds must be a whole number of at least 1$/],
  [['--in-flight', '-3'], 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE', /'--in-flight' .*ambiguous/],
  [['--in-flight=-3'], undefined, /^--in-flight must be a whole number of at least 1$/],
  [['--stores', '2', '--copies', '3'], undefined, /^--copies must be at most --stores$/],
  [['--copies', '2', '--read-quorum', '3'], undefined, /^--read-quorum must be at most --copies$/],
  [['--faults', 'kill,melt'], undefined, /^--faults takes blackhole, .* or none$/],
  [['--fault-millis', '0'], undefined, /^--fault-millis must be a whole number of at least 1$/],
  [['--mystery'], 'ERR_PARSE_ARGS_UNKNOWN_OPTION', /'--mystery'/],
  [['--read-lease-millis', '5'], 'INVALID_OPTION', /^readLeaseMillis option must be/],
]

for (const [args, code, message] of refused) {
  t.test(`${args.join(' ')}: refused, naming the option`, async (t) => {
    let error: (Error & { code?: string }) | undefined
    try {
      chaosSettings(args)
    } catch (thrown) {
      error = thrown as Error
    }
    t.type(error, Error, 'refused')
    t.equal(error?.code, code)
    t.match(error?.message, message)
    for (const value of args.filter((arg) => !arg.startsWith('--') && arg.length > 1)) {
      t.notOk(error?.message.includes(value), `the value ${JSON.stringify(value)} is not echoed`)
    }
  })
}

t.test(
  'as a process: --help exits 0; a bad value exits 2 with one line, nothing run',
  async (t) => {
    const help = await chaos(['--help'])
    t.equal(help.code, 0)
    t.match(help.stdout, /^Usage: npm run chaos -- \[options\]/)
    t.equal(help.stderr, '')
    const bad = await chaos(['--seconds', 'abc'])
    t.equal(bad.code, 2)
    t.equal(bad.stdout, '', 'no report: nothing ran')
    t.equal(
      bad.stderr,
      'chaos: --seconds must be a whole number of at least 1; see npm run chaos -- --help\n',
    )
  },
)
