import t from 'tap'
import type { Test } from 'tap'
import { createSessionManager, InvalidOptionError } from '../lib/index.js'
import type { SessionManagerOptions } from '../lib/index.js'

const store = (id: string) => ({ id, uri: 'mysql://app:hunter2-secret@127.0.0.1:1/sessions' })

function optionError(t: Test, options: unknown, option: string): void {
  let thrown: unknown
  try {
    createSessionManager(options as SessionManagerOptions)
  } catch (error) {
    thrown = error
  }
  t.ok(thrown instanceof InvalidOptionError, `${option}: InvalidOptionError`)
  t.match(thrown, { code: 'INVALID_OPTION', option }, `${option}: code and option`)
  const message = (thrown as Error | undefined)?.message ?? ''
  t.ok(message.includes(option), `${option}: message names it: ${message}`)
  t.notOk(message.includes('hunter2'), `${option}: no password in the message`)
}

t.test('bad options are rejected with a typed error that names the option', async (t) => {
  optionError(t, undefined, 'options')
  optionError(t, { stores: [] }, 'stores')
  optionError(t, { stores: 'mysql://x/y' }, 'stores')
  optionError(t, { stores: [store('a'), store('a')] }, 'stores[1].id')
  optionError(t, { stores: [store('canary-id'), store('canary-id')] }, 'stores[1].id')
  t.notMatch(
    (() => {
      try {
        createSessionManager({ stores: [store('canary-id'), store('canary-id')] })
      } catch (error) {
        return (error as Error).message
      }
      return ''
    })(),
    'canary-id',
    'a duplicated store id is not repeated, the earlier position is named',
  )
  optionError(t, { stores: [{ uri: 'mysql://h/db' }] }, 'stores[0].id')
  optionError(t, { stores: [store('a'), store('b')], copies: 3 }, 'copies')
  optionError(t, { stores: [store('a'), store('b')], copies: 0 }, 'copies')
  optionError(t, { stores: [store('a'), store('b')], copies: 1.5 }, 'copies')
  optionError(t, { stores: [store('a'), store('b')], copies: 1, minCopies: 2 }, 'minCopies')
  optionError(t, { stores: [store('a'), store('b')], maxReadStores: 1 }, 'maxReadStores')
  optionError(t, { stores: [store('a')], table: 'sessions; DROP TABLE x' }, 'table')
  optionError(t, { stores: [store('a')], table: 'a'.repeat(54) }, 'table')
  optionError(t, { stores: [store('a')], ttlSeconds: -1 }, 'ttlSeconds')
  optionError(t, { stores: [store('a')], queryTimeoutMillis: '10' }, 'queryTimeoutMillis')
  optionError(t, { stores: [store('a')], codec: { encode: 1 } }, 'codec')
  optionError(t, { stores: [{ id: 'a', host: 'db' }] }, 'stores[0]')
  // mysql2 options that change how result rows decode: with bigNumberStrings every version
  // would come back as a string, and every session would read as absent.
  for (const [name, value] of [
    ['bigNumberStrings', true],
    ['rowsAsArray', true],
    ['typeCast', false],
    ['nestTables', true],
    ['dateStrings', true],
    ['supportBigNumbers', false],
  ] as const) {
    optionError(t, { stores: [{ ...store('a'), [name]: value }] }, `stores[0].${name}`)
  }
  for (const readLeaseMillis of [5, 60_001, '500', -1, 1.5]) {
    optionError(t, { stores: [store('a'), store('b')], readLeaseMillis }, 'readLeaseMillis')
  }
  for (const maxOperationsInFlight of [0, -1, 1.5, '100', 10_000_001]) {
    optionError(t, { stores: [store('a')], maxOperationsInFlight }, 'maxOperationsInFlight')
  }
})

t.test('the table option: 1 to 53 characters, so every name made from it fits', async (t) => {
  // 53 + "_expires_at", the expiry index, is MySQL's 64 (test/schema.ts applies it).
  const longest = createSessionManager({ stores: [store('a')], table: 'a'.repeat(53) })
  t.pass('53 characters are taken')
  await longest.close()
  t.throws(
    () => createSessionManager({ stores: [store('a')], table: 'a'.repeat(54) }),
    { option: 'table', message: /1 to 53 / },
    '54 are refused, and the message says the bound',
  )
})

