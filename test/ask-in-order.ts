import t from 'tap'
import { askInOrder } from '../lib/ask-in-order.js'

// Lanes over an order of stores, without a database: failures move a lane on, slow stores are
// raced against the next one, and lanes never ask past the end of the order.
const stores = ['a', 'b', 'c', 'd'].map((id) => ({ id }))
const after = (millis: number, value: string, fail = false): Promise<string> =>
  new Promise((resolve, reject) =>
    setTimeout(() => (fail ? reject(new Error(`${value} failed`)) : resolve(value)), millis),
  )

t.test('a failed store is replaced by the next one', async (t) => {
  const result = await askInOrder(stores, 0, 2, (store) => after(1, store.id, store.id === 'a'))
  t.same(
    result.answers.map((answer) => answer.value),
    ['b', 'c'],
  )
  t.same(
    result.failures.map((failure) => failure.storeId),
    ['a'],
  )
  t.equal(result.next, 3)
})

t.test('each lane runs its own task', async (t) => {
  const result = await askInOrder(stores, 0, 2, async (store, lane) => `${store.id}${lane}`)
  t.same(result.answers.map((answer) => answer.value).sort(), ['a0', 'b1'])
})

t.test('a slow store is raced against the next; the first answer serves the lane', async (t) => {
  const delays: Record<string, number> = { a: 300, b: 5, c: 5, d: 5 }
  const started = performance.now()
  const result = await askInOrder(stores, 0, 1, (store) => after(delays[store.id]!, store.id), {
    hedgeAfter: () => 20,
  })
  t.same(
    result.answers.map((answer) => answer.value),
    ['b'],
  )
  t.same(
    result.passedOver.map((store) => store.id),
    ['a'],
  )
  t.ok(performance.now() - started < 200, 'not held by the slow store')
})

t.test('the slow store still wins if it answers first after all', async (t) => {
  const delays: Record<string, number> = { a: 40, b: 500 }
  const result = await askInOrder(
    stores.slice(0, 2),
    0,
    1,
    (store) => after(delays[store.id]!, store.id),
    {
      hedgeAfter: () => 20,
    },
  )
  t.same(
    result.answers.map((answer) => answer.value),
    ['a'],
  )
})

t.test(
  'no hedge past the end of the order, even when other lanes took the last stores',
  async (t) => {
    const result = await askInOrder(
      stores,
      0,
      4,
      (store) => after(store.id === 'a' ? 50 : 1, store.id),
      {
        hedgeAfter: () => 5,
      },
    )
    t.same(
      result.answers.map((answer) => answer.value),
      ['a', 'b', 'c', 'd'],
    )
    t.same(result.failures, [])
  },
)

t.test(
  'a slow store is hedged only to a store mayHedgeTo allows; a failed one moves on',
  async (t) => {
    // a fails, so its lane takes c; b is slow, and the next store, d, may not hedge: b's lane
    // waits for b (the quorum span rule of routing.ts).
    const delays: Record<string, number> = { a: 1, b: 120, c: 5, d: 5 }
    const result = await askInOrder(
      stores,
      0,
      2,
      (store) => after(delays[store.id]!, store.id, store.id === 'a'),
      { hedgeAfter: () => 20, mayHedgeTo: (store) => store.id !== 'd' },
    )
    t.same(
      result.answers.map((answer) => answer.value),
      ['b', 'c'],
      'b waited for, d never asked',
    )
    t.same(result.passedOver, [])
    t.equal(result.next, 3)
  },
)

t.test(
  'a lane whose store fails after the last store was taken by a hedge waits for the passed-over store',
  async (t) => {
    // Two copies over three stores: a hangs until it fails; b is slow, so its lane hedges to c,
    // the last store; b answers first. a's lane then has no store left to ask, but c is still
    // answering: its answer is the second copy, not a store passed over.
    const delays: Record<string, number> = { a: 150, b: 40, c: 80 }
    const result = await askInOrder(
      stores.slice(0, 3),
      0,
      2,
      (store) => after(delays[store.id]!, store.id, store.id === 'a'),
      { hedgeAfter: (store) => (store.id === 'b' ? 10 : undefined) },
    )
    t.same(
      result.answers.map((answer) => answer.value),
      ['b', 'c'],
    )
    t.same(
      result.failures.map((failure) => failure.storeId),
      ['a'],
    )
    t.same(result.passedOver, [], 'c was waited for, not passed over')
    t.same(result.late, [])
  },
)

t.test('a passed-over store that fails leaves the lane with the failure recorded', async (t) => {
  const delays: Record<string, number> = { a: 150, b: 40, c: 80 }
  const result = await askInOrder(
    stores.slice(0, 3),
    0,
    2,
    (store) => after(delays[store.id]!, store.id, store.id !== 'b'),
    { hedgeAfter: (store) => (store.id === 'b' ? 10 : undefined) },
  )
  t.same(
    result.answers.map((answer) => answer.value),
    ['b'],
  )
  t.same(result.failures.map((failure) => failure.storeId).sort(), ['a', 'c'])
  t.same(result.passedOver, [])
})
