/**
 * `npm run chaos`: a concurrent workload while stores crash, hang and restart one at a time
 * (with --gray also gray failures between one app server and one store, and CPU starvation);
 * exits 1 on any lost acknowledged write, stale read or resurrection, 2 on bad arguments
 * (checked before any store starts).
 */
import { parseArgs } from 'node:util'
import { InvalidOptionError } from '../lib/errors.js'
import { startLocalCluster } from '../lib/local-cluster/index.js'
import { integerArgument, UsageError } from '../lib/cli/command.js'
import type { ChaosFinding } from '../lib/cli/workload/chaos-report.js'
import { runChaos, type ChaosOptions } from '../lib/cli/workload/chaos.js'
import { FAULT_KINDS, type FaultKind } from '../lib/cli/workload/chaos-faults.js'
import { median } from './lib/stats.js'

const USAGE = `Usage: npm run chaos -- [options]

  --seconds N             how long the workload runs                   [60]
  --stores N              local stores                                 [4]
  --copies N              copies of each session, at most --stores     [2]
  --in-flight N           operations in flight                         [64]
  --read-quorum N         the managers' readQuorum, at most --copies   [the library's default]
  --read-lease-millis N   the managers' readLeaseMillis (0: no lease)  [the library's default]
  --gray                  gray failures too (fault proxies, CPU starvation)
  --at-rest               rows compressed and encrypted
  --faults K,...|none     the fault kinds to rotate through: ${FAULT_KINDS.join(', ')}
  --fault-millis N        how long each fault lasts
  --json                  the report as one JSON document
  --help                  this text

Exit code: 0 clean, 1 a lost acknowledged write, stale read or resurrection, 2 bad arguments.`

