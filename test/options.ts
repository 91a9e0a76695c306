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
  optionError(t, { stores: [{ uri: 'mysql://h/db' }] }, 'stores[0].id')
  optionError(t, { stores: [store('a'), store('b')], copies: 3 }, 'copies')
  optionError(t, { stores: [store('a'), store('b')], copies: 0 }, 'copies')
  optionError(t, { stores: [store('a'), store('b')], copies: 1.5 }, 'copies')
  optionError(t, { stores: [store('a'), store('b')], copies: 1, minCopies: 2 }, 'minCopies')
  optionError(t, { stores: [store('a'), store('b')], maxReadStores: 1 }, 'maxReadStores')
  optionError(t, { stores: [store('a')], table: 'sessions; DROP TABLE x' }, 'table')
  optionError(t, { stores: [store('a')], ttlSeconds: -1 }, 'ttlSeconds')
  optionError(t, { stores: [store('a')], queryTimeoutMillis: '10' }, 'queryTimeoutMillis')
  optionError(t, { stores: [store('a')], codec: { encode: 1 } }, 'codec')
  optionError(t, { stores: [{ id: 'a', host: 'db' }] }, 'stores[0]')
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
