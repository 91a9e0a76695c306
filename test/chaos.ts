import t from 'tap'
import { runChaos } from '../lib/cli/workload/chaos.js'
import { startTestCluster } from './helpers/cluster.js'

// The short version of `npm run chaos`: a concurrent workload through two managers while
// stores crash, hang and restart one at a time. No acknowledged write may be lost, no read may
// be stale, no destroyed session may come back; in the default and in the strict setting.
const cluster = await startTestCluster(t, { stores: 4 })
const crashTest = cluster.canCrash ? t.test.bind(t) : t.skip.bind(t)

for (const { strict, seconds } of [
  { strict: false, seconds: 30 },
  { strict: true, seconds: 15 },
]) {
  crashTest(`chaos, ${strict ? 'strict' : 'default'} setting, ${seconds}s`, async (t) => {
    const report = await runChaos({ cluster, seconds, copies: 2, strict, inFlight: 64 })
    t.comment(JSON.stringify({ ...report, detectionMillis: undefined }))
    t.ok(report.faults >= 2, `${report.faults} faults injected: ${report.faultLog.join(', ')}`)
    t.ok(report.operations > 1000, `${report.operations} operations`)
    t.ok(report.acknowledgedWrites > 500, `${report.acknowledgedWrites} acknowledged writes`)
    t.equal(report.lostWrites, 0, 'no acknowledged write lost')
    t.equal(report.staleReads, 0, 'no stale read')
    t.equal(report.resurrections, 0, 'no destroyed session came back')
    t.equal(report.failedRequests, 0, 'no request failed while one store at a time was down')
  })
}
