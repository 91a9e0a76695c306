import t from 'tap'
import { acknowledgement, decideAttempt, judgeCheck, moveOnCheck } from '../lib/write-rules.js'
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
      'first attempt, our own version (another write may have proposed it): write again',
      plain(1, 10, [W, O(10)]),
      { kind: 'again', newest: 10 },
    ],
    [
      'second attempt, a higher version: superseded there',
      plain(2, 16, [W, O(20)]),
      { kind: 'done', held: [0, 1] },
    ],
    [
      'second attempt, our own version again (may be another write): a third attempt',
      plain(2, 16, [O(16), W]),
      { kind: 'again', newest: 16 },
    ],
    [
      'third attempt, our own version: not counted',
      plain(3, 20, [O(20), W]),
      { kind: 'done', held: [1] },
    ],
    [
      'no version left above it: overflow',
      plain(1, 10, [O(Number.MAX_SAFE_INTEGER - 1)]),
      { kind: 'overflow', newest: Number.MAX_SAFE_INTEGER - 1 },
    ],
    [
      'compare-and-set: a follower above its version (maybe a refused write): moved on above it',
      cas(10, [W, O(12)]),
      { kind: 'again', newest: 12 },
    ],
    [
      'compare-and-set moving on: a follower above its version was superseded there',
      { ...cas(13, [W, O(15)]), attempt: 2 },
      { kind: 'done', held: [0, 1] },
    ],
    [
      'compare-and-set: a follower at its version (may be another write): moved on above it',
      cas(10, [W, O(10)]),
      { kind: 'again', newest: 10 },
    ],
    [
      'compare-and-set: a follower left at an older version does not hold it',
      cas(10, [W, O(8)]),
      { kind: 'done', held: [0] },
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

t.test('judgeCheck: who decides a compare-and-set', async (t) => {
  const live = (version: number, expiresAtMillis = 1000) => ({
    version,
    expiresAtMillis,
    deleted: false,
    ttlSeconds: null,
  })
  const gone = (version: number) => ({
    version,
    expiresAtMillis: 1000,
    deleted: true,
    ttlSeconds: null,
  })
  type Found = Parameters<typeof judgeCheck<string>>[1]
  const table: [string, number, Found, ReturnType<typeof judgeCheck<string>>][] = [
    [
      'every copy at the expected version: each may decide, in order',
      5,
      [
        { store: 'a', copy: live(5) },
        { store: 'b', copy: live(5) },
      ],
      { kind: 'decide', deciders: ['a', 'b'] },
    ],
    [
      'the first store missed a write: the second, holding it, is newer: a conflict',
      5,
      [
        { store: 'a', copy: live(5) },
        { store: 'b', copy: live(7) },
      ],
      { kind: 'conflict', storedVersion: 7 },
    ],
    [
      'expecting the newest, the first store behind: only the second decides',
      7,
      [
        { store: 'a', copy: live(5) },
        { store: 'b', copy: live(7) },
      ],
      { kind: 'decide', deciders: ['b'] },
    ],
    [
      'the first store has no row: the second decides',
      7,
      [
        { store: 'a', copy: null },
        { store: 'b', copy: live(7) },
      ],
      { kind: 'decide', deciders: ['b'] },
    ],
    [
      'no row anywhere: every store may decide (the statement refuses or creates)',
      0,
      [
        { store: 'a', copy: null },
        { store: 'b', copy: null },
      ],
      { kind: 'decide', deciders: ['a', 'b'] },
    ],
    [
      'a tombstone anywhere, whatever the versions: its store decides (and drops the write)',
      9,
      [
        { store: 'a', copy: live(9) },
        { store: 'b', copy: gone(3) },
      ],
      { kind: 'decide', deciders: ['b'] },
    ],
    [
      'equal versions, one touched later: still the expected version',
      5,
      [
        { store: 'a', copy: live(5, 1000) },
        { store: 'b', copy: live(5, 2000) },
      ],
      { kind: 'decide', deciders: ['a', 'b'] },
    ],
    [
      'a version older than expected everywhere: a conflict (nothing at that version)',
      9,
      [
        { store: 'a', copy: live(5) },
        { store: 'b', copy: null },
      ],
      { kind: 'conflict', storedVersion: 5 },
    ],
  ]
  // Every live copy above expires at 1000 or 2000: at 500 none has expired.
  for (const [name, expected, found, verdict] of table) {
    t.same(judgeCheck(expected, found, 500, false), verdict, name)
  }
  const expired: [string, number, Found, ReturnType<typeof judgeCheck<string>>][] = [
    [
      'expecting no session, the newest copy expired: none, every store may decide',
      0,
      [
        { store: 'a', copy: live(5, 1000) },
        { store: 'b', copy: null },
      ],
      { kind: 'decide', deciders: ['a', 'b'] },
    ],
    [
      'expecting no session, one copy expired but a newer one live: a conflict',
      0,
      [
        { store: 'a', copy: live(5, 1000) },
        { store: 'b', copy: live(6, 9000) },
      ],
      { kind: 'conflict', storedVersion: 6 },
    ],
    [
      'expecting the expired version itself: no session, a conflict at version 0',
      5,
      [
        { store: 'a', copy: live(5, 1000) },
        { store: 'b', copy: null },
      ],
      { kind: 'conflict', storedVersion: 0 },
    ],
    [
      'expecting a version, no row anywhere: no session, a conflict at version 0',
      5,
      [
        { store: 'a', copy: null },
        { store: 'b', copy: null },
      ],
      { kind: 'conflict', storedVersion: 0 },
    ],
  ]
  expired.push([
    'the expected version on two stores, one copy expired (a touch missed it): the live one',
    5,
    [
      { store: 'a', copy: live(5, 1000) },
      { store: 'b', copy: live(5, 9000) },
    ],
    { kind: 'decide', deciders: ['b'] },
  ])
  for (const [name, expected, found, verdict] of expired) {
    t.same(judgeCheck(expected, found, 1500, false), verdict, name)
  }
  // During a change of the store list the session may not have been moved to these stores yet.
  const unmoved: [string, number, Found, ReturnType<typeof judgeCheck<string>>][] = [
    [
      'store list changing, no row anywhere: every store may decide (and creates the session)',
      5,
      [
        { store: 'a', copy: null },
        { store: 'b', copy: null },
      ],
      { kind: 'decide', deciders: ['a', 'b'] },
    ],
    [
      'store list changing, the expired version expected: its stores decide, as before a change',
      5,
      [
        { store: 'a', copy: live(5, 1000) },
        { store: 'b', copy: null },
      ],
      { kind: 'decide', deciders: ['a'] },
    ],
    [
      'store list changing, another version live: a conflict all the same',
      5,
      [
        { store: 'a', copy: null },
        { store: 'b', copy: live(6, 9000) },
      ],
      { kind: 'conflict', storedVersion: 6 },
    ],
  ]
  for (const [name, expected, found, verdict] of unmoved) {
    t.same(judgeCheck(expected, found, 1500, true), verdict, name)
  }
})

t.test(
  'moveOnCheck: what the deciding store says when copies disagree with a move-on',
  async (t) => {
    // The decided version is 10 and b holds 12; `a`: what the deciding store a holds (a
    // version, null for no row, undefined when it was not asked).
    const copy = (version: number) => ({
      version,
      expiresAtMillis: 2e12,
      deleted: false,
      ttlSeconds: null,
    })
    const holding = (a: number | null | undefined) => [
      ...(a === undefined ? [] : [{ store: 'a', copy: a === null ? null : copy(a) }]),
      { store: 'b', copy: copy(12) },
    ]
    const table: [string, number | null | undefined, string][] = [
      ['it still holds the decided version: decides again', 10, 'decide'],
      ['it holds a higher one: superseded there', 12, 'superseded'],
      ['it was not asked: unknown (b may hold a refused write)', undefined, 'unknown'],
      ['it holds no row: unknown', null, 'unknown'],
      ['it holds an older one: unknown', 8, 'unknown'],
    ]
    for (const [what, a, want] of table) t.equal(moveOnCheck('a', 10, holding(a)), want, what)
  },
)
