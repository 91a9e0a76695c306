import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import t from 'tap'
import { performance } from 'node:perf_hooks'
import type { PendingStatement } from '../lib/store/deadlines.js'
import { DeadlineTracker } from '../lib/store/deadlines.js'

// One timer enforces every deadline of a store (and every lone read's hedge): set for the
// earliest deadline pending, whatever order the deadlines come in. Bounds on lateness are
// generous (a loaded CI machine); what they catch is a deadline left to a later timer.

// The tracker's timer is unref'd: each test keeps the process running while it waits.
t.beforeEach((t) => {
  const keepAlive = setInterval(() => {}, 1000)
  t.teardown(() => clearInterval(keepAlive))
})

/** A pending statement that records when it expired, and a promise of that. */
function pending(inMillis: number): PendingStatement & { expired: Promise<number> } {
  let settle: (at: number) => void = () => {}
  const expired = new Promise<number>((resolve) => (settle = resolve))
  return {
    deadline: performance.now() + inMillis,
    untracked: true,
    expire: () => settle(performance.now()),
    expired,
  }
}

t.test('deadlines expire at their time, never early, whatever their order', async (t) => {
  const tracker = new DeadlineTracker(1)
  const started = performance.now()
  const late = pending(400)
  const early = pending(20)
  const middle = pending(60)
  for (const statement of [late, early, middle]) tracker.add(statement)
  const earlyAt = await early.expired
  t.ok(earlyAt >= early.deadline, 'not before its deadline')
  t.ok(
    earlyAt - started < 200,
    `the early deadline did not wait for the late one (${Math.round(earlyAt - started)} ms)`,
  )
  const middleAt = await middle.expired
  t.ok(middleAt >= middle.deadline && middleAt - started < 300, 'then the middle one')
  t.ok((await late.expired) >= late.deadline, 'and the late one, not early')
})

t.test('a deleted statement never expires; the others still do', async (t) => {
  const tracker = new DeadlineTracker(5)
  let answeredExpired = false
  const answered = {
    deadline: performance.now() + 10,
    untracked: true,
    expire: () => (answeredExpired = true),
  }
  const waiting = pending(30)
  tracker.add(answered)
  tracker.add(waiting)
  tracker.delete(answered)
  await waiting.expired
  t.notOk(answeredExpired, 'the answered statement was not expired')
})

t.test('a statement deleted behind a pending one never expires', async (t) => {
  const tracker = new DeadlineTracker(1)
  const front = pending(40)
  let deletedExpired = false
  const behind = {
    deadline: performance.now() + 10,
    untracked: true,
    expire: () => (deletedExpired = true),
  }
  tracker.add(front)
  tracker.add(behind)
  tracker.delete(behind)
  await front.expired
  t.notOk(deletedExpired, 'the deleted statement was not expired')
})

t.test(
  'deleted statements behind a long-pending one are dropped: the list stays bounded',
  async (t) => {
    const tracker = new DeadlineTracker(1)
    const hung = pending(60_000)
    tracker.add(hung)
    let most = 0
    for (let i = 0; i < 10_000; i++) {
      const statement = { deadline: performance.now() + 1000, untracked: true, expire() {} }
      tracker.add(statement)
      most = Math.max(most, tracker.held)
      tracker.delete(statement)
    }
    t.ok(most <= 2 * 2 + 64, `at most ${most} statements held for 1 or 2 pending`)
    tracker.delete(hung)
    t.equal(tracker.held, 0, 'none once nothing is pending')
  },
)

t.test('deleting a statement the tracker does not hold changes nothing', async (t) => {
  const tracker = new DeadlineTracker(1)
  const stranger = pending(10)
  tracker.delete(stranger)
  const held = pending(20)
  tracker.add(held)
  t.equal(tracker.held, 1, 'only the statement added is held')
  t.ok((await held.expired) >= held.deadline, 'and it expires')
})

t.test('a deadline added while others expire is kept', async (t) => {
  const tracker = new DeadlineTracker(1)
  const next = pending(20)
  tracker.add({
    deadline: performance.now() + 10,
    untracked: true,
    expire: () => tracker.add(next),
  })
  t.ok((await next.expired) >= next.deadline)
})

t.test('the timer does not keep the process alive', async (t) => {
  const module = new URL('../lib/store/deadlines.ts', import.meta.url).href
  const script =
    `const { DeadlineTracker } = await import(${JSON.stringify(module)});` +
    'new DeadlineTracker(1).add({ deadline: performance.now() + 60000, untracked: true, expire() {} });' +
    "console.log('left')"
  const started = performance.now()
  const { stdout } = await promisify(execFile)(
    process.execPath,
    ['--import', 'tsx', '--input-type=module', '-e', script],
    { timeout: 30_000 },
  )
  t.equal(stdout.trim(), 'left')
  t.ok(performance.now() - started < 30_000, 'the process exited without waiting for the deadline')
})
