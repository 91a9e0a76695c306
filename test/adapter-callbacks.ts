import t from 'tap'
import { serve } from '../lib/adapters/callbacks.js'
import { SessionShardsStore } from '../lib/adapters/express.js'
import { SessionShardsError } from '../lib/errors.js'
import { startTestCluster } from './helpers/cluster.js'
import { startManager } from './helpers/manager.js'

// The framework stores serve each operation both ways, a promise and a Node-style callback.
// A promise rejected with something that is not an Error (undefined, null, a string) must
// still reach the callback as a failure: express-session treats a falsy first argument as
// success, and would go on as if the session had been saved.

/** What the callback got, once the operation settled. */
function called(operation: Promise<unknown>): Promise<unknown[]> {
  return new Promise((resolve) => {
    serve(operation, (...args: unknown[]) => resolve(args)).catch(() => undefined)
  })
}

t.test('a rejection that is not an Error reaches the callback as a typed error', async (t) => {
  for (const [what, value] of [
    ['undefined', undefined],
    ['null', null],
    ['0', 0],
    ['an empty string', ''],
    ['a string', 'went wrong'],
    ['a plain object', { reason: 'no' }],
  ] as const) {
    const [error, result] = await called(Promise.reject(value))
    t.ok(error instanceof SessionShardsError, `${what}: an error`)
    t.ok(error instanceof Error, `${what}: an Error`)
    t.match(error, { code: 'OPERATION_FAILED' }, `${what}: with a code`)
    t.equal((error as Error).cause, value, `${what}: the value is its cause`)
    t.equal(result, undefined, `${what}: no result`)
    await t.rejects(
      serve(Promise.reject(value), undefined),
      { code: 'OPERATION_FAILED' },
      `${what}: the promise rejects with the same kind of error`,
    )
  }
  t.notMatch(
    ((await called(Promise.reject('a-secret-value')))[0] as Error).message,
    'a-secret-value',
    'the value is not echoed in the message',
  )
})

t.test('an Error rejection and a success reach the callback unchanged', async (t) => {
  const failure = new Error('boom')
  t.same(await called(Promise.reject(failure)), [failure])
  t.equal((await called(Promise.reject(failure)))[0], failure, 'the same Error')
  t.same(await called(Promise.resolve(7)), [null, 7])
  t.same(await called(Promise.resolve(undefined)), [null, undefined])
})

const cluster = await startTestCluster(t, { stores: 2 })

t.test('express store: a manager rejecting with undefined fails the callback', async (t) => {
  const manager = await startManager(t, cluster, { copies: 2, table: 'adapter_callbacks' })
  const store = new SessionShardsStore({ manager })
  const id = store.generateId()
  await store.set(id, { user: 'ada', cookie: { originalMaxAge: null, expires: null } } as never)
  // A wrapper around the manager (or a custom codec) that fails without an Error.
  manager.readSession = (() => Promise.reject(undefined)) as never
  const [error, session] = await new Promise<unknown[]>((resolve) =>
    store.get(id, (...args: unknown[]) => resolve(args)),
  )
  t.match(error, { code: 'OPERATION_FAILED' }, 'the callback gets an error, not success')
  t.equal(session, undefined)
})

t.test('express store: length() with a manager whose list throws synchronously', async (t) => {
  // length() once called the manager outside an async function: a wrapper or mock that throws
  // made length(cb) throw to its caller, and the callback was never called. (It counts the
  // sessions manager.list() lists, leaving out ids the manager refuses.)
  const manager = await startManager(t, cluster, { copies: 2, table: 'adapter_sync_throw' })
  const store = new SessionShardsStore({ manager })
  const failure = new Error('list failed')
  manager.list = () => {
    throw failure
  }
  const calls: unknown[][] = []
  let thrown: unknown
  let promise: Promise<unknown> | undefined
  try {
    promise = store.length((...args: unknown[]) => calls.push(args))
    promise.catch(() => undefined)
  } catch (error) {
    thrown = error
  }
  await new Promise((resolve) => setTimeout(resolve, 50))
  t.equal(thrown, undefined, 'length() does not throw synchronously')
  t.same(calls, [[failure]], 'the callback is called once, with the error')
  if (promise !== undefined) await t.rejects(promise, failure, 'the promise rejects')
})
