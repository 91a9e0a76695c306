// npm run chaos -- --seconds N --stores 4 --copies 2 [--read-quorum N] [--read-lease-millis N]
//   [--gray] [--at-rest]
//   [--faults kill,stop,...|none] [--fault-millis N] [--json]
// A concurrent workload while stores crash, hang and restart one at a time (with --gray also
// gray failures between one app server and one store, and CPU starvation); exits non-zero on
// any lost acknowledged write, stale read or resurrection.
import { parseArgs } from 'node:util'
import { startLocalCluster } from '../lib/local-cluster/index.js'
import type { ChaosFinding } from '../lib/cli/workload/chaos-report.js'
import { runChaos } from '../lib/cli/workload/chaos.js'
import { FAULT_KINDS, type FaultKind } from '../lib/cli/workload/chaos-faults.js'
import { median } from './lib/stats.js'

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '60' },
    stores: { type: 'string', default: '4' },
    copies: { type: 'string', default: '2' },
    'in-flight': { type: 'string', default: '64' },
    'read-quorum': { type: 'string' },
    'read-lease-millis': { type: 'string' },
    gray: { type: 'boolean', default: false },
    'at-rest': { type: 'boolean', default: false },
    faults: { type: 'string' },
    'fault-millis': { type: 'string' },
    json: { type: 'boolean', default: false },
  },
})
const optionalNumber = (value: string | undefined): number | undefined =>
  value === undefined ? undefined : Number(value)
const tty = process.stdout.isTTY === true && !process.env.CI
const kinds = faultKinds(values.faults)
const cluster = await startLocalCluster({ stores: Number(values.stores) })
try {
  const report = await runChaos({
    cluster,
    seconds: Number(values.seconds),
    copies: Number(values.copies),
    readQuorum: optionalNumber(values['read-quorum']),
    readLeaseMillis: optionalNumber(values['read-lease-millis']),
    gray: values.gray,
    atRest: values['at-rest'],
    faultKinds: kinds,
    faultMillis: optionalNumber(values['fault-millis']),
    inFlight: Number(values['in-flight']),
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
    (report.readQuorumOption === undefined && values['read-lease-millis'] === undefined
      ? ' (library default)'
      : '') +
    (report.gray ? ', gray faults' : ', crash and hang faults') +
    (report.atRest ? ', rows compressed and encrypted' : '')
  if (values.json) console.log(JSON.stringify({ mode, ...report }, null, 2))
  else {
    console.log(
      `chaos: ${values.seconds}s, ${values.stores} stores, copies ${values.copies}, ${mode}, ` +
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
    console.error(`--faults: unknown kinds; known: ${FAULT_KINDS.join(', ')}, or none`)
    process.exit(2)
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
