/**
 * `npm run chaos`: a concurrent workload while stores crash, hang and restart one at a time
 * (with --gray also gray failures between one app server and one store, and CPU starvation);
 * exits 1 on any lost acknowledged write, stale read or resurrection, 2 on bad arguments
 * (checked before any store starts).
 */
import { parseArgsMessage } from '../lib/cli/command.js'
import { startLocalCluster } from '../lib/local-cluster/index.js'
import type { ChaosFinding } from '../lib/cli/workload/chaos-report.js'
import { runChaos } from '../lib/cli/workload/chaos.js'
import { CHAOS_USAGE, chaosSettings } from './lib/chaos-settings.js'
import { median } from './lib/stats.js'

// Checked before any store starts: a bad value exits 2 with one line naming the option.
let settings: ReturnType<typeof chaosSettings>
try {
  settings = chaosSettings(process.argv.slice(2))
} catch (error) {
  console.error(`chaos: ${parseArgsMessage(error)}; see npm run chaos -- --help`)
  process.exit(2)
}
if (settings === 'help') {
  console.log(CHAOS_USAGE)
  process.exit(0)
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
    console.log(`  of which updates    ${report.updates} (compare-and-set)`)
    console.log(`  timeouts set        ${report.timeoutsSet}`)
    console.log(`expired (null) reads  ${report.expiredReads}`)
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
