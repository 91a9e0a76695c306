import t from 'tap'
import { acknowledgement, decideAttempt } from '../lib/write-rules.js'
import type { AttemptOutcome } from '../lib/write-rules.js'

// Whether to write again after an outdated answer, and whether to acknowledge, from tables.
const W: AttemptOutcome = { kind: 'written' }
const T: AttemptOutcome = { kind: 'tombstone' }
const O = (storedVersion: number): AttemptOutcome => ({ kind: 'outdated', storedVersion })

t.test('decideAttempt', async (t) => {
  type Facts = Parameters<typeof decideAttempt>[0]
  const plain = (attempt: number, version: number, outcomes: AttemptOutcome[]): Facts => ({
    attempt,
    version,
    compareAndSet: false,
    outcomes,
  })
  const cas = (version: number, outcomes: AttemptOutcome[]): Facts => ({
    attempt: 1,
    version,
    compareAndSet: true,
    outcomes,
  })
  const table: [string, Facts, ReturnType<typeof decideAttempt>][] = [
    ['all written', plain(1, 10, [W, W]), { kind: 'done', held: [0, 1] }],
    ['a tombstone anywhere: dropped', plain(1, 10, [W, T]), { kind: 'dropped' }],
    [
      'first attempt, a higher version: again above it',
      plain(1, 10, [W, O(15)]),
      { kind: 'again', newest: 15 },
    ],
    [
      'first attempt, our own version (copied there first): written',
      plain(1, 10, [W, O(10)]),
      { kind: 'done', held: [0, 1] },
    ],
    [
      'second attempt, a higher version: superseded there',
      plain(2, 16, [W, O(20)]),
      { kind: 'done', held: [0, 1] },
    ],
    [
      'second attempt, our own version: written',
      plain(2, 16, [O(16), W]),
      { kind: 'done', held: [0, 1] },
    ],
    [
      'no version left above it: overflow',
      plain(1, 10, [O(Number.MAX_SAFE_INTEGER - 1)]),
      { kind: 'overflow', newest: Number.MAX_SAFE_INTEGER - 1 },
    ],
    [
      'compare-and-set: a follower above its version was superseded there',
      cas(10, [W, O(12)]),
      { kind: 'done', held: [0, 1] },
    ],
    [
      'compare-and-set: a follower already at its version holds it',
      cas(10, [W, O(10)]),
      { kind: 'done', held: [0, 1] },
    ],
    ['nothing answered', plain(1, 10, []), { kind: 'done', held: [] }],
  ]
  for (const [what, facts, decision] of table) t.same(decideAttempt(facts), decision, what)
})

t.test('acknowledgement', async (t) => {
  const table: [number, number, number, string][] = [
    [2, 2, 1, 'full'],
    [1, 2, 1, 'degraded'],
    [0, 2, 1, 'refused'],
    [1, 2, 2, 'refused'],
    [3, 2, 2, 'full'],
  ]
  for (const [held, copies, minCopies, expected] of table) {
    t.equal(
      acknowledgement(held, copies, minCopies),
      expected,
      `${held} of ${copies}, min ${minCopies}`,
    )
  }
})
