import t from 'tap'
import seedrandom from 'seedrandom'
import { generateSessionId } from '../lib/ids.js'
import { classicOrder, OrderCache, placementSeed } from '../lib/placement.js'
import { seededShuffle } from '../lib/placement-random.js'

// Golden vectors: the placement of every session ever stored depends on these. They must
// never change; a change here is a breaking change of everyone's data (docs/placement.md).
const STORES = ['store-a', 'store-b', 'store-c', 'store-d', 'store-e']
const GOLDEN: [id: string, seed: number, order: string[]][] = [
  ['a', 3904355907, ['store-a', 'store-c', 'store-d', 'store-e', 'store-b']],
  ['session-1', 599834158, ['store-d', 'store-a', 'store-b', 'store-c', 'store-e']],
  ['session-2', 3133796244, ['store-a', 'store-c', 'store-b', 'store-e', 'store-d']],
  ['session-3', 3452886786, ['store-c', 'store-e', 'store-b', 'store-a', 'store-d']],
  ['hello world', 222957957, ['store-e', 'store-c', 'store-a', 'store-b', 'store-d']],
  [
    'Mx0vQ3B1bY4oZ2H7T9sKp1cLw8dRe5fA',
    3967495069,
    ['store-a', 'store-e', 'store-d', 'store-c', 'store-b'],
  ],
  [
    'AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA',
    2905698078,
    ['store-b', 'store-e', 'store-c', 'store-d', 'store-a'],
  ],
  [
    'zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz',
    4139362634,
    ['store-c', 'store-a', 'store-e', 'store-d', 'store-b'],
  ],
  ['0', 4108050209, ['store-c', 'store-b', 'store-d', 'store-e', 'store-a']],
  ['1234567890', 639479525, ['store-c', 'store-e', 'store-a', 'store-b', 'store-d']],
  ['user:42', 1684999558, ['store-d', 'store-a', 'store-b', 'store-e', 'store-c']],
  ["' OR 1=1 --", 3511705112, ['store-b', 'store-e', 'store-a', 'store-c', 'store-d']],
  [
    'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx',
    2900396599,
    ['store-d', 'store-c', 'store-e', 'store-b', 'store-a'],
  ],
  [
    'long-abcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghij',
    1401232323,
    ['store-c', 'store-d', 'store-e', 'store-a', 'store-b'],
  ],
  ['café', 2561491637, ['store-c', 'store-b', 'store-a', 'store-e', 'store-d']],
  ['München', 3163719337, ['store-d', 'store-b', 'store-e', 'store-c', 'store-a']],
  ['セッション', 2631220132, ['store-a', 'store-b', 'store-e', 'store-c', 'store-d']],
  ['会话标识符', 2585113678, ['store-a', 'store-d', 'store-b', 'store-c', 'store-e']],
  ['🙂🚀', 1689870677, ['store-c', 'store-a', 'store-e', 'store-b', 'store-d']],
  ['Ωμέγα-σ', 3500343457, ['store-e', 'store-d', 'store-c', 'store-b', 'store-a']],
  ['ñandú-2026', 532266007, ['store-a', 'store-b', 'store-e', 'store-c', 'store-d']],
  ['tab\there', 3096089590, ['store-e', 'store-c', 'store-d', 'store-a', 'store-b']],
  ['', 0, ['store-c', 'store-e', 'store-b', 'store-a', 'store-d']],
]

t.test('golden vectors: seed and order of fixed ids over five stores', async (t) => {
  t.ok(GOLDEN.length >= 20)
  for (const [id, seed, order] of GOLDEN) {
    t.equal(placementSeed(id), seed, `seed of ${JSON.stringify(id)}`)
    t.same(classicOrder(STORES, id), order, `order of ${JSON.stringify(id)}`)
  }
})

t.test('the shuffle draws the numbers of the seedrandom package itself', async (t) => {
  // The package, called as the placement's definition says, is the reference.
  const referenceShuffle = (count: number, seed: number): number[] => {
    const items = Array.from({ length: count }, (_, index) => index)
    const random = seedrandom(String(seed))
    for (let i = items.length - 1; i > 0; i--) {
      const j = Math.floor(random() * (i + 1))
      ;[items[i], items[j]] = [items[j]!, items[i]!]
    }
    return items
  }
  const edges = [0, 1, 9, 10, 99, 100, 2 ** 31 - 1, 2 ** 31, 2 ** 32 - 1]
  const random = seedrandom('placement-random')
  const seeds = [...edges, ...Array.from({ length: 20_000 }, () => random.int32() >>> 0)]
  let differing = 0
  for (const [index, seed] of seeds.entries()) {
    // 1 to 16 stores, and 64 once in a while (many draws from one key).
    const count = index % 50 === 0 ? 64 : 1 + (index % 16)
    const items = Array.from({ length: count }, (_, item) => item)
    seededShuffle(items, seed)
    if (items.join() !== referenceShuffle(count, seed).join()) differing++
  }
  t.equal(differing, 0, `${seeds.length} seeds shuffle as seedrandom(String(seed)) does`)
  for (const bad of [-1, 1.5, 2 ** 32, Number.NaN]) {
    t.throws(() => seededShuffle([1, 2], bad), RangeError, `seed ${bad} is refused`)
  }
})

