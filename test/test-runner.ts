// `npm test` repeats failed assertions after tap's output (bin/run-tests.mjs): CI shows only the
// tail of a long run, and a failure deep in it was otherwise out of sight.
import { spawnSync } from 'node:child_process'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import {
  FailureCollector,
  MAX_DIAGNOSTIC_LINES,
  MAX_FAILURES,
  failureSummary,
} from '../bin/tap-failures.mjs'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')

function collect(tapText: string) {
  const collector = new FailureCollector()
  for (const line of tapText.split('\n')) collector.add(line)
  return collector
}

const nested = `# Subtest: test/a.ts
    # Subtest: a write survives
        ok 1 - acknowledged
        not ok 2 - seen by the next read
          ---
          found: 1
          wanted: 2
          ...
        1..2
    not ok 1 - a write survives # time=12ms
    # Subtest: a lock times out
        ok 1 - held
        1..1
    not ok 2 - a lock times out # time=360000ms
      ---
      message: timeout!
      ...
    ok 3 - plain # TODO later
    not ok 4 - not yet # TODO fix it
    1..4
not ok 1 - test/a.ts # time=12ms
# Subtest: test/b.ts
    ok 1 - fine
    1..1
ok 2 - test/b.ts # time=3ms
# { total: 5, pass: 3, fail: 2 }`

t.test('each failure once, at its deepest point, with its diagnostics', async (t) => {
  const failures = collect(nested).failures()
  t.same(
    failures.map((failure) => failure.path.join(' > ')),
    ['test/a.ts > a write survives > seen by the next read', 'test/a.ts > a lock times out'],
    'an assertion under its subtests; a subtest failed on its own (a timeout); no TODO',
  )
  t.same(failures[0]?.diagnostic, ['found: 1', 'wanted: 2'])
  t.same(failures[1]?.diagnostic, ['message: timeout!'])
})

t.test('nothing printed when nothing failed', async (t) => {
  t.equal(failureSummary(collect('# Subtest: x\n    ok 1 - fine\n    1..1\nok 1 - x')), '')
})

t.test('bounded: failures past the limit are counted, diagnostics cut', async (t) => {
  const longDiagnostic = Array.from({ length: MAX_DIAGNOSTIC_LINES + 10 }, (_, i) => `  l${i}`)
  const lines = []
  for (let i = 1; i <= MAX_FAILURES + 5; i++) {
    lines.push(`not ok ${i} - failure ${i}`, '  ---', ...longDiagnostic, '  ...')
  }
  const collector = collect(lines.join('\n'))
  t.equal(collector.failures().length, MAX_FAILURES)
  t.equal(collector.dropped, 5)
  t.equal(collector.failures()[0]?.diagnostic.length, MAX_DIAGNOSTIC_LINES)
  t.match(failureSummary(collector), /^# Failed assertions \(45\):[^]*\.\.\. and 5 more\n$/)
})

// tap picks its reporter by colour: FORCE_COLOR (set by many CI setups) or TAP_COLOR (which tap
// exports to the test files of a run at a colour terminal) would make it print text, not TAP.
for (const [name, colour] of [
  ['a plain environment', {}],
  ['FORCE_COLOR=1', { FORCE_COLOR: '1' }],
  ['TAP_COLOR=1', { TAP_COLOR: '1' }],
] as const) {
  t.test(`a real run, ${name}: the summary ends the output, the status is tap’s`, async (t) => {
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      PATH: `${join(root, 'node_modules/.bin')}:${process.env.PATH}`,
    }
    // A fresh environment (CI): none of the settings the tap running this file exports.
    for (const key of Object.keys(env)) if (key.startsWith('TAP')) delete env[key]
    delete env.NO_COLOR
    delete env.FORCE_COLOR
    Object.assign(env, colour)
    const run = spawnSync(
      process.execPath,
      [join(root, 'bin/run-tests.mjs'), 'test/fixtures/failing-on-purpose.ts'],
      { cwd: root, encoding: 'utf8', env },
    )
    t.equal(run.status, 1, 'failed, as tap did')
    t.match(run.stdout, /\n {4,}not ok 2 - one is two\n/, 'tap’s own output passed through')
    const tail = run.stdout.slice(run.stdout.lastIndexOf('# Failed assertions'))
    t.match(
      tail,
      /^# Failed assertions \(1\):\n# {3}test\/fixtures\/failing-on-purpose\.ts > an outer subtest > an inner subtest > one is two\n/,
    )
    t.match(tail, /lineNumber: 7/, 'with where it failed')
  })
}
