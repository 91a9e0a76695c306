// npm run chaos -- --seconds N --stores 4 --copies 2 [--strict]
// A concurrent workload while stores crash, hang and restart one at a time; exits non-zero
// on any lost acknowledged write, stale read or resurrection.
import { parseArgs } from 'node:util'
import { startLocalCluster } from '../lib/local-cluster/index.js'
import { runChaos } from '../lib/cli/workload/chaos.js'

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '60' },
    stores: { type: 'string', default: '4' },
    copies: { type: 'string', default: '2' },
    'in-flight': { type: 'string', default: '64' },
    strict: { type: 'boolean', default: false },
    json: { type: 'boolean', default: false },
  },
})
const tty = process.stdout.isTTY === true && !process.env.CI
const cluster = await startLocalCluster({ stores: Number(values.stores) })
try {
  const report = await runChaos({
    cluster,
    seconds: Number(values.seconds),
    copies: Number(values.copies),
    strict: values.strict,
    inFlight: Number(values['in-flight']),
    onProgress: (p) => {
      if (!tty) return
      process.stdout.write(
        `\r${p.elapsedSeconds.toFixed(0)}s ops ${p.operations} acked ${p.acknowledgedWrites} ` +
          `failed ${p.failedRequests} faults ${p.faults} lost ${p.lostWrites} stale ${p.staleReads} ` +
          `resurrected ${p.resurrections}   `,
      )
    },
    onEvent: (line) => {
      if (tty) process.stdout.write(`\n${line}\n`)
    },
  })
  if (tty) process.stdout.write('\n')
  const mode = values.strict ? `strict (readQuorum ${values.copies})` : 'default (readQuorum 1)'
  if (values.json) console.log(JSON.stringify({ mode, ...report }, null, 2))
  else {
    console.log(
      `chaos: ${values.seconds}s, ${values.stores} stores, copies ${values.copies}, ${mode}`,
    )
    console.log(`operations            ${report.operations} (${report.opsPerSecond}/s)`)
    console.log(`acknowledged writes   ${report.acknowledgedWrites}`)
    console.log(`lost acked writes     ${report.lostWrites}`)
    console.log(`stale reads           ${report.staleReads}`)
    console.log(`resurrections         ${report.resurrections}`)
    console.log(`failed requests       ${report.failedRequests}`)
    console.log(`faults                ${report.faults} (${report.faultLog.join(', ')})`)
    console.log(`sessions verified     ${report.sessionsVerified}`)
    const detection = report.detectionMillis
    if (detection.length > 0) {
      console.log(
        `detection ms          median ${median(detection)}, max ${Math.max(...detection)}`,
      )
    }
  }
  process.exitCode = report.clean ? 0 : 1
} finally {
  await cluster.stop()
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.floor(sorted.length / 2)] as number
}