t.test('the order does not depend on how the store list is written', async (t) => {
  const shuffled = ['store-d', 'store-b', 'store-e', 'store-a', 'store-c']
  for (const [id, , order] of GOLDEN) t.same(classicOrder(shuffled, id), order)
})

t.test('the order cache answers exactly what the shuffle computes', async (t) => {
  const stores = ['store-e', 'store-a', 'store-c', 'store-b', 'store-d'].map((id) => ({ id }))
  const cache = new OrderCache(stores, 4)
  for (let round = 0; round < 2; round++) {
    for (const [id, , order] of GOLDEN) {
      t.same(
        cache.order(id).map((store) => store.id),
        order,
        `cached order of ${JSON.stringify(id)}`,
      )
    }
  }
})

t.test('the order cache: bounded, and keeps the orders used recently', async (t) => {
  const stores = STORES.map((id) => ({ id }))
  const others = (from: number, count: number): void => {
    for (let i = from; i < from + count; i++) cache.order(`other-${i}`)
  }
  // A kept order comes back as the same array; a computed one is a new array.
  const kept = (id: string, before: readonly unknown[]): boolean => cache.order(id) === before
  let cache = new OrderCache(stores, 10)
  let largest = 0
  for (let i = 0; i < 1000; i++) {
    cache.order(`id-${i}`)
    largest = Math.max(largest, cache.size)
  }
  t.equal(largest, 20, 'never more orders than twice the capacity')
  t.ok(cache.size >= 10, 'at least the capacity once full')

  cache = new OrderCache(stores, 10)
  const hot = cache.order('hot')
  let recomputed = 0
  for (let round = 0; round < 50; round++) {
    others(round * 4, 4)
    if (!kept('hot', hot)) recomputed++
  }
  t.equal(recomputed, 0, 'an order used every 5 lookups stays kept')
  // The 10 orders used last are kept, whatever came before.
  const recent = Array.from({ length: 10 }, (_, i) => cache.order(`recent-${i}`))
  t.ok(
    recent.every((order, i) => kept(`recent-${i}`, order)),
    "the capacity's worth of orders used last are kept",
  )
  const cold = cache.order('cold')
  others(10_000, 20)
  t.notOk(kept('cold', cold), 'an order not used for twice the capacity is computed again')
  t.same(
    cache.order('cold').map((store) => store.id),
    classicOrder(STORES, 'cold'),
  )

  for (const capacity of [0, 1, 2, 3]) {
    cache = new OrderCache(stores, capacity)
    const first = cache.order('first')
    t.equal(kept('first', first), capacity > 0, `capacity ${capacity}: kept right after`)
    others(20_000, 10)
    t.ok(cache.size <= 2 * capacity, `capacity ${capacity}: holds ${cache.size}`)
  }
})

t.test('distribution over 100,000 random ids', async (t) => {
  const samples = 100_000
  const first = new Map<string, number>()
  const pairs = new Map<string, number>()
  for (let i = 0; i < samples; i++) {
    const [a, b] = classicOrder(STORES, generateSessionId())
    first.set(a!, (first.get(a!) ?? 0) + 1)
    pairs.set(`${a}>${b}`, (pairs.get(`${a}>${b}`) ?? 0) + 1)
  }
  for (const store of STORES) {
    const share = (first.get(store) ?? 0) / samples
    t.ok(
      Math.abs(share - 0.2) <= 0.01,
      `${store} is first for ${(share * 100).toFixed(2)}% (20% ± 1%)`,
    )
  }
  t.equal(pairs.size, 20, 'every ordered pair of distinct stores occurs as (first, second)')
  for (const [pair, count] of pairs) {
    const share = count / samples
    t.ok(
      Math.abs(share - 0.05) <= 0.005,
      `${pair} is (first, second) for ${(share * 100).toFixed(2)}% (5% ± 0.5%)`,
    )
  }
})
