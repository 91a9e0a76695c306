import t from 'tap'
import {
  aloneReadable,
  firstReadable,
  handedOffStores,
  missedPastCopies,
  missedStores,
  quorumSpan,
  withinSpan,
  readOrder,
  unaskedHolders,
  reachesPastSpan,
  writeOrder,
} from '../lib/routing.js'

// Routing over store standing, from tables: which stores an operation asks, in which order.
type Standing = 'up' | 'down' | 'behind'
const stores = (...standings: Standing[]) =>
  standings.map((standing, index) => ({
    id: `store-${'abcdef'[index]}`,
    standing: { up: standing !== 'down', behind: standing === 'behind' },
  }))
type Store = ReturnType<typeof stores>[number]
/** The first four stores of a list, typed as present. */
const fourOf = (list: readonly Store[]) => list.slice(0, 4) as [Store, Store, Store, Store]
const ids = (list: readonly { id: string }[]) => list.map((store) => store.id.slice(-1)).join('')

t.test('writeOrder: every store that is up, in order', async (t) => {
  const table: [Standing[], string][] = [
    [['up', 'up', 'up'], 'abc'],
    [['down', 'up', 'up'], 'bc'],
    [['behind', 'down', 'up'], 'ac'],
    [['down', 'down', 'down'], ''],
  ]
  for (const [standings, expected] of table) {
    t.equal(ids(writeOrder(stores(...standings))), expected, standings.join(','))
  }
})

t.test('readOrder: down left out, behind last (unless several are asked at once)', async (t) => {
  const table: [Standing[], number, string][] = [
    [['up', 'up', 'up'], 1, 'abc'],
    [['behind', 'up', 'up'], 1, 'bca'],
    [['behind', 'down', 'up'], 1, 'ca'],
    [['behind', 'behind', 'up'], 1, 'cab'],
    [['behind', 'up', 'up'], 2, 'abc'],
    [['down', 'down', 'down'], 1, ''],
  ]
  for (const [standings, quorum, expected] of table) {
    t.equal(ids(readOrder(stores(...standings), quorum)), expected, `${standings} quorum ${quorum}`)
  }
})

t.test('firstReadable: the first store up, unless it is behind', async (t) => {
  const table: [Standing[], string | undefined][] = [
    [['up', 'up'], 'a'],
    [['down', 'up'], 'b'],
    [['behind', 'up'], undefined],
    [['down', 'behind'], undefined],
    [['down', 'down'], undefined],
  ]
  for (const [standings, expected] of table) {
    const first = firstReadable(stores(...standings))
    t.equal(first === undefined ? undefined : ids([first]), expected, standings.join(','))
  }
})

t.test(
  'unaskedHolders: stores not heard from before the last answer, and failures after it',
  async (t) => {
    const order = stores('up', 'up', 'up', 'up')
    const [a, b, c, d] = fourOf(order)
    t.equal(unaskedHolders(order, [b], [], 2), 1, 'a not heard from before b (down when routed)')
    t.equal(unaskedHolders(order, [b, d], [c], 3), 2, 'a and c before d')
    t.equal(unaskedHolders(order, [a], [b], 2), 1, 'b failed after the last answer')
    t.equal(unaskedHolders(order, [a], [b, b], 2), 1, 'counted once')
    t.equal(unaskedHolders(order, [a], [b], 3), 2, 'b failed, c (down when routed) unheard')
    t.equal(unaskedHolders(order, [a], [], 3), 2, 'b and c down when routed: unheard')
    t.equal(unaskedHolders(order, [a], [d], 3), 3, 'b, c unheard, d failed past the reach')
    t.equal(unaskedHolders(order, [], [a, b], 2), 2, 'no answer: the failures alone')
    t.equal(unaskedHolders(order, [a, b], [], 2), 0, 'nothing missed')
    t.equal(unaskedHolders(order, [a, b, c], [], 3), 0, 'everything within reach answered')
    // Standing plays no part: a store that was down when routed and is up again still counts.
    const routed = stores('down', 'up', 'up')
    t.equal(unaskedHolders(routed, [routed[1]!, routed[2]!], [], 3), 1)
  },
)

