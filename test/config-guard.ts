import t from 'tap'
import type { ConfigMismatch, PlacementConfig } from '../lib/index.js'
import { configFingerprint, configsConflict } from '../lib/config-guard.js'
import { ListedStores } from '../lib/listed-stores.js'
import { startTestCluster } from './helpers/cluster.js'
import { proxiesFor, throughProxies } from './helpers/gray.js'
import { createManager, startManager } from './helpers/manager.js'
import { sleep, waitFor } from './helpers/wait.js'

// Managers publish their placement configuration on each store and read the others': two app
// servers with different store lists or copies find out, within one health round.
const base: PlacementConfig = {
  stores: ['a', 'b', 'c'],
  placement: 'shuffle',
  copies: 2,
  previousStores: null,
  previousPlacement: null,
}

t.test('which configurations conflict, from a table', async (t) => {
  const cases: [string, PlacementConfig, PlacementConfig, boolean][] = [
    ['the same', base, { ...base }, false],
    ['another store list', base, { ...base, stores: ['a', 'b'] }, true],
    ['another copy count', base, { ...base, copies: 3 }, true],
    ['another placement', base, { ...base, placement: 'rendezvous' }, true],
    [
      'an announced change from our list',
      base,
      {
        ...base,
        stores: ['a', 'b', 'c', 'd'],
        previousStores: ['a', 'b', 'c'],
        previousPlacement: 'shuffle',
      },
      false,
    ],
    [
      'we announce the change from theirs',
      { ...base, previousStores: ['a', 'b'], previousPlacement: 'shuffle' },
      { ...base, stores: ['a', 'b'] },
      false,
    ],
    [
      'the same list, only one still names the previous one',
      base,
      { ...base, previousStores: ['a', 'b'], previousPlacement: 'shuffle' },
      false,
    ],
    [
      'a change from a list that is not ours',
      base,
      {
        ...base,
        stores: ['a', 'b', 'd'],
        previousStores: ['a', 'b'],
        previousPlacement: 'shuffle',
      },
      true,
    ],
    [
      'another read quorum',
      { ...base, readQuorum: 2, readLeaseMillis: 500 },
      { ...base, readQuorum: 1, readLeaseMillis: 0 },
      true,
    ],
    [
      'another read lease',
      { ...base, readQuorum: 2, readLeaseMillis: 500 },
      { ...base, readQuorum: 2, readLeaseMillis: 0 },
      true,
    ],
    [
      'the same read settings',
      { ...base, readQuorum: 2, readLeaseMillis: 500 },
      { ...base, readQuorum: 2, readLeaseMillis: 500 },
      false,
    ],
    [
      'read settings unknown (a manager of an older version)',
      { ...base, readQuorum: 2, readLeaseMillis: 500 },
      base,
      false,
    ],
    [
      'other read settings during an announced change',
      { ...base, readQuorum: 2, readLeaseMillis: 500 },
      {
        ...base,
        stores: ['a', 'b', 'c', 'd'],
        previousStores: ['a', 'b', 'c'],
        previousPlacement: 'shuffle',
        readQuorum: 2,
        readLeaseMillis: 2000,
      },
      true,
    ],
  ]
  for (const [name, ours, theirs, conflict] of cases) {
    t.equal(configsConflict(ours, theirs), conflict, name)
    t.equal(configsConflict(theirs, ours), conflict, `${name} (the other way)`)
  }
  t.equal(configFingerprint(base), configFingerprint({ ...base }))
  t.not(configFingerprint(base), configFingerprint({ ...base, copies: 1 }))
})

t.test('how long a store has gone unlisted, from a table of rounds', async (t) => {
  const listed = new ListedStores(3)
  t.equal(listed.unlistedMillis('d', 1000), 0, 'before any round heard a store: not judged')
  listed.heard(['a', 'd'], 1000)
  listed.heard(['a'], 1500)
  const cases: [string, number, number][] = [
    ['listed in the last round', 0, listed.unlistedMillis('a', 1500)],
    ['last listed 500 ms ago', 700, listed.unlistedMillis('d', 1700)],
    ['never listed: since the first round', 700, listed.unlistedMillis('x', 1700)],
  ]
  for (const [what, expected, got] of cases) t.equal(got, expected, what)
  // Beyond 3 ids, those listed longest ago are forgotten: they count from the first round.
  listed.heard(['b', 'c', 'e'], 2000)
  t.equal(listed.unlistedMillis('a', 2000), 1000, 'a forgotten: since the first round, not 500')
  t.equal(listed.unlistedMillis('e', 2000), 0)
})

const cluster = await startTestCluster(t, { stores: 3 })
const fast = { healthCheckIntervalMillis: 200, table: 'guarded' }

