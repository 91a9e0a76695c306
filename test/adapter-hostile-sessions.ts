// A session object handed to a framework store's set or touch that cannot be read (a getter
// that throws, a revoked Proxy, a Date that is not one) is refused with a typed error, as the
// manager refuses such data (docs/errors.md), through the callback, once; nothing is stored.
import t from 'tap'
import { SessionShardsStore as ExpressStore } from '../lib/adapters/express.js'
import { SessionShardsStore as FastifyStore } from '../lib/adapters/fastify.js'
import { SessionShardsError } from '../lib/errors.js'
import { startTestCluster } from './helpers/cluster.js'
import { startManager, storesWithLiveCopy } from './helpers/manager.js'

const cluster = await startTestCluster(t, { stores: 2 })
const table = 'hostile_sessions'
const manager = await startManager(t, cluster, { copies: 2, table })

function cookie(maxAge: number, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    originalMaxAge: maxAge,
    expires: new Date(Date.now() + maxAge),
    httpOnly: true,
    path: '/',
    ...extra,
  }
}

const boom = (): never => {
  throw new Error('getter boom')
}

/** Session objects that cannot be read: the manager itself refuses such data with INVALID_SESSION_DATA. */
function hostileSessions(): [string, () => unknown][] {
  return [
    [
      'a cookie getter that throws',
      () => Object.defineProperty({ user: 'a' }, 'cookie', { get: boom, enumerable: true }),
    ],
    [
      'a cookie.expires getter that throws',
      () => ({
        user: 'a',
        cookie: Object.defineProperty({}, 'expires', { get: boom, enumerable: true }),
      }),
    ],
    [
      'a cookie.maxAge getter that throws',
      () => ({
        user: 'a',
        cookie: Object.defineProperty({}, 'maxAge', { get: boom, enumerable: true }),
      }),
    ],
    [
      'a cookie.expires that only looks like a Date',
      () => ({ user: 'a', cookie: { expires: Object.create(Date.prototype) } }),
    ],
    [
      'a revoked Proxy as the session',
      () => {
        const { proxy, revoke } = Proxy.revocable({}, {})
        revoke()
        return proxy
      },
    ],
  ]
}

/** Calls `op` with a callback; resolves the callback's arguments, failing if it is called twice. */
function viaCallback(
  t: { fail(message: string): void },
  op: (callback: (...args: unknown[]) => void) => unknown,
): Promise<unknown[]> {
  return new Promise((resolve) => {
    let calls = 0
    op((...args) => {
      calls += 1
      if (calls > 1) t.fail('callback called twice')
      resolve(args)
    })
  })
}

function isTyped(error: unknown): boolean {
  return error instanceof SessionShardsError && typeof error.code === 'string'
}

for (const [name, makeStore] of [
  ['express', () => new ExpressStore({ manager })],
  ['fastify', () => new FastifyStore({ manager })],
] as const) {
  t.test(`${name} set: a hostile session object is refused with a typed error`, async (t) => {
    const store = makeStore()
    for (const [what, make] of hostileSessions()) {
      const id = store.generateId()
      const [error] = await viaCallback(t, (cb) => store.set(id, make() as never, cb as never))
      t.ok(isTyped(error), `${what}: a SessionShardsError with a code (got ${String(error)})`)
      t.same(await storesWithLiveCopy(cluster, id, table), [], `${what}: nothing stored`)
    }
  })
}

t.test('express touch: a hostile session object is refused with a typed error', async (t) => {
  const store = new ExpressStore({ manager })
  const cases: [string, () => unknown][] = [
    ...hostileSessions(),
    [
      'a cookie.originalMaxAge getter that throws',
      () => ({
        user: 'a',
        cookie: Object.defineProperty({}, 'originalMaxAge', { get: boom, enumerable: true }),
      }),
    ],
    ['null', () => null],
  ]
  for (const [what, make] of cases) {
    const id = store.generateId()
    await store.set(id, { user: 'a', cookie: cookie(60_000) } as never)
    const [error] = await viaCallback(t, (cb) => store.touch(id, make() as never, cb as never))
    t.ok(
      error === null || error === undefined || isTyped(error),
      `${what}: success or a SessionShardsError with a code (got ${String(error)})`,
    )
  }
})

// The cookie is read once per call: a getter that throws (or answers otherwise) on a later
// read cannot fail a save after its write was stored, telling the app it was not.
for (const [name, makeStore] of [
  ['express', () => new ExpressStore({ manager })],
  ['fastify', () => new FastifyStore({ manager })],
] as const) {
  t.test(`${name} set: a cookie read again after the write cannot fail the save`, async (t) => {
    const store = makeStore()
    const id = store.generateId()
    let reads = 0
    const given = Object.defineProperty(cookie(60_000), 'originalMaxAge', {
      enumerable: true,
      get: () => {
        if (++reads > 2) throw new Error('read too often')
        return 60_000
      },
    })
    const [error] = await viaCallback(t, (cb) =>
      store.set(id, { user: 'ada', cookie: given } as never, cb as never),
    )
    const stored = (await storesWithLiveCopy(cluster, id, table)).length > 0
    t.ok(error === null || error === undefined, `saved (got ${String(error)})`)
    t.ok(stored, 'and stored')
  })
}
