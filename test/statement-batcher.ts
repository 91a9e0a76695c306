// When the batcher sends what: its scheduling alone, with statements the test answers by hand
// (the statements themselves, against real stores, are in batching.ts).
import t from 'tap'
import type { Test } from 'tap'
import { StoreDownError, StoreTimeoutError } from '../lib/errors.js'
import { DeadlineTracker } from '../lib/store/deadlines.js'
import { StatementBatcher } from '../lib/store/statement-batcher.js'
import type { BatchRunner } from '../lib/store/statement-batcher.js'

/** A runner whose statements wait until the test answers them: each answer doubles its items. */
function heldRunner() {
  const sent: number[][] = []
  const answers: (() => void)[] = []
  const failures: ((error: Error) => void)[] = []
  let up = true
  const hold = (items: number[]): Promise<number[]> => {
    sent.push(items)
    return new Promise((resolve, reject) => {
      answers.push(() => resolve(items.map((item) => item * 2)))
      failures.push(reject)
    })
  }
  const runner: BatchRunner<number, number> = {
    // As Store's own statements: refused at once while the store is down.
    one: (item) =>
      up
        ? hold([item]).then(([result]) => result as number)
        : Promise.reject(new StoreDownError('s1')),
    many: (items) => hold([...items]),
    available: () => up,
  }
  return {
    runner,
    sent,
    answer: (index: number) => answers[index]!(),
    fail: (index: number, error: Error) => failures[index]!(error),
    goDown: () => {
      up = false
    },
  }
}

const LIMITS = { timeoutMillis: 5_000, maxInFlight: 2, maxBatch: 3, maxBatchBytes: 1 << 20 }
const tick = () => new Promise((resolve) => setImmediate(resolve))
/** Past the batcher's own end of the turn, which it may have asked for after the caller's. */
const endOfTurn = async () => {
  await tick()
  await tick()
}

function batcher(held: ReturnType<typeof heldRunner>, limits = LIMITS) {
  return new StatementBatcher('s1', held.runner, new DeadlineTracker(5), limits)
}

/** Requests 1 and 2 answered alone, then 3 and 4 sent as one batch, still running. */
async function batchRunning(t: Test) {
  const held = heldRunner()
  const b = batcher(held)
  const results = [1, 2, 3, 4].map((item) => b.submit(item))
  held.answer(0)
  held.answer(1)
  await tick()
  t.same(held.sent.at(-1), [3, 4], 'the queue left as a batch')
  return { held, b, results }
}

/**
 * As an application does: each answer passes up a few awaits before its caller's next request,
 * numbered from `firstItem`. `asked` settles once every next request was submitted.
 */
function askAgainWhenAnswered(
  b: StatementBatcher<number, number>,
  answers: readonly Promise<number>[],
  firstItem: number,
) {
  const next: Promise<number>[] = []
  const asked = Promise.all(
    answers.map(async (answer, index) => {
      await answer
      await null
      await null
      next.push(b.submit(firstItem + index))
    }),
  )
  return { asked, next }
}

t.test('requests that find a free slot and nothing queued go at once, alone', async (t) => {
  const held = heldRunner()
  const b = batcher(held)
  const first = b.submit(1)
  const second = b.submit(2)
  t.same(held.sent, [[1], [2]], 'two statements side by side')
  held.answer(0)
  held.answer(1)
  t.same(await Promise.all([first, second]), [2, 4])
  const third = b.submit(3)
  t.same(held.sent.at(-1), [3], 'and again once they are back')
  held.answer(2)
  t.equal(await third, 6)
})

t.test('the queue waits until every running statement is back, then leaves as one', async (t) => {
  const held = heldRunner()
  const b = batcher(held)
  const results = [1, 2, 3, 4].map((item) => b.submit(item))
  t.same(held.sent, [[1], [2]], '3 and 4 wait')
  held.answer(0)
  await tick()
  t.same(held.sent, [[1], [2]], 'a slot is free, but 2 still runs: 3 and 4 keep waiting')
  const fifth = b.submit(5)
  t.same(held.sent, [[1], [2]], 'a newcomer joins the queue rather than pass it')
  held.answer(1)
  await tick()
  t.same(held.sent, [[1], [2], [3, 4, 5]], 'all back: the queue leaves as one statement')
  held.answer(2)
  t.same(await Promise.all([...results, fifth]), [2, 4, 6, 8, 10])
})

t.test(
  'beside a running batch, a request that finds nothing queued waits for the next',
  async (t) => {
    const { held, b, results } = await batchRunning(t)
    const fifth = b.submit(5)
    t.equal(held.sent.length, 3, 'a slot is free and nothing is queued, but a batch runs: 5 waits')
    held.answer(2)
    await endOfTurn()
    t.same(held.sent.at(-1), [5], 'and goes once the batch is back, at the end of that turn')
    held.answer(3)
    t.same(await Promise.all([...results, fifth]), [2, 4, 6, 8, 10])
  },
)