t.test('the read lease: on by default with a quorum, off at 0 or with readQuorum 1', async (t) => {
  const stores = [store('a'), store('b'), store('c')]
  for (const [options, on] of [
    [{}, true],
    [{ readLeaseMillis: 20 }, true],
    [{ readLeaseMillis: 0 }, false],
    [{ readQuorum: 1 }, false],
  ] as const) {
    const manager = createSessionManager({ stores, copies: 2, ...options })
    t.equal(manager.stats().readLease !== null, on, JSON.stringify(options))
    await manager.close()
  }
})

t.test('malformed store URIs are rejected without repeating the URI', async (t) => {
  for (const uri of [
    'not a uri hunter2',
    'postgres://u:hunter2@h/db',
    'mysql://u:hunter2@h',
    'mysql://u:hunter2@h/a/b',
    'mysql://u:hunter2@/db',
  ]) {
    optionError(t, { stores: [{ id: 'a', uri }] }, 'stores[0].uri')
  }
})

t.test('valid options construct a manager without connecting', async (t) => {
  const manager = createSessionManager({
    stores: [store('b'), store('a'), { id: 'c', host: '127.0.0.1', port: 1, database: 'db' }],
  })
  t.same(
    manager.stats().stores.map((s) => s.operations),
    [0, 0, 0],
    'no statement was sent',
  )
  await manager.close()
})

t.test('option errors never repeat the value given', async (t) => {
  const secret = 'correct-horse-battery-staple'
  const two = [store('a'), store('b')]
  for (const [option, value] of [
    ['copies', secret],
    ['minCopies', secret],
    ['ttlSeconds', secret],
    ['queryTimeoutMillis', secret],
    ['sweepIntervalSeconds', secret],
    ['sweepGraceSeconds', secret],
    ['batching', secret],
    ['placement', secret],
    ['ownerKey', 42],
  ] as const) {
    let message = ''
    try {
      createSessionManager({ stores: two, [option]: value } as SessionManagerOptions)
    } catch (error) {
      message = (error as Error).message
    }
    t.match(message, option, `${option}: named`)
    t.notMatch(message, secret, `${option}: the value is not repeated`)
  }
})

t.test('durations beyond a timer range are refused, naming the option and the bound', async (t) => {
  const cases: [keyof SessionManagerOptions, number][] = [
    ['sweepIntervalSeconds', 30 * 86_400],
    ['sweepGraceSeconds', 30 * 86_400],
    ['sweepGraceSeconds', -1],
    ['healthCheckIntervalMillis', 2 ** 31],
    ['queryTimeoutMillis', 2 ** 31],
    ['connectTimeoutMillis', 2 ** 40],
    ['tombstoneTtlSeconds', 2 ** 40],
    ['ttlSeconds', 2 ** 40],
  ]
  for (const [option, value] of cases) {
    optionError(t, { stores: [store('a')], [option]: value }, option)
    try {
      createSessionManager({ stores: [store('a')], [option]: value } as SessionManagerOptions)
    } catch (error) {
      t.match((error as Error).message, /from \d+ to \d+/, `${option}: the bound is in the message`)
    }
  }
  // The bounds themselves are accepted, and their timers stay in range (no overflow warning).
  const warnings: Error[] = []
  const onWarning = (warning: Error): void => void warnings.push(warning)
  process.on('warning', onWarning)
  const manager = createSessionManager({
    stores: [store('a')],
    sweepIntervalSeconds: 604_800,
    healthCheckIntervalMillis: 86_400_000,
    queryTimeoutMillis: 600_000,
  })
  await manager.close()
  await new Promise((resolve) => setImmediate(resolve))
  process.off('warning', onWarning)
  t.same(
    warnings.filter((warning) => warning.name === 'TimeoutOverflowWarning'),
    [],
    'no TimeoutOverflowWarning',
  )
})

t.test('a lock lease of 0 ms is refused before any statement', async (t) => {
  const manager = createSessionManager({ stores: [store('a')] })
  t.teardown(() => manager.close())
  const id = manager.generateId()
  await t.rejects(manager.lockSession(id, { leaseMillis: 0 }), {
    code: 'INVALID_OPTION',
    option: 'leaseMillis',
  })
  await t.rejects(manager.lockSession(id, { leaseMillis: 2 ** 31 }), {
    code: 'INVALID_OPTION',
    option: 'leaseMillis',
  })
  t.equal(manager.stats().stores[0]!.operations, 0, 'no statement was sent')
})
