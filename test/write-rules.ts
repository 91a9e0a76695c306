import t from 'tap'
import { acknowledgement, decideAttempt } from '../lib/write-rules.js'
import type { AttemptOutcome } from '../lib/write-rules.js'

// Whether to write again after an outdated answer, and whether to acknowledge, from tables.
const W: AttemptOutcome = { kind: 'written' }
const T: AttemptOutcome = { kind: 'tombstone' }
const O = (storedVersion: number): AttemptOutcome => ({ kind: 'outdated', storedVersion })

t.test('decideAttempt', async (t) => {
  const table: [string, Parameters<typeof decideAttempt>[0], ReturnType<typeof decideAttempt>][] = [
    [
      'all written',
      { attempt: 1, maxAttempts: 6, version: 10, compareAndSet: false, outcomes: [W, W] },
      { kind: 'done', held: [0, 1] },
    ],
    [
      'a tombstone anywhere: dropped',
      { attempt: 1, maxAttempts: 6, version: 10, compareAndSet: false, outcomes: [W, T] },
      { kind: 'dropped' },
    ],
    [
      'first attempt, a higher version stored: again above it',
      { attempt: 1, maxAttempts: 6, version: 10, compareAndSet: false, outcomes: [W, O(15)] },
      { kind: 'again', newest: 15 },
    ],
    [
      'later attempt, a higher version landed meanwhile: superseded there',
      { attempt: 2, maxAttempts: 6, version: 16, compareAndSet: false, outcomes: [W, O(20)] },
      { kind: 'done', held: [0, 1] },
    ],
    [
      'later attempt, an equal version (a twin proposal): again',
      { attempt: 2, maxAttempts: 6, version: 16, compareAndSet: false, outcomes: [W, O(16)] },
      { kind: 'again', newest: 16 },
    ],
    [
      'out of attempts: conflict, never acknowledged unwritten',
      { attempt: 6, maxAttempts: 6, version: 16, compareAndSet: false, outcomes: [O(16), O(16)] },
      { kind: 'conflict', newest: 16 },
    ],
    [
      'no version left above it: overflow',
      {
        attempt: 1,
        maxAttempts: 6,
        version: 10,
        compareAndSet: false,
        outcomes: [O(Number.MAX_SAFE_INTEGER - 1)],
      },
      { kind: 'overflow', newest: Number.MAX_SAFE_INTEGER - 1 },
    ],
    [
      'compare-and-set: an outdated follower did not take it',
      { attempt: 1, maxAttempts: 6, version: 10, compareAndSet: true, outcomes: [W, O(12)] },
      { kind: 'done', held: [0] },
    ],
    [
      'nothing answered',
      { attempt: 1, maxAttempts: 6, version: 10, compareAndSet: false, outcomes: [] },
      { kind: 'done', held: [] },
    ],
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