t.test('two managers with different store lists see the mismatch', async (t) => {
  const [a, b, c] = cluster.storeConfigs()
  const full = await startManager(t, cluster, { ...fast, stores: [a!, b!, c!], copies: 2 })
  const events: ConfigMismatch[] = []
  full.on('config-mismatch', (event) => events.push(event))
  // Listening from creation, as an app would: the first round may already see the mismatch.
  const partial = createManager(t, cluster, { ...fast, stores: [a!, b!], copies: 2 })
  const partialEvents: ConfigMismatch[] = []
  partial.on('config-mismatch', (event) => partialEvents.push(event))
  await partial.ready()
  await waitFor(
    'both managers to report the mismatch',
    () => events.length > 0 && partialEvents.length > 0,
  )
  t.same(events[0]?.ours.stores, [a!.id, b!.id, c!.id].sort())
  t.same(events[0]?.theirs.stores, [a!.id, b!.id].sort(), 'the other configuration, by store ids')
  t.notOk(JSON.stringify(events[0]).includes('mysql://'), 'no URI in the event')
  t.equal(full.stats().configMismatches.length, 1, 'in stats()')
  t.equal(events.length, 1, 'once, not every round')

  await partial.close()
  await waitFor(
    'the mismatch to clear once the other manager closed',
    () => full.stats().configMismatches.length === 0,
  )
})

t.test('managers configured alike, or through an announced change, see none', async (t) => {
  const [a, b, c] = cluster.storeConfigs()
  const events: ConfigMismatch[] = []
  const one = await startManager(t, cluster, {
    ...fast,
    table: 'guarded_ok',
    stores: [a!, b!],
    copies: 2,
  })
  const two = await startManager(t, cluster, {
    ...fast,
    table: 'guarded_ok',
    stores: [b!, a!],
    copies: 2,
  })
  const moving = await startManager(t, cluster, {
    ...fast,
    table: 'guarded_ok',
    stores: [a!, b!, c!],
    previousStores: [a!, b!],
    copies: 2,
  })
  for (const manager of [one, two, moving])
    manager.on('config-mismatch', (event) => events.push(event))
  // Several rounds: each manager has read the others' rows by now.
  await new Promise((resolve) => setTimeout(resolve, 1200))
  t.same(events, [], 'store order does not matter; a change through previousStores is announced')
  for (const manager of [one, two, moving]) t.same(manager.stats().configMismatches, [])
})

// What stats() and the event hand out are copies: a listener that edits them (normalizing what
// it logs, say) must not change what the guard compares peers with, nor what it reports.
t.test(
  'changing what stats()/the event returned does not change what the guard reports',
  async (t) => {
    const configs = cluster.storeConfigs()
    const own = { ...fast, table: 'guarded_copies' }
    const two = await startManager(t, cluster, { ...own, stores: configs, copies: 2 })
    const events: ConfigMismatch[] = []
    // A listener that normalizes what it logs (or any caller editing the payload it was given).
    two.on('config-mismatch', (event) => {
      events.push(event)
      Object.assign(event.ours, event.theirs)
    })
    const one = createManager(t, cluster, { ...own, stores: configs, copies: 1 })
    await one.ready()
    await waitFor('the other manager to see it too', () => one.stats().configMismatches.length > 0)
    await waitFor('the mismatch to be seen', () => events.length > 0)
    t.equal(two.stats().configMismatches[0]?.ours.copies, 2, 'stats() still gives our own copies')
    // The other manager still runs with copies 1: the conflict stays (rounds are 1 s apart).
    let cleared = false
    await waitFor('the mismatch to clear', () => two.stats().configMismatches.length === 0, 4000)
      .then(() => (cleared = true))
      .catch(() => {})
    t.equal(cleared, false, 'the mismatch is still reported while the other manager runs')
    t.equal(two.stats().configMismatches.length, 1)
    t.equal(one.stats().configMismatches.length, 1, 'and the other manager still sees ours')
  },
)

// A round that hears no store (every store out of reach of this app server for a moment) knows
// nothing new: what the last round knew stands. Cleared, the mismatch would be reported again,
// and the store ids peers list, which sweeps keep peers' hints for, would be forgotten.
t.test('a round that hears no store keeps what the last one knew', async (t) => {
  const configs = cluster.storeConfigs()
  const own = { ...fast, table: 'guarded_unheard' }
  const proxies = await proxiesFor(
    t,
    cluster,
    configs.map((config) => config.id),
  )
  const cutOff = await startManager(t, cluster, {
    ...own,
    stores: throughProxies(configs, proxies),
    copies: 2,
  })
  const events: ConfigMismatch[] = []
  cutOff.on('config-mismatch', (event) => events.push(event))
  const other = createManager(t, cluster, { ...own, stores: configs, copies: 1 })
  await other.ready()
  await waitFor('the mismatch to be seen', () => events.length > 0)
  for (const proxy of proxies.values()) proxy.setFault({ kind: 'reset' })
  await sleep(2500) // rounds are at least 1 s apart
  t.equal(cutOff.stats().configMismatches.length, 1, 'still reported while no store answers')
  for (const proxy of proxies.values()) proxy.heal()
  await sleep(2500)
  t.equal(events.length, 1, 'and not reported anew once they answer again')
})
