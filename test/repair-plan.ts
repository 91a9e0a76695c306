import t from 'tap'
import type { RepairAction, StoreHolding } from '../lib/maintenance/repair-plan.js'
import { markUnreadable, planRepair } from '../lib/maintenance/repair-plan.js'
import type { StoredCopy } from '../lib/store/rows.js'
import type { Store } from '../lib/store/store.js'

// The repair of one session, decided from what each store holds (no database): one row per
// case, in the session's order a, b, c, with copies 2 (targets a and b).
const NOW = 1_000_000
const [a, b, c] = ['a', 'b', 'c'].map((id) => ({ id }) as unknown as Store) as [Store, Store, Store]
const live = (version: number, expiresAtMillis = NOW + 1000): StoredCopy => ({
  version,
  expiresAtMillis,
  deleted: false,
  data: Buffer.from('{}'),
  owner: null,
  ttlSeconds: null,
})
const tombstone = (version: number, expiresAtMillis = NOW + 1000): StoredCopy => ({
  ...live(version, expiresAtMillis),
  deleted: true,
  data: null,
})

interface Row {
  name: string
  /** What a, b and c hold; undefined: the store could not be read. */
  held: [StoredCopy | null | undefined, StoredCopy | null | undefined, StoredCopy | null]
  dropExtras?: boolean
  allStoresUp?: boolean
  clockToleranceMillis?: number
  moving?: boolean
  /** `kind store` of each action, in order. */
  want: string[]
}

