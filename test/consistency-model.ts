import t from 'tap'
import { ConsistencyModel, FOREVER } from '../lib/cli/workload/consistency-model.js'
import type { ConsistencyCounts, Lifetime } from '../lib/cli/workload/consistency-model.js'

// The chaos run's judge, from a table: each row is what the workload was told, in order, and
// the counts it must end with. A read answering null where a value was acknowledged is a stale
// read at once; a read that failed is only a transient null read if a later read finds the
// session, and a lost write if none does. A value with a lifetime may be gone once it can
// have expired, and may not be read after it must have: 'expired' is a lifetime already over
// when the row runs, 'live' one that ends in a minute, 'soon' one that ends before a 'wait'.
type Life = 'expired' | 'live' | 'soon'
type Step =
  | ['written' | 'writeFailed', unknown, Life?]
  | ['timeoutSet' | 'timeoutSetFailed', Life]
  | ['destroyed' | 'destroyFailed' | 'writeDropped' | 'settle' | 'wait']
  | ['read', unknown, string?]
  | ['readFailed']

function lifetime(life: Life | undefined): Lifetime {
  const now = Date.now()
  if (life === 'expired') return { from: now - 2000, until: now - 1000 }
  if (life === 'soon') return { from: now + 20, until: now + 40 }
  return life === 'live' ? { from: now + 60_000, until: now + 60_000 } : FOREVER
}

const A = { n: 1 }
const B = { n: 2 }

const rows: { name: string; steps: Step[]; counts: Partial<ConsistencyCounts> }[] = [
  {
    name: 'the acknowledged value read back',
    steps: [
      ['written', A],
      ['read', A],
    ],
    counts: {},
  },
  {
    name: 'an older value',
    steps: [
      ['written', A],
      ['written', B],
      ['read', A],
    ],
    counts: { staleReads: 1 },
  },
  {
    name: 'null for an acknowledged value, found later',
    steps: [
      ['written', A],
      ['read', null],
      ['read', A],
    ],
    counts: { staleReads: 1 },
  },
  {
    name: 'null for an acknowledged value, never found',
    steps: [['written', A], ['read', null], ['read', null], ['settle']],
    counts: { staleReads: 2, lostWrites: 1 },
  },
  {
    name: 'a failed read, then found',
    steps: [['written', A], ['readFailed'], ['read', A]],
    counts: { transientNullReads: 1 },
  },
  {
    name: 'a failed read, never found',
    steps: [['written', A], ['readFailed'], ['settle']],
    counts: { lostWrites: 1 },
  },
  {
    name: 'the final verification finds nothing: lost, not stale',
    steps: [['written', A], ['read', null, 'verification'], ['settle']],
    counts: { lostWrites: 1 },
  },
  {
    name: 'a failed write leaves both values possible',
    steps: [
      ['written', A],
      ['writeFailed', B],
      ['read', B],
      ['read', A],
    ],
    counts: {},
  },
  {
    name: 'a destroyed session comes back',
    steps: [['written', A], ['destroyed'], ['read', A]],
    counts: { resurrections: 1 },
  },
  {
    name: 'a failed destroy: null or the value',
    steps: [['written', A], ['destroyFailed'], ['read', null], ['read', A]],
    counts: {},
  },
  {
    name: 'a write dropped for a tombstone no destroy left',
    steps: [['written', A], ['writeDropped']],
    counts: { lostWrites: 1 },
  },
  {
    name: 'an expired value: null',
    steps: [
      ['written', A, 'expired'],
      ['read', null],
    ],
    counts: { expiredReads: 1 },
  },
  {
    name: 'an expired value read',
    steps: [
      ['written', A, 'expired'],
      ['read', A],
    ],
    counts: { staleReads: 1 },
  },
  {
    name: 'null before the value can have expired',
    steps: [
      ['written', A, 'live'],
      ['read', null],
      ['read', A],
    ],
    counts: { staleReads: 1 },
  },
  {
    name: 'the older value back once the newer expired',
    steps: [
      ['written', A],
      ['written', B, 'expired'],
      ['read', A],
    ],
    counts: { staleReads: 1 },
  },
  {
    name: 'a failed write that may have expired: null',
    steps: [
      ['written', A],
      ['writeFailed', B, 'expired'],
      ['read', null],
      ['read', A],
    ],
    counts: { expiredReads: 1 },
  },
  {
    name: 'a timeout set that has run out: null, and the value never again',
    steps: [
      ['written', A],
      ['timeoutSet', 'expired'],
      ['read', null],
      ['read', A],
    ],
    counts: { acknowledgedWrites: 2, expiredReads: 1, staleReads: 1 },
  },
  {
    name: 'a timeout set on a session that had expired',
    steps: [
      ['written', A, 'expired'],
      ['timeoutSet', 'live'],
    ],
    counts: { staleReads: 1 },
  },
  {
    name: 'a timeout set on a destroyed session',
    steps: [['written', A], ['destroyed'], ['timeoutSet', 'live']],
    counts: { resurrections: 1 },
  },
  {
    name: 'a failed timeout: the value, or null once it may have run out',
    steps: [
      ['written', A],
      ['timeoutSetFailed', 'expired'],
      ['read', null],
      ['read', A],
    ],
    counts: { expiredReads: 1 },
  },
  {
    name: 'a failed read, then the value expired before any read found it',
    steps: [['written', A, 'soon'], ['readFailed'], ['wait'], ['read', null], ['settle']],
    counts: { transientNullReads: 1, expiredReads: 1 },
  },
  {
    name: 'a failed read of a value that may have expired',
    steps: [['written', A, 'expired'], ['readFailed'], ['settle']],
    counts: { expiredReads: 1 },
  },
]

for (const { name, steps, counts } of rows) {
  t.test(name, async (t) => {
    const model = new ConsistencyModel()
    for (const [step, value, third] of steps) {
      if (step === 'read') model.read('s', value, third)
      else if (step === 'readFailed') model.readFailed('s', 'NO_STORE_AVAILABLE')
      else if (step === 'written' || step === 'writeFailed') {
        model[step]('s', value, lifetime(third as Life | undefined))
      } else if (step === 'timeoutSet' || step === 'timeoutSetFailed') {
        model[step]('s', lifetime(value as Life), Date.now())
      } else if (step === 'settle') model.settle()
      else if (step === 'wait') await new Promise((resolve) => setTimeout(resolve, 100))
      else model[step]('s')
    }
    const written = steps.filter(([step]) => step === 'written').length
    t.same(model.counts, {
      acknowledgedWrites: written,
      lostWrites: 0,
      transientNullReads: 0,
      staleReads: 0,
      resurrections: 0,
      expiredReads: 0,
      ...counts,
    })
  })
}
