import t from 'tap'
import { isStale, judgeCopies, newestCopy } from '../lib/copy-rules.js'

// Which copy wins, from tables: the one rule the read path, read repair, the repair plan, the
// listing and the CLI's show all call.
const NOW = 1_800_000_000_000
const live = (version: number, expiresIn = 60_000, ttlSeconds: number | null = null) => ({
  version,
  expiresAtMillis: NOW + expiresIn,
  deleted: false,
  ttlSeconds,
})
const tombstone = (version: number) => ({
  version,
  expiresAtMillis: NOW + 1000,
  deleted: true,
  ttlSeconds: null,
})

t.test('judgeCopies', async (t) => {
  const table: [string, Parameters<typeof judgeCopies>[0], string, number | null][] = [
    ['no copy', [null, null], 'none', null],
    ['one live copy', [live(5), null], 'live', 5],
    ['the highest version wins', [live(5), live(7), live(6)], 'live', 7],
    ['a tombstone wins over a newer live copy', [live(9), tombstone(3)], 'destroyed', 3],
    ['the newest tombstone is the one reported', [tombstone(3), tombstone(8)], 'destroyed', 8],
    ['the newest copy has expired: over', [live(7, -1), live(5, 60_000)], 'expired', 7],
    ['expiry is exclusive: at now it is over', [live(7, 0)], 'expired', 7],
    [
      'equal versions: the later expiry (a touch that missed a copy)',
      [live(7, -1), live(7, 500)],
      'live',
      7,
    ],
    ['equal versions, order does not matter', [live(7, 500), live(7, -1)], 'live', 7],
    [
      // The later copy was written where the row (and its timeout) was not: failed over.
      'equal versions: the one with the session timeout, before a later expiry',
      [live(7, 60_000), live(7, -1, 2)],
      'expired',
      7,
    ],
  ]
  for (const [what, copies, state, version] of table) {
    const verdict = judgeCopies(copies, NOW)
    t.equal(verdict.state, state, `${what}: ${state}`)
    t.equal(verdict.state === 'none' ? null : verdict.copy.version, version, `${what}: version`)
  }
  const touched = judgeCopies([live(7, -1), live(7, 500)], NOW)
  t.equal(touched.state === 'live' && touched.copy.expiresAtMillis, NOW + 500, 'the later expiry')
})

t.test('isStale', async (t) => {
  const verdict = judgeCopies([live(7, 500), live(5)], NOW)
  t.equal(isStale(null, verdict), true, 'missing')
  t.equal(isStale(live(5), verdict), true, 'older version')
  t.equal(isStale(live(7, -1), verdict), true, 'same version, older expiry')
  t.equal(isStale(live(7, 500), verdict), false, 'the winner itself')
  const destroyed = judgeCopies([live(9), tombstone(3)], NOW)
  t.equal(isStale(live(9), destroyed), true, 'a live copy of a destroyed session')
  t.equal(isStale(tombstone(1), destroyed), false, 'any tombstone of a destroyed session')
  const expired = judgeCopies([live(7, -1)], NOW)
  t.equal(isStale(null, expired), false, 'nothing to repair when expired')
  t.equal(isStale(live(7, -1), expired), false, 'nor an expired copy of the last version')
  t.equal(isStale(live(5), expired), true, 'but an older live copy, which must not outlive it')
  const timed = judgeCopies([live(7, -1, 2), live(7, 60_000)], NOW)
  t.equal(timed.state, 'expired', 'the timed copy decides')
  t.equal(isStale(live(7, 60_000), timed), true, 'a copy of it without the timeout is rewritten')
  t.equal(isStale(live(7, -1, 2), timed), false, 'not the timed one')
})

t.test('newestCopy', async (t) => {
  t.equal(newestCopy([]), undefined)
  t.equal(newestCopy([live(1), live(3), live(2)])?.version, 3)
})
