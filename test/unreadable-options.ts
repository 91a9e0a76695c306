import t from 'tap'
import type { SessionManagerOptions } from '../lib/index.js'
import { createSessionManager, SessionShardsError, VersionConflictError } from '../lib/index.js'
import { startTestCluster } from './helpers/cluster.js'
import { SessionShardsStore as ExpressStore } from '../lib/adapters/express.js'
import { SessionShardsStore as FastifyStore } from '../lib/adapters/fastify.js'
import { rowsOnStores, startManager } from './helpers/manager.js'
import { closeAtEnd } from './helpers/teardown.js'

// Options that cannot be read: a revoked Proxy (whose every use, even Array.isArray, throws a
// bare TypeError) as a call's options argument, as an option's value, or as the options of a
// manager or a framework store, and a getter that throws, are refused with a typed error
// naming the option, before any statement; the session stays as it was. Options are read as
// destructuring reads them (inherited fields count), each once.

const cluster = await startTestCluster(t, { stores: 3 })

function revoked(): object {
  const { proxy, revoke } = Proxy.revocable({}, {})
  revoke()
  return proxy
}

/** What `call` threw (or rejected with); undefined if it did not. */
async function thrownBy(call: () => Promise<unknown>): Promise<unknown> {
  try {
    await call()
    return undefined
  } catch (error) {
    return error
  }
}

function describe(error: unknown): string {
  return error instanceof Error
    ? `${error.constructor.name} (code ${String((error as { code?: unknown }).code)}): ${error.message}`
    : String(error)
}

t.test('a revoked Proxy as a call options argument gets a typed error', async (t) => {
  const manager = await startManager(t, cluster, { copies: 2 })
  const id = await manager.createSession({ keep: 1 })
  const calls: [string, () => Promise<unknown>][] = [
    ['readSession', () => manager.readSession(id, revoked() as never)],
    ['writeSession', () => manager.writeSession(id, { x: 1 }, revoked() as never)],
    ['createSession', () => manager.createSession({ x: 1 }, revoked() as never)],
    ['touch', () => manager.touch(id, revoked() as never)],
    ['updateSession', () => manager.updateSession(id, (d) => d ?? {}, revoked() as never)],
    ['lockSession', () => manager.lockSession(id, revoked() as never)],
    ['withSessionLock', () => manager.withSessionLock(id, (d) => d ?? {}, revoked() as never)],
    ['sweep', () => manager.sweep(revoked() as never)],
    ['repair', () => manager.repair(revoked() as never)],
    [
      'list',
      async () => {
        for await (const _ of manager.list(revoked() as never));
      },
    ],
  ]
  for (const [name, call] of calls) {
    const thrown = await thrownBy(call)
    t.ok(
      thrown instanceof SessionShardsError &&
        typeof (thrown as SessionShardsError).code === 'string',
      `${name}: a typed error, got ${describe(thrown)}`,
    )
  }
  t.same(await manager.readSession(id), { keep: 1 }, 'the session is untouched')
})

t.test('a revoked Proxy as a manager option value gets InvalidOptionError', async (t) => {
  const stores = cluster.storeConfigs()
  const cases: [string, Record<string, unknown>][] = [
    ['stores', { stores: revoked() }],
    ['stores[0]', { stores: [revoked(), ...stores.slice(1)] }],
    ['secrets', { stores, secrets: revoked() }],
    ['codec', { stores, codec: revoked() }],
    ['clock', { stores, clock: revoked() }],
    ['encryption', { stores, encryption: revoked() }],
    ['compression', { stores, compression: revoked() }],
    ['previousStores', { stores, previousStores: revoked() }],
    ['meterProvider', { stores, meterProvider: revoked() }],
  ]
  for (const [name, options] of cases) {
    let thrown: unknown
    try {
      const manager = createSessionManager(options as unknown as SessionManagerOptions)
      await manager.close()
    } catch (error) {
      thrown = error
    }
    t.match(thrown, { code: 'INVALID_OPTION' }, `${name}: INVALID_OPTION, got ${describe(thrown)}`)
    t.match((thrown as Error).message, name.replace(/\[0\]$/, ''), `${name}: named`)
  }
  const throwing = {
    get stores(): never {
      throw new Error('a getter that throws')
    },
  }
  const wholes: [string, unknown][] = [
    ['a revoked Proxy', revoked()],
    ['a getter that throws', throwing],
  ]
  for (const [name, options] of wholes) {
    t.throws(
      () => createSessionManager(options as SessionManagerOptions),
      { code: 'INVALID_OPTION' },
      `${name} as the options: INVALID_OPTION`,
    )
  }
  const codecGetter = {
    stores,
    codec: {
      decode: JSON.parse,
      get encode(): never {
        throw new Error('a getter that throws')
      },
    },
  }
  t.throws(
    () => createSessionManager(codecGetter as unknown as SessionManagerOptions),
    { code: 'INVALID_OPTION' },
    'a getter that throws deeper down: INVALID_OPTION',
  )
})

t.test('a revoked Proxy in the options of a framework store gets InvalidOptionError', async (t) => {
  const stores = cluster.storeConfigs()
  for (const [name, Store] of [
    ['express', ExpressStore],
    ['fastify', FastifyStore],
  ] as const) {
    t.throws(() => new Store(revoked() as never), { code: 'INVALID_OPTION' }, `${name}: whole`)
    t.throws(
      () => new Store({ managerOptions: revoked() } as never),
      { code: 'INVALID_OPTION' },
      `${name}: managerOptions`,
    )
    t.throws(
      () => new Store({ managerOptions: { stores }, touchAfterSeconds: revoked() } as never),
      { code: 'INVALID_OPTION' },
      `${name}: touchAfterSeconds`,
    )
  }
})

