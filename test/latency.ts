import t from 'tap'
import { hedgeDelayMillis, LatencyWindow, quantile } from '../lib/store/latency.js'

// The hedge delay rests on a store's recent p99: picked out of the window without sorting it,
// it must be exactly the value the sorted window holds at that rank.
const sortedAt = (values: number[], q: number): number => {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] as number
}

t.test(
  'hedge delay: twice the p99, within 2 and 100 ms; the most while the p99 is unknown',
  async (t) => {
    const table: [number | null, number][] = [
      [null, 100],
      [0, 2],
      [0.3, 2],
      [1, 2],
      [1.5, 3],
      [20, 40],
      [49.5, 99],
      [50, 100],
      [700, 100],
    ]
    for (const [p99, expected] of table) t.equal(hedgeDelayMillis(p99), expected, `p99 ${p99}`)
  },
)

t.test('quantile: the nearest rank at or below, from tables', async (t) => {
  const table: [number[], number, number][] = [
    [[5], 0.99, 5],
    [[1, 2], 0.99, 2],
    [[3, 1, 2], 0.5, 2],
    [[9, 9, 9, 1], 0.99, 9],
    [[4, 4, 1, 1], 0.5, 4],
    [Array.from({ length: 100 }, (_, i) => 100 - i), 0.99, 100],
    [Array.from({ length: 100 }, (_, i) => i + 1), 0.9, 91],
    [Array.from({ length: 1024 }, (_, i) => i), 0.99, 1013],
  ]
  for (const [values, q, expected] of table) {
    t.equal(
      quantile(Float64Array.from(values), values.length, q),
      expected,
      `${values.length} values, q ${q}`,
    )
  }
})

t.test('quantile: the same as sorting, over random windows with ties and repeats', async (t) => {
  let seed = 7
  const random = (): number => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31
  for (let trial = 0; trial < 300; trial++) {
    const count = 1 + Math.floor(random() * 1100)
    const spread = [2, 50, 1e6][trial % 3] as number
    const values = Array.from({ length: count }, () => Math.floor(random() * spread) / 7)
    for (const q of [0.99, 0.9, 0.5]) {
      const found = quantile(Float64Array.from(values), count, q)
      if (found !== sortedAt(values, q)) t.fail(`trial ${trial}, ${count} values, q ${q}`)
    }
  }
  t.pass('300 windows agree')
})

t.test('quantile: only the first count samples count', async (t) => {
  t.equal(quantile(Float64Array.from([1, 2, 3, 1000]), 3, 0.99), 3)
})

t.test('recentP99: none before 64 samples, then the p99 of the last 1024', async (t) => {
  const window = new LatencyWindow()
  for (let i = 0; i < 63; i++) window.record(i)
  t.equal(window.recentP99(), null)
  window.record(63)
  t.equal(window.recentP99(), 63, 'the largest of 64')
  // Fill past the window's size: the oldest samples (the large ones) fall out of it.
  const window2 = new LatencyWindow()
  for (let i = 0; i < 1024; i++) window2.record(10_000 + i)
  for (let i = 0; i < 1024; i++) window2.record(i)
  t.equal(window2.recentP99(), 1013)
  t.same(window2.percentiles(), { p50Millis: 512, p99Millis: 1013 })
})

t.test('recentP99: recomputed once 64 more samples came in', async (t) => {
  const window = new LatencyWindow(128)
  for (let i = 0; i < 128; i++) window.record(1)
  t.equal(window.recentP99(), 1)
  for (let i = 0; i < 63; i++) window.record(50)
  t.equal(window.recentP99(), 1, 'kept between recomputations')
  window.record(50)
  t.equal(window.recentP99(), 50)
})
