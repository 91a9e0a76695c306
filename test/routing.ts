import t from 'tap'
import {
  firstReadable,
  missedStores,
  readOrder,
  unaskedHolders,
  writeOrder,
} from '../lib/routing.js'

// Routing over store standing, from tables: which stores an operation asks, in which order.
type Standing = 'up' | 'down' | 'behind'
const stores = (...standings: Standing[]) =>
  standings.map((standing, index) => ({
    id: `store-${'abcdef'[index]}`,
    standing: { up: standing !== 'down', behind: standing === 'behind' },
  }))
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

t.test('unaskedHolders: failures and down stores before the last answer', async (t) => {
  const order = stores('down', 'up', 'down', 'up')
  const [a, b, c, d] = order
  t.equal(unaskedHolders(order, [b!], 0), 1, 'a skipped before b')
  t.equal(unaskedHolders(order, [b!, d!], 0), 2, 'a and c skipped before d')
  t.equal(unaskedHolders(order, [d!], 1), 3, 'a, c skipped, one failure')
  t.equal(unaskedHolders(order, [], 2), 2, 'no answer: the failures alone')
  t.equal(unaskedHolders(stores('up', 'up'), [a as never], 0), 0, 'nothing skipped')
  void c
})

t.test('missedStores: the first copies a write did not reach', async (t) => {
  const order = stores('up', 'up', 'up')
  const [a, b, c] = order
  t.same(ids(missedStores(order, 2, [a!, b!])), '')
  t.same(ids(missedStores(order, 2, [b!, c!])), 'a')
  t.same(ids(missedStores(order, 2, [c!])), 'ab')
})