t.test('updateSession reads a Date expiresAt once: no refusal after the change ran', async (t) => {
  const manager = await startManager(t, cluster, { copies: 2 })
  const id = await manager.createSession({ n: 1 })
  const target = Date.now() + 3_600_000
  // A Date whose time answers the check, then something else (as a getter that answers a second
  // read otherwise, which the docs say cannot slip into updateSession after its change ran).
  class ShiftyDate extends Date {
    reads = 0
    override getTime(): number {
      this.reads += 1
      return this.reads === 1 ? target : Number.NaN
    }
  }
  const expiresAt = new ShiftyDate(target)
  let changeRan = 0
  let thrown: unknown
  try {
    await manager.updateSession(
      id,
      (data) => {
        changeRan += 1
        return { ...data, n: 2 }
      },
      { expiresAt },
    )
  } catch (error) {
    thrown = error
  }
  t.equal(expiresAt.reads, 1, `expiresAt read once (read ${expiresAt.reads} times)`)
  t.notOk(
    changeRan > 0 && thrown !== undefined,
    `the change ran ${changeRan} time(s) and then the call was refused: ${describe(thrown)}`,
  )
})

t.test('an inherited expectedVersion is still a compare-and-set', async (t) => {
  const manager = await startManager(t, cluster, { copies: 2 })
  const id = await manager.createSession({ v: 1 })
  const read = await manager.readSession(id, { withVersion: true })
  await manager.writeSession(id, { v: 2 }) // another writer moved the session on
  // Options with the field on the prototype: a class with an accessor, or Object.create.
  class CasOptions {
    readonly #version: number
    constructor(version: number) {
      this.#version = version
    }
    get expectedVersion(): number {
      return this.#version
    }
  }
  await t.rejects(
    manager.writeSession(id, { lost: 'update' }, new CasOptions(read!.version)),
    VersionConflictError,
    'a class instance with an expectedVersion accessor',
  )
  await t.rejects(
    manager.writeSession(id, { lost: 'update' }, Object.create({ expectedVersion: read!.version })),
    VersionConflictError,
    'options inheriting expectedVersion',
  )
  t.same(await manager.readSession(id), { v: 2 }, 'the newer write is not overwritten')
})

t.test('createSessionManager takes options that inherit their fields', async (t) => {
  const base = { stores: cluster.storeConfigs(), copies: 2, connectTimeoutMillis: 1000 }
  let manager
  try {
    manager = createSessionManager(Object.create(base))
  } catch (error) {
    t.fail(`refused: ${(error as Error).message}`)
    return
  }
  closeAtEnd(t, 'a session manager', () => manager.close())
  t.equal(
    (manager as unknown as { options: { copies: number } }).options.copies,
    2,
    'copies read from the prototype',
  )
})

function trapping(): object {
  return new Proxy(
    {},
    {
      getPrototypeOf() {
        throw new TypeError('trap')
      },
    },
  )
}

t.test('an option value whose traps throw gets a typed error', async (t) => {
  const manager = await startManager(t, cluster, { copies: 2 })
  const id = await manager.createSession({ keep: 1 })
  const calls: [string, () => Promise<unknown>][] = [
    [
      'writeSession expiresAt',
      () => manager.writeSession(id, { x: 1 }, { expiresAt: trapping() as never }),
    ],
    ['touch expiresAt', () => manager.touch(id, { expiresAt: trapping() as never })],
    ['lockSession signal', () => manager.lockSession(id, { signal: trapping() as never })],
  ]
  for (const [name, call] of calls) {
    const thrown = await thrownBy(call)
    t.ok(thrown instanceof SessionShardsError, `${name}: got ${String(thrown)}`)
  }
  t.same(await manager.readSession(id), { keep: 1 })
})

t.test('a getter the library never asks for is not read, nor refuses the options', async (t) => {
  const manager = await startManager(t, cluster, { copies: 2 })
  const id = await manager.createSession({ v: 0 })
  let reads = 0
  class WriteOptions {
    ttlSeconds = 60
    /** An app's own field, valid only in some states. */
    get auditTrail(): string {
      reads++
      throw new Error('no audit trail before the request ends')
    }
  }
  const options = new WriteOptions()
  const { ttlSeconds } = options // what destructuring reads: fine
  t.equal(ttlSeconds, 60)
  let error: unknown
  try {
    await manager.writeSession(id, { v: 1 }, options)
  } catch (caught) {
    error = caught
  }
  t.equal(error, undefined, `the write runs with ttlSeconds 60 (got ${String(error)})`)
  t.equal(reads, 0, 'the unrelated getter was never called')
})

t.test('a "__proto__" key of parsed JSON options is not taken for inherited options', async (t) => {
  const manager = await startManager(t, cluster, { copies: 2 })
  const id = await manager.createSession({ v: 0 })
  const options = JSON.parse('{"__proto__": {"ttlSeconds": 5}}') as { ttlSeconds?: number }
  t.equal(options.ttlSeconds, undefined, 'the parsed object has no ttlSeconds')
  const { ttlSeconds } = options
  t.equal(ttlSeconds, undefined, 'nor does destructuring find one')
  const before = Date.now()
  await manager.writeSession(id, { v: 1 }, options)
  const rows = [...(await rowsOnStores(cluster, id)).values()].filter((row) => row !== null)
  for (const row of rows) {
    t.ok(
      Number(row!.expires_at) > before + 3_600_000,
      `the session got the default day's life, not 5 s (expires in ${Number(row!.expires_at) - before} ms)`,
    )
  }
})