/** The run's settings from the command line; throws UsageError (naming the option, never its value). */
function chaosSettings(argv: string[]): Omit<ChaosOptions, 'cluster'> & {
  stores: number
  json: boolean
} {
  const { values } = parseArgs({
    args: argv,
    options: {
      seconds: { type: 'string' },
      stores: { type: 'string' },
      copies: { type: 'string' },
      'in-flight': { type: 'string' },
      'read-quorum': { type: 'string' },
      'read-lease-millis': { type: 'string' },
      gray: { type: 'boolean', default: false },
      'at-rest': { type: 'boolean', default: false },
      faults: { type: 'string' },
      'fault-millis': { type: 'string' },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  })
  if (values.help) {
    console.log(USAGE)
    process.exit(0)
  }
  const stores = integerArgument('stores', values.stores, 1) ?? 4
  const copies = integerArgument('copies', values.copies, 1) ?? 2
  if (copies > stores) throw new UsageError('--copies must be at most --stores')
  const readQuorum = integerArgument('read-quorum', values['read-quorum'], 1)
  if (readQuorum !== undefined && readQuorum > copies) {
    throw new UsageError('--read-quorum must be at most --copies')
  }
  return {
    seconds: integerArgument('seconds', values.seconds, 1) ?? 60,
    stores,
    copies,
    inFlight: integerArgument('in-flight', values['in-flight'], 1) ?? 64,
    readQuorum,
    readLeaseMillis: integerArgument('read-lease-millis', values['read-lease-millis'], 0),
    gray: values.gray,
    atRest: values['at-rest'],
    faultKinds: faultKinds(values.faults),
    faultMillis: integerArgument('fault-millis', values['fault-millis'], 1),
    json: values.json,
  }
}

let settings: ReturnType<typeof chaosSettings>
try {
  settings = chaosSettings(process.argv.slice(2))
} catch (error) {
  // parseArgs's own errors (an unknown option, a missing value) name the option; their first
  // sentence is the message.
  const message = error instanceof Error ? error.message.split(/\.\s/, 1)[0] : String(error)
  console.error(`chaos: ${message}; see npm run chaos -- --help`)
  process.exit(2)
}
const { stores, json, ...options } = settings
const tty = process.stdout.isTTY === true && !process.env.CI
const cluster = await startLocalCluster({ stores })
try {
  const report = await runChaos({
    ...options,
    cluster,
    onProgress: (p) => {
      if (!tty) return
      process.stdout.write(
        `\r${p.elapsedSeconds.toFixed(0)}s ops ${p.operations} acked ${p.acknowledgedWrites} ` +
          `failed ${p.failedRequests} faults ${p.faults} transient-null ${p.transientNullReads} ` +
          `lost ${p.lostWrites} stale ${p.staleReads} resurrected ${p.resurrections}   `,
      )
    },
    onEvent: (line) => {
      if (tty) process.stdout.write(`\n${line}\n`)
    },
  })
  if (tty) process.stdout.write('\n')
  const mode =
    `readQuorum ${report.readQuorum}` +
    (report.readLeaseMillis > 0 ? `, read lease ${report.readLeaseMillis} ms` : ', no read lease') +
    (report.readQuorumOption === undefined && options.readLeaseMillis === undefined
      ? ' (library default)'
      : '') +
    (report.gray ? ', gray faults' : ', crash and hang faults') +
    (report.atRest ? ', rows compressed and encrypted' : '')
  if (json) console.log(JSON.stringify({ mode, ...report }, null, 2))
  else {
    console.log(
      `chaos: ${options.seconds}s, ${stores} stores, copies ${options.copies}, ${mode}, ` +
        `${report.faultMillis} ms per fault`,
    )
    console.log(`operations            ${report.operations} (${report.opsPerSecond}/s)`)
    console.log(`acknowledged writes   ${report.acknowledgedWrites}`)
    console.log(`lost acked writes     ${report.lostWrites}`)
    console.log(`stale reads           ${report.staleReads}`)
    console.log(`resurrections         ${report.resurrections}`)
    console.log(`transient null reads  ${report.transientNullReads}`)
    console.log(`failed requests       ${report.failedRequests}`)
    console.log(`faults                ${report.faults} (${report.faultLog.join(', ')})`)
    console.log(`sessions verified     ${report.sessionsVerified}`)
    if (report.unverifiedSessions > 0) {
      console.log(`sessions unverified   ${report.unverifiedSessions}`)
    }
    const detection = report.detectionMillis
    if (detection.length > 0) {
      console.log(
        `detection ms          median ${median(detection)}, max ${Math.max(...detection)}`,
      )
    }
    for (const server of report.appServers) {
      console.log(
        `${server.appServer.padEnd(22)}read p99 ${server.readP99Millis} ms (max ` +
          `${server.readMaxMillis}), write p99 ${server.writeP99Millis} ms (max ` +
          `${server.writeMaxMillis}), ${server.failedRequests} failed of ` +
          `${server.reads + server.writes}`,
      )
    }
    console.log('\nper fault kind         injected detected  failed transient lost stale resurr.')
    for (const [kind, f] of Object.entries(report.faultsByKind)) {
      const columns = [
        [f.injected, 8],
        [f.detected, 8],
        [f.failedRequests, 7],
        [f.transientNullReads, 9],
        [f.lostWrites, 4],
        [f.staleReads, 5],
        [f.resurrections, 7],
      ] as const
      console.log(`${kind.padEnd(22)} ${columns.map(([n, width]) => pad(n, width)).join(' ')}`)
    }
    for (const line of report.notBackInService) console.log(`not back in service:  ${line}`)
    for (const line of report.faultErrors) console.log(`fault error:          ${line}`)
    if (report.violations.length > 0) console.log('\nviolations (first ones):')
    for (const finding of report.violations) console.log(`  ${describeFinding(finding)}`)
    if (report.transientNulls.length > 0) console.log('\ntransient null reads (first ones):')
    for (const finding of report.transientNulls.slice(0, 10)) {
      console.log(`  ${describeFinding(finding)}`)
    }
  }
  process.exitCode = report.clean ? 0 : 1
} catch (error) {
  // An option the managers refuse (a typed error naming the option, never its value).
  if (!(error instanceof InvalidOptionError)) throw error
  console.error(`chaos: ${error.message}`)
  process.exitCode = 2
} finally {
  await cluster.stop()
}

/** `--faults`: a comma-separated list of fault kinds, or `none` for a run without faults. */
function faultKinds(list: string | undefined): FaultKind[] | undefined {
  if (list === undefined) return undefined
  if (list === 'none') return []
  const kinds = list.split(',')
  const unknown = kinds.filter((kind) => !FAULT_KINDS.includes(kind as FaultKind))
  if (unknown.length > 0) {
    throw new UsageError(`--faults takes ${FAULT_KINDS.join(', ')} or none`)
  }
  return kinds as FaultKind[]
}

function describeFinding(f: ChaosFinding): string {
  const found =
    f.verdict === 'transient'
      ? `, found ${f.foundAfterMillis} ms later by ${f.foundBy}`
      : f.settledBy === undefined
        ? ''
        : `, settled by ${f.settledBy}`
  const d = f.diagnosis
  const diagnosis =
    d === undefined
      ? ''
      : `\n    order ${d.order.join(', ')}; reader saw ${d.standings.join(', ')}` +
        `\n    rows just after: ${Object.entries(d.rows)
          .map(([store, row]) => `${store} ${row}`)
          .join('; ')}`
  const possible = f.possible.join(' | ')
  return (
    `${f.verdict} at ${f.atSeconds} s, ${f.reader} read ${f.seen} (possible ${possible})` +
    `${found}; ${f.phase}: ${f.fault}; session ${f.id}${diagnosis}`
  )
}

function pad(value: number, width: number): string {
  return String(value).padStart(width)
}
