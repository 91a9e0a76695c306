import t from 'tap'
import { generateSessionId } from '../lib/ids.js'
import { classicOrder, rendezvousOrder } from '../lib/placement.js'

// Golden vectors of the opt-in rendezvous placement: like the classic ones, they never change.
const STORES = ['store-a', 'store-b', 'store-c', 'store-d', 'store-e']
const GOLDEN: [id: string, order: string[]][] = [
  ['a', ['store-d', 'store-a', 'store-c', 'store-b', 'store-e']],
  ['session-1', ['store-c', 'store-b', 'store-e', 'store-a', 'store-d']],
  ['session-2', ['store-c', 'store-e', 'store-a', 'store-d', 'store-b']],
  ['session-3', ['store-a', 'store-b', 'store-d', 'store-e', 'store-c']],
  ['hello world', ['store-d', 'store-c', 'store-b', 'store-e', 'store-a']],
  ['Mx0vQ3B1bY4oZ2H7T9sKp1cLw8dRe5fA', ['store-b', 'store-e', 'store-c', 'store-a', 'store-d']],
  ['AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA', ['store-a', 'store-d', 'store-c', 'store-b', 'store-e']],
  ['zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz', ['store-c', 'store-e', 'store-a', 'store-d', 'store-b']],
  ['0', ['store-d', 'store-a', 'store-b', 'store-e', 'store-c']],
  ['1234567890', ['store-e', 'store-b', 'store-c', 'store-a', 'store-d']],
  ['user:42', ['store-d', 'store-c', 'store-e', 'store-a', 'store-b']],
  ["' OR 1=1 --", ['store-e', 'store-c', 'store-a', 'store-d', 'store-b']],
  [
    'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx',
    ['store-c', 'store-e', 'store-a', 'store-b', 'store-d'],
  ],
  ['café', ['store-a', 'store-d', 'store-b', 'store-e', 'store-c']],
  ['München', ['store-a', 'store-c', 'store-b', 'store-d', 'store-e']],
  ['セッション', ['store-b', 'store-d', 'store-e', 'store-c', 'store-a']],
  ['会话标识符', ['store-e', 'store-b', 'store-a', 'store-d', 'store-c']],
  ['🙂🚀', ['store-a', 'store-c', 'store-b', 'store-e', 'store-d']],
  ['Ωμέγα-σ', ['store-b', 'store-e', 'store-c', 'store-d', 'store-a']],
  ['ñandú-2026', ['store-c', 'store-b', 'store-a', 'store-e', 'store-d']],
  ['tab\there', ['store-a', 'store-b', 'store-c', 'store-d', 'store-e']],
  ['', ['store-d', 'store-b', 'store-a', 'store-e', 'store-c']],
]

t.test('rendezvous golden vectors', async (t) => {
  t.ok(GOLDEN.length >= 20)
  for (const [id, order] of GOLDEN) {
    t.same(rendezvousOrder(STORES, id), order, JSON.stringify(id))
    t.same(rendezvousOrder([...STORES].reverse(), id), order, 'independent of the list order')
  }
})

/** Share of ids whose first store, and whose first-two set, differ between two store lists. */
function moved(
  order: (stores: readonly string[], id: string) => string[],
  before: string[],
  after: string[],
  ids: string[],
): { first: number; set: number } {
  let first = 0
  let set = 0
  for (const id of ids) {
    const a = order(before, id)
    const b = order(after, id)
    if (a[0] !== b[0]) first++
    if ([...a.slice(0, 2)].sort().join() !== [...b.slice(0, 2)].sort().join()) set++
  }
  return { first: first / ids.length, set: set / ids.length }
}

t.test(
  'rendezvous moves about 1/(n+1) of first copies on adding a store, 1/n on removing one',
  async (t) => {
    const ids = Array.from({ length: 30_000 }, () => generateSessionId())
    for (const n of [3, 4, 8]) {
      const stores = Array.from({ length: n }, (_, i) => `s${i}`)
      const added = moved(rendezvousOrder, stores, [...stores, 'new'], ids)
      t.ok(
        Math.abs(added.first - 1 / (n + 1)) < 0.01,
        `${n} → ${n + 1}: ${(added.first * 100).toFixed(1)}% of first copies moved`,
      )
      const removed = moved(rendezvousOrder, stores, stores.slice(1), ids)
      t.ok(
        Math.abs(removed.first - 1 / n) < 0.01,
        `${n} → ${n - 1}: ${(removed.first * 100).toFixed(1)}% moved`,
      )
      const classic = moved(classicOrder, stores, [...stores, 'new'], ids)
      t.ok(
        classic.first > added.first * 2,
        `classic moves ${(classic.first * 100).toFixed(1)}% on adding`,
      )
    }
  },
)

t.test('rendezvous spreads first copies evenly', async (t) => {
  const counts = new Map<string, number>()
  for (let i = 0; i < 100_000; i++) {
    const first = rendezvousOrder(STORES, generateSessionId())[0]!
    counts.set(first, (counts.get(first) ?? 0) + 1)
  }
  for (const store of STORES) {
    const share = (counts.get(store) ?? 0) / 100_000
    t.ok(Math.abs(share - 0.2) <= 0.01, `${store}: ${(share * 100).toFixed(2)}%`)
  }
})
