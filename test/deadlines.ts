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
  const answered = { deadline: performance.now() + 10, expire: () => (answeredExpired = true) }
  const waiting = pending(30)
  tracker.add(answered)
  tracker.add(waiting)
  tracker.delete(answered)
  await waiting.expired
  t.notOk(answeredExpired, 'the answered statement was not expired')
})

t.test('a deadline added while others expire is kept', async (t) => {
  const tracker = new DeadlineTracker(1)
  const next = pending(20)
  tracker.add({ deadline: performance.now() + 10, expire: () => tracker.add(next) })
  t.ok((await next.expired) >= next.deadline)
})

t.test('the timer does not keep the process alive', async (t) => {
  const module = new URL('../lib/store/deadlines.ts', import.meta.url).href
  const script =
    `const { DeadlineTracker } = await import(${JSON.stringify(module)});` +
    'new DeadlineTracker(1).add({ deadline: performance.now() + 60000, expire() {} });' +
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
