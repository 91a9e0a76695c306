// `npm run bench` with arguments it cannot use: one line that names the option, never the value
// given, and exit code 2, before any suite starts a store.
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { benchArgs } from '../bench/lib/args.js'
import { finished } from './helpers/cli.js'

const TSX = import.meta.resolve('tsx')

function bench(script: string, args: string[]): ReturnType<typeof finished> {
  const file = fileURLToPath(new URL(`../bench/${script}`, import.meta.url))
  return finished(
    spawn(process.execPath, ['--import', TSX, file, ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
    }),
  )
}

t.test("the suites' arguments: what is taken, what is refused", async (t) => {
  t.same(benchArgs('usage', []), { seconds: undefined, quick: false })
  t.same(benchArgs('usage', ['--seconds', '2.5', '--quick']), { seconds: 2.5, quick: true })
  const refused: [args: string[], message: RegExp][] = [
    [['--seconds', 'soon'], /^--seconds must be a positive number$/],
    [['--seconds', '0'], /^--seconds must be a positive number$/],
    [['--seconds', 'Infinity'], /^--seconds must be a positive number$/],
    [['--rounds', '3'], /Unknown option '--rounds'/],
  ]
  for (const [args, message] of refused) {
    t.throws(() => benchArgs('usage', args), message, args.join(' '))
  }
})

t.test('as processes: exit 2 with one line, nothing echoed, nothing run', async (t) => {
  const hostile = 'core; rm -rf /'
  const suite = await bench('all.ts', ['--suite', hostile])
  t.equal(suite.code, 2)
  t.equal(suite.stdout, '', 'nothing ran')
  t.match(
    suite.stderr,
    /^bench: --suite must be all or one of core, .*; see npm run bench -- --help\n$/,
  )
  t.notOk(suite.stderr.includes(hostile), 'the value is not echoed')
  const seconds = await bench('core.ts', ['--seconds', 'soon'])
  t.equal(seconds.code, 2)
  t.equal(seconds.stdout, '', 'nothing ran')
  t.equal(seconds.stderr, 'core: --seconds must be a positive number; see --help\n')
})