const rows: Row[] = [
  { name: 'nothing anywhere', held: [null, null, null], want: [] },
  { name: 'in place', held: [live(5), live(5), null], want: [] },
  { name: 'a stale target gets the newest', held: [live(5), live(3), null], want: ['copy b'] },
  {
    name: 'a copy outside the targets moves in (full repair)',
    held: [null, live(5), live(5)],
    want: ['copy a', 'remove c'],
  },
  {
    // Left on c, it would outlive a newer copy with a shorter life on a and b.
    name: 'hint replay and read repair hand the copy off too',
    held: [null, live(5), live(5)],
    dropExtras: false,
    want: ['copy a', 'remove c'],
  },
  {
    // A touch missed the targets' copies, or landed on c while the session moved.
    name: 'a copy outside the targets with a later expiry: the targets take it before it goes',
    held: [live(5), live(5), live(5, NOW + 5000)],
    want: ['copy a', 'copy b', 'remove c'],
  },
  {
    name: 'a later expiry on a target alone stays where it is (no rewrite for expiry alone)',
    held: [live(5), live(5, NOW + 5000), null],
    want: [],
  },
  {
    name: 'a copy outside the targets goes once they hold the newest',
    held: [live(5), live(5), live(3)],
    dropExtras: false,
    want: ['remove c'],
  },
  {
    name: 'an expired newest copy is left to the sweeper',
    held: [live(5, NOW - 1), live(5, NOW - 1), null],
    want: [],
  },
  {
    // The store that missed a write with a short TTL keeps the older copy, which would be the
    // session again once the expired one was swept: the expired copy goes over it.
    name: 'an expired newest copy supersedes an older live one',
    held: [live(5, NOW - 1), live(3), null],
    want: ['copy b'],
  },
  {
    name: '... and an older copy outside the targets is deleted (full repair)',
    held: [live(5, NOW - 1), live(5, NOW - 1), live(3)],
    want: ['remove c'],
  },
  {
    // The sweeper does not reach a store being retired.
    name: '... and so is the expired copy itself (full repair)',
    held: [live(5, NOW - 1), live(5, NOW - 1), live(5, NOW - 1)],
    want: ['remove c'],
  },
  {
    // Expired on this app server's clock by less than others' may run behind: live for them.
    // During a change of the store list every copy is outside the targets, and deleting them
    // would end the session for those app servers.
    name: 'a copy expired within the clock tolerance moves as a live one (full repair)',
    held: [null, null, live(5, NOW - 1)],
    clockToleranceMillis: 1000,
    want: ['copy a', 'copy b', 'remove c'],
  },
  {
    // Expired all the same: an older live copy anywhere gets it, as below, also while a target
    // is unread (no removal then).
    name: '... and it still supersedes an older live copy outside the targets',
    held: [live(5, NOW - 1), undefined, live(3)],
    allStoresUp: false,
    clockToleranceMillis: 1000,
    want: ['copy c'],
  },
  {
    name: '... also in hint replay and read repair',
    held: [live(5, NOW - 1), undefined, live(3)],
    allStoresUp: false,
    dropExtras: false,
    clockToleranceMillis: 1000,
    want: ['copy c'],
  },
  {
    // A move while a store is down: that store may hold an older copy, and the hints for it
    // (which spare rows from sweeps) are where the write landed, not on the targets.
    name: 'a move keeps the copies it moves while a store could not be read',
    held: [null, null, live(5)],
    allStoresUp: false,
    moving: true,
    want: ['copy a', 'copy b'],
  },
  {
    name: '... an older one gets the newest instead (it must not outlive it)',
    held: [live(5), live(5), live(3)],
    allStoresUp: false,
    moving: true,
    want: ['copy c'],
  },
  {
    // Outside a change the targets took the newest write, and keep its hints themselves.
    name: '... outside a change of the store list, a full repair hands them off all the same',
    held: [live(5), live(5), live(5)],
    allStoresUp: false,
    want: ['remove c'],
  },
  {
    name: '... hint replay and read repair hand them off (they keep such hints)',
    held: [null, null, live(5)],
    allStoresUp: false,
    dropExtras: false,
    want: ['copy a', 'copy b', 'remove c'],
  },
  {
    name: '... past it, it is over',
    held: [null, null, live(5, NOW - 1001)],
    clockToleranceMillis: 1000,
    want: ['remove c'],
  },
  {
    // A store that is down may hold an older live copy: only the expired one supersedes it.
    name: '... but not while a store is down',
    held: [null, null, live(5, NOW - 1)],
    allStoresUp: false,
    want: [],
  },
  {
    name: '... which hint replay and read repair leave to the sweeper',
    held: [live(5, NOW - 1), live(5, NOW - 1), live(5, NOW - 1)],
    dropExtras: false,
    want: [],
  },
  {
    name: '... or superseded (hint replay, read repair)',
    held: [live(5, NOW - 1), null, live(3)],
    dropExtras: false,
    want: ['copy c'],
  },
  {
    name: 'a tombstone beats a newer live copy',
    held: [tombstone(4), live(9), null],
    want: ['bury b'],
  },
  {
    name: 'a live copy outside the targets of a destroyed session is deleted (full repair)',
    held: [tombstone(4), tombstone(4), live(9)],
    want: ['remove c'],
  },
  {
    name: '... and buried by hint replay or read repair',
    held: [tombstone(4), tombstone(4), live(9)],
    dropExtras: false,
    want: ['bury c'],
  },
  {
    name: 'a tombstone outside the targets is cleared once the targets hold it',
    held: [null, tombstone(4), tombstone(4)],
    want: ['bury a', 'clear c'],
  },
  {
    name: 'a tombstone whose time is up goes, with every copy, when every store is up',
    held: [tombstone(4, NOW - 1), live(2), null],
    want: ['clear a', 'remove b'],
  },
  {
    name: '... but not while a store is down',
    held: [tombstone(4, NOW - 1), live(2), null],
    allStoresUp: false,
    want: ['bury b'],
  },
  {
    name: 'a target not read: no live copy goes past the targets (nothing would hand it off)',
    held: [undefined, live(3), null],
    allStoresUp: false,
    want: [],
  },
  {
    name: '... the target read still gets the newest copy',
    held: [live(2), undefined, live(3)],
    allStoresUp: false,
    want: ['copy a'],
  },
  {
    name: '... and nothing is removed while it is unread: it may lack what the removal assumes',
    held: [undefined, live(3), live(3)],
    allStoresUp: false,
    want: [],
  },
  {
    name: '... nor a tombstone cleared; the targets read are buried',
    held: [live(2), undefined, tombstone(4)],
    allStoresUp: false,
    want: ['bury a'],
  },
]