t.test(
  "a batch's callers, asking again as its answers come in, queue and leave as one statement",
  async (t) => {
    const { held, b, results } = await batchRunning(t)
    const { asked, next } = askAgainWhenAnswered(b, results.slice(2), 6)
    held.answer(2)
    await asked
    t.equal(held.sent.length, 3, 'the batch is back and nothing runs, but they wait for the turn')
    await tick()
    t.same(held.sent.at(-1), [6, 7], 'then leave together, not each alone')
    held.answer(3)
    t.same(await Promise.all([...results, ...next]), [2, 4, 6, 8, 12, 14])
    await tick()
    const later = b.submit(8)
    t.same(held.sent.at(-1), [8], 'on a later turn a lone request goes at once again')
    held.answer(4)
    t.equal(await later, 16)
  },
)

t.test(
  "requests queued while a batch ran leave with its callers' next ones, as one statement",
  async (t) => {
    const { held, b, results } = await batchRunning(t)
    const queued = b.submit(5)
    const { asked, next } = askAgainWhenAnswered(b, results.slice(2), 6)
    held.answer(2)
    await asked
    t.equal(held.sent.length, 3, 'the batch is back, but 5 waits for the rest of the turn')
    await endOfTurn()
    t.same(held.sent.at(-1), [5, 6, 7], 'then 5, 6 and 7 leave together')
    held.answer(3)
    t.same(await Promise.all([...results, queued, ...next]), [2, 4, 6, 8, 10, 12, 14])
  },
)

t.test('a queue longer than a batch leaves as several, up to the slots', async (t) => {
  const held = heldRunner()
  const b = batcher(held)
  const results = [1, 2, 3, 4, 5, 6, 7, 8, 9].map((item) => b.submit(item))
  held.answer(0)
  held.answer(1)
  await tick()
  t.same(held.sent.slice(2), [
    [3, 4, 5],
    [6, 7, 8],
  ])
  held.answer(2)
  await tick()
  t.same(held.sent.length, 4, 'the rest waits for the other batch too')
  held.answer(3)
  await endOfTurn()
  t.same(held.sent.at(-1), [9])
  held.answer(4)
  t.same(await Promise.all(results), [2, 4, 6, 8, 10, 12, 14, 16, 18])
})

t.test('when the store goes down, the queue fails at once instead of waiting', async (t) => {
  const held = heldRunner()
  const b = batcher(held)
  const running = [b.submit(1), b.submit(2)]
  const queued = b.submit(3)
  held.goDown()
  held.fail(0, new Error('connection lost'))
  await t.rejects(queued, StoreDownError, 'failed while 2 still runs')
  await t.rejects(running[0]!, /connection lost/)
  held.answer(1)
  t.equal(await running[1], 4)
  t.equal(held.sent.length, 2, 'nothing more was sent')
})

t.test(
  'a batch failing as its store goes down fails the queue at once, not at the turn',
  async (t) => {
    const { held, b, results } = await batchRunning(t)
    const queued = b.submit(5)
    let settledWithinTurn = false
    const outcome = queued.then(
      () => 'answered',
      (error: unknown) => {
        settledWithinTurn = true
        return error
      },
    )
    held.goDown()
    held.fail(2, new Error('connection lost'))
    await Promise.allSettled(results.slice(2))
    await null
    t.ok(settledWithinTurn, 'failed in the turn the batch failed, before the end of it')
    t.type(await outcome, StoreDownError)
    await endOfTurn()
    t.equal(held.sent.length, 3, 'nothing more was sent')
  },
)

t.test(
  'a request to a store already down is refused at once, beside statements running',
  async (t) => {
    const held = heldRunner()
    const b = batcher(held)
    const running = [b.submit(1), b.submit(2)]
    held.goDown()
    let settled = false
    const late = b.submit(3).catch((error: unknown) => {
      settled = true
      return error
    })
    await tick()
    t.ok(settled, 'refused without waiting for the statements running (each up to a timeout)')
    t.type(await late, StoreDownError)
    t.equal(held.sent.length, 2, 'nothing more was sent')
    held.answer(0)
    held.answer(1)
    t.same(await Promise.all(running), [2, 4])
  },
)

t.test('a queued request keeps its own deadline while it waits', async (t) => {
  const held = heldRunner()
  const b = batcher(held, { ...LIMITS, timeoutMillis: 30 })
  const running = [b.submit(1), b.submit(2)]
  const late = b.submit(3).then(
    () => 'answered',
    (error: unknown) => error,
  )
  // A timer of the test's own: the tracker's never keeps the process alive.
  await new Promise((resolve) => setTimeout(resolve, 100))
  t.type(await late, StoreTimeoutError)
  held.answer(0)
  held.answer(1)
  t.same(await Promise.all(running), [2, 4])
  await tick()
  t.equal(held.sent.length, 2, 'the expired request was never sent')
})
