import t from 'tap'
import type { Test } from 'tap'
import type { ChaosReport } from '../lib/cli/workload/chaos-report.js'
import { runChaos } from '../lib/cli/workload/chaos.js'
import { GRAY_ROTATION } from '../lib/cli/workload/chaos-faults.js'
import { startTestCluster } from './helpers/cluster.js'

// The short versions of `npm run chaos`: a concurrent workload through two managers while
// stores crash, hang and restart one at a time, and (gray) while one app server alone sees a
// store blackholed, slow, resetting, stalling or hanging its data statements. No acknowledged
// write may be lost, no read may be stale, no destroyed session may come back.
const cluster = await startTestCluster(t, { stores: 4 })
const crashTest = cluster.canCrash ? t.test.bind(t) : t.skip.bind(t)

function summary(report: ChaosReport): string {
  const { violations, transientNulls, faultRecords, ...figures } = report
  return JSON.stringify({
    ...figures,
    detectionMillis: undefined,
    violations: violations.slice(0, 5),
    transientNulls: transientNulls.slice(0, 3),
  })
}

// Crash and hang faults every app server sees: with the library's default (reads compare
// copies) and with single-store reads, whose staleness window needs an app server that missed
// a failure, which these faults never leave.
// And once with rows compressed and encrypted, which handoff, read repair and verification
// then carry sealed.
for (const { readQuorum, seconds, atRest } of [
  { readQuorum: undefined, seconds: 30, atRest: false },
  { readQuorum: 1, seconds: 15, atRest: false },
  { readQuorum: undefined, seconds: 15, atRest: true },
]) {
  const setting =
    (readQuorum === undefined ? 'default setting' : `readQuorum ${readQuorum}`) +
    (atRest ? ', rows compressed and encrypted' : '')
  crashTest(`chaos, ${setting}, ${seconds}s`, async (t) => {
    const sealedBefore = await sealedRows()
    const report = await runChaos({
      cluster,
      seconds,
      copies: 2,
      readQuorum,
      atRest,
      inFlight: 64,
      // A loaded machine recovers slowly from each fault: the run goes on until it has both.
      minFaults: 2,
      maxSeconds: seconds * 4,
    })
    t.comment(summary(report))
    // The default reads on the lease (one trusted store); readQuorum 1 has none.
    t.equal(report.readLeaseMillis, readQuorum === 1 ? 0 : 500, 'the read lease as configured')
    t.ok(report.faults >= 2, `${report.faults} faults injected: ${report.faultLog.join(', ')}`)
    t.ok(report.operations > 1000, `${report.operations} operations`)
    t.ok(report.acknowledgedWrites > 500, `${report.acknowledgedWrites} acknowledged writes`)
    checkMix(t, report)
    t.equal(report.lostWrites, 0, 'no acknowledged write lost')
    t.equal(report.staleReads, 0, 'no stale read')
    t.equal(report.resurrections, 0, 'no destroyed session came back')
    // One store is down at a time, so a request fails only if a healthy store also missed the
    // 1 s query timeout, which a CI machine loaded by tap's parallel jobs does now and then
    // (1 read in 35,605 in one run); the read then fails rather than guess. Rare, not none.
    const bound = Math.max(1, Math.floor(report.operations / 1000))
    t.ok(
      report.failedRequests <= bound,
      `${report.failedRequests} requests failed (at most ${bound}, 0.1 %): ` +
        JSON.stringify(report.failuresByCode),
    )
    t.ok(
      report.transientNullReads <= report.failedRequests,
      'a read that missed a session is a failed read, never a "no session" answer',
    )
    if (atRest) t.ok((await sealedRows()) > sealedBefore, 'the run stored sealed rows')
  })
}

/**
 * The run made compare-and-set updates, set timeouts and saw short-lived sessions expire: the
 * checks of those (no lost update, no expired value back) had something to check.
 */
function checkMix(t: Test, report: ChaosReport): void {
  t.ok(report.updates > 50, `${report.updates} updates (compare-and-set) acknowledged`)
  // Only a short-lived session still live takes a timeout: a few per run (4 to 8 in 15 s on
  // a loaded CI machine), so more than none is what can be asked.
  t.ok(report.timeoutsSet > 0, `${report.timeoutsSet} timeouts set`)
  t.ok(report.expiredReads > 50, `${report.expiredReads} reads found a short-lived session expired`)
}

/** Rows on the stores written through the at-rest layer (they start with its marker). */
async function sealedRows(): Promise<number> {
  const counts = await Promise.all(
    cluster.stores.map((store) =>
      store
        .query("SELECT COUNT(*) AS n FROM sessions WHERE LEFT(data, 3) = X'007373'")
        .catch(() => [{ n: 0 }]),
    ),
  )
  return counts.reduce((sum, rows) => sum + Number(rows[0]!.n), 0)
}

// Gray failures, in the library's default setting. CPU starvation is left to
// `npm run chaos -- --gray`: its busy loops would starve the test files tap runs alongside.
// So is the run with every read by quorum (`--read-lease-millis 0`): without announcements to
// hold writes back, a CI machine loaded past every store's timeout at once, which is beyond
// the bound of docs/guarantees.md, showed stale reads in it.
crashTest('chaos with gray failures, default setting, 30s', async (t) => {
  const faultKinds = GRAY_ROTATION.filter((kind) => kind !== 'starve')
  // Every kind at least once: the run goes on past 30 s until it has (up to 2 minutes).
  const report = await runChaos({
    cluster,
    seconds: 30,
    copies: 2,
    gray: true,
    faultKinds,
    minFaults: faultKinds.length,
    maxSeconds: 120,
  })
  t.comment(summary(report))
  for (const record of report.faultRecords) t.comment(JSON.stringify(record))
  for (const finding of report.violations) t.comment(`violation: ${JSON.stringify(finding)}`)
  t.equal(report.readLeaseMillis, 500, 'the read lease as configured')
  t.ok(
    report.faults >= faultKinds.length,
    `${report.faults} faults injected: ${report.faultLog.join(', ')}`,
  )
  t.ok(report.operations > 1000, `${report.operations} operations`)
  checkMix(t, report)
  t.equal(report.lostWrites, 0, 'no acknowledged write lost')
  t.equal(report.staleReads, 0, 'no stale read')
  t.equal(report.resurrections, 0, 'no destroyed session came back')
  // Requests may fail while one app server cannot tell a slow store from a dead one; they are
  // not acknowledged, so nothing is lost. Shown, not asserted.
  t.comment(
    `failed requests: ${report.failedRequests}, transient null reads: ` +
      `${report.transientNullReads}, per app server: ${JSON.stringify(report.appServers)}`,
  )
})