for (const row of rows) {
  t.test(row.name, async (t) => {
    const holdings: StoreHolding[] = [a, b, c].map((store, index) => ({
      store,
      copy: row.held[index],
    }))
    const actions = planRepair(holdings, {
      copies: 2,
      now: NOW,
      dropExtras: row.dropExtras ?? true,
      allStoresUp: row.allStoresUp ?? true,
      clockToleranceMillis: row.clockToleranceMillis ?? 0,
      moving: row.moving ?? false,
    })
    t.same(actions.map(describe), row.want)
  })
}

function describe(action: RepairAction): string {
  return `${action.kind} ${action.store.id}`
}

t.test('a copy that goes is removed unless touched since it was read', async (t) => {
  // c holds the session's version without its timeout (a write failed over there and took the
  // default lifetime, longer): the timed copies on the targets win, and c goes all the same.
  const timed = { ...live(5), ttlSeconds: 60 }
  const holdings: StoredCopy[] = [timed, timed, live(5, NOW + 5000)]
  const actions = planRepair(
    [a, b, c].map((store, index) => ({ store, copy: holdings[index]! })),
    { copies: 2, now: NOW, dropExtras: true, allStoresUp: true, clockToleranceMillis: 0 },
  )
  t.same(
    actions.map((action) =>
      action.kind === 'remove' ? { ...action, store: action.store.id } : action.kind,
    ),
    [{ kind: 'remove', store: 'c', version: 5, expiresAtMillis: NOW + 5000 }],
    'removed at its own expiry as read, not the (earlier) one of the copy that wins',
  )
})

t.test(
  'an unreadable copy of the newest version is written over from one that decodes',
  async (t) => {
    const bytes = (text: string, version = 5): StoredCopy => ({
      ...live(version),
      data: Buffer.from(text),
    })
    const decodes = (data: Buffer): boolean => !data.toString().startsWith('bad')
    const plan = (held: (StoredCopy | null)[]): string[] => {
      const marked = markUnreadable(
        [a, b, c].map((store, index) => ({ store, copy: held[index] })),
        decodes,
      )
      const actions = planRepair(marked, {
        copies: 2,
        now: NOW,
        clockToleranceMillis: 0,
        dropExtras: true,
        allStoresUp: true,
      })
      return actions.map((action) =>
        action.kind === 'copy'
          ? `copy ${action.store.id} ${action.source.data} over ${action.overUnreadable ?? '-'}`
          : describe(action),
      )
    }
    const table: [string, (StoredCopy | null)[], string[]][] = [
      ['a target', [bytes('bad'), bytes('good'), null], ['copy a good over bad']],
      [
        'both targets, from beyond them',
        [bytes('bad'), bytes('bad2'), bytes('good')],
        ['copy a good over bad', 'copy b good over bad2', 'remove c'],
      ],
      ['an extra goes as any extra', [bytes('good'), bytes('good'), bytes('bad')], ['remove c']],
      [
        'a missing target gets the copy that decodes',
        [bytes('bad'), null, bytes('good')],
        ['copy a good over bad', 'copy b good over -', 'remove c'],
      ],
      ['none decodes: left as it is', [bytes('bad'), bytes('bad2'), null], []],
      [
        'only at the newest version',
        [bytes('bad', 6), bytes('good', 5), null],
        ['copy b bad over -'],
      ],
      ['not against a tombstone', [bytes('bad'), tombstone(6), null], ['bury a']],
    ]
    for (const [name, held, want] of table) t.same(plan(held), want, name)
    let decoded = 0
    markUnreadable(
      [a, b].map((store) => ({ store, copy: bytes('same') })),
      () => ++decoded > 0,
    )
    t.equal(decoded, 0, 'copies with the same bytes are not decoded')
  },
)
