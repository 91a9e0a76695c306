import t from 'tap'
import { ConsistencyModel } from '../lib/cli/workload/consistency-model.js'
import type { ConsistencyCounts } from '../lib/cli/workload/consistency-model.js'

// The chaos run's judge, from a table: each row is what the workload was told, in order, and
// the counts it must end with. A read answering null where a value was acknowledged is a stale
// read at once; a read that failed is only a transient null read if a later read finds the
// session, and a lost write if none does.
type Step =
  | ['written' | 'writeFailed', unknown]
  | ['destroyed' | 'destroyFailed' | 'writeDropped' | 'settle']
  | ['read', unknown, string?]
  | ['readFailed']

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
]

for (const { name, steps, counts } of rows) {
  t.test(name, async (t) => {
    const model = new ConsistencyModel()
    for (const [step, value, reader] of steps) {
      if (step === 'read') model.read('s', value, reader)
      else if (step === 'readFailed') model.readFailed('s', 'NO_STORE_AVAILABLE')
      else if (step === 'written' || step === 'writeFailed') model[step]('s', value)
      else if (step === 'settle') model.settle()
      else model[step]('s')
    }
    const written = steps.filter(([step]) => step === 'written').length
    t.same(model.counts, {
      acknowledgedWrites: written,
      lostWrites: 0,
      transientNullReads: 0,
      staleReads: 0,
      resurrections: 0,
      ...counts,
    })
  })
}