t.test(
  'aloneReadable: among the first copies, those up, not behind, and not announced stale',
  async (t) => {
    // [standings, copies, stores announced stale, expected]
    const table: [Standing[], number, string, string][] = [
      [['up', 'up', 'up'], 2, '', 'ab'],
      [['up', 'up', 'up'], 1, '', 'a'],
      [['up', 'up', 'up'], 3, '', 'abc'],
      [['up', 'up', 'up'], 2, 'a', 'b'],
      [['up', 'up', 'up'], 2, 'ab', ''],
      [['up', 'up', 'up'], 2, 'c', 'ab'],
      [['down', 'up', 'up'], 2, '', 'b'],
      [['behind', 'up', 'up'], 2, '', 'b'],
      [['down', 'behind', 'up'], 2, '', ''],
      [['up', 'up', 'up'], 2, 'abc', ''],
    ]
    for (const [standings, copies, stale, expected] of table) {
      const trusted = (store: { id: string }) => !stale.includes(store.id.slice(-1))
      t.equal(
        ids(aloneReadable(stores(...standings), copies, trusted)),
        expected,
        `${standings.join(',')} copies ${copies} stale [${stale}]`,
      )
    }
  },
)

t.test('missedStores: the first copies a write did not reach', async (t) => {
  const order = stores('up', 'up', 'up')
  const [a, b, c] = order
  t.same(ids(missedStores(order, 2, [a!, b!])), '')
  t.same(ids(missedStores(order, 2, [b!, c!])), 'a')
  t.same(ids(missedStores(order, 2, [c!])), 'ab')
})

t.test(
  'missedPastCopies: stores past the first copies, as far as reads look, a destroy missed',
  async (t) => {
    const order = stores('up', 'up', 'up', 'up')
    const [a, b, c, d] = order
    t.same(ids(missedPastCopies(order, 2, 3, [a!, b!, c!])), '', 'it reached all three')
    t.same(ids(missedPastCopies(order, 2, 3, [a!, b!, d!])), 'c', 'failed over from c to d')
    t.same(
      ids(missedPastCopies(order, 2, 3, [b!, c!, d!])),
      '',
      'a missed it: a hint as a first copy',
    )
    t.same(ids(missedPastCopies(order, 2, 4, [a!, b!])), 'cd')
    t.same(ids(missedPastCopies(order, 2, 2, [a!, b!])), '', 'reads look no further than two')
  },
)

t.test('handedOffStores: copies past the first ones, once those hold the write', async (t) => {
  const order = stores('up', 'up', 'up', 'up')
  const [a, b, c, d] = order
  t.same(ids(handedOffStores(order, 2, [a!, b!])), '', 'no copy past the first two')
  t.same(ids(handedOffStores(order, 2, [b!, c!, a!])), 'c', 'hedged to c, a took it late')
  t.same(ids(handedOffStores(order, 2, [b!, c!, d!])), '', 'a missed it: its replay hands off')
  t.same(ids(handedOffStores(order, 2, [a!, c!, d!, b!])), 'cd')
})

t.test(
  'the quorum span: a write of copies and a read of readQuorum stores within it overlap',
  async (t) => {
    for (const [copies, readQuorum, span] of [
      [1, 1, 1],
      [2, 1, 2],
      [2, 2, 3],
      [3, 3, 5],
      [3, 2, 4],
    ] as const) {
      t.equal(quorumSpan(copies, readQuorum), span, `copies ${copies}, readQuorum ${readQuorum}`)
      // Any `copies` and any `readQuorum` of `span` stores share one.
      t.ok(copies + readQuorum > span)
    }
    const order = ['a', 'b', 'c', 'd']
    t.same(
      order.map((store) => withinSpan(order, store, 3)),
      [true, true, true, false],
    )
    t.notOk(withinSpan(order, 'e', 3), 'a store not in the order is not within it')
  },
)

t.test('reachesPastSpan: a store at or past the span', async (t) => {
  const order = stores('up', 'up', 'up', 'up')
  const [a, b, c, d] = fourOf(order)
  const table: [Store[], number, boolean, string][] = [
    [[a, c], 3, false, 'a and c within the first three'],
    [[b, c], 3, false, 'b and c within the first three'],
    [[c, d], 3, true, 'd is the fourth'],
    [[c, d], 4, false, 'span 4 takes d'],
    [[], 3, false, 'no store'],
    [[{ id: 'store-x', standing: { up: true, behind: false } }], 3, false, 'not in the order'],
  ]
  for (const [reached, span, expected, label] of table) {
    t.equal(reachesPastSpan(order, reached, span), expected, label)
  }
})
