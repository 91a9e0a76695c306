#!/usr/bin/env node
// Run by `npm test`: runs tap with the arguments given. At a terminal, tap's own reporter
// summarizes failures; otherwise (CI, a pipe) its TAP output passes through as it comes and each
// failed assertion is repeated after it, with its subtests and diagnostics, so the end of the
// output (all that CI shows of a long run) says what failed. Exits with tap's status.
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { createInterface } from 'node:readline'
import { FailureCollector, failureSummary } from './tap-failures.mjs'

const atTerminal = process.stdout.isTTY === true
const args = process.argv.slice(2)
// tap picks its reporter by colour, which FORCE_COLOR or TAP_COLOR turn on without a terminal:
// the summary needs TAP, so it is asked for, unless the caller chose a reporter.
const reporterChosen = args.some((arg) => /^(-R|--reporter)(=|$)/.test(arg))
if (!atTerminal && !reporterChosen) args.unshift('--reporter=tap')
const tap = spawn('tap', args, {
  stdio: ['inherit', atTerminal ? 'inherit' : 'pipe', 'inherit'],
})
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => tap.kill(signal))

const collector = new FailureCollector()
let outputDone = Promise.resolve()
if (!atTerminal) {
  tap.stdout.pipe(process.stdout, { end: false })
  const lines = createInterface({ input: tap.stdout, crlfDelay: Infinity })
  lines.on('line', (line) => collector.add(line))
  outputDone = once(lines, 'close')
}
const [[code, signal]] = await Promise.all([once(tap, 'exit'), outputDone])
process.stdout.write(failureSummary(collector))
process.exitCode = code ?? (signal ? 1 : 0)
