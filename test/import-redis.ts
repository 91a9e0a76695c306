// `session-shards import connect-redis`: the sessions an app kept with connect-redis (written
// through its own store into a redis-server of the test's own) copied into the stores, read back
// through the Express store as the app will read them after the switch.
import { existsSync } from 'node:fs'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { RedisStore } from 'connect-redis'
import { createClient } from 'redis'
import t from 'tap'
import type { Test } from 'tap'
import { startRedisServer } from '../bench/lib/redis-server.js'
import { prefixPattern } from '../lib/cli/import-sources/connect-redis.js'
import { generateSessionId } from '../lib/index.js'
import { runCli, type CliRun } from './helpers/cli.js'
import { expressGetter, sessionWith } from './helpers/express-sessions.js'
import { startTestCluster } from './helpers/cluster.js'
import { startManager } from './helpers/manager.js'

const REDIS_SERVER = process.env['REDIS_SERVER'] ?? '/usr/bin/redis-server'
if (!existsSync(REDIS_SERVER)) {
  t.plan(0, 'redis-server is not installed (apt-get install redis-server): skipping')
  process.exit(0)
}

t.test('the SCAN pattern of a prefix matches that prefix only', async (t) => {
  const cases: [prefix: string, pattern: string][] = [
    ['sess:', 'sess:*'],
    ['', '*'],
    ['app[1]*:', 'app\\[1\\]\\*:*'],
    ['a?b\\c^', 'a\\?b\\\\c\\^*'],
  ]
  for (const [prefix, pattern] of cases) t.equal(prefixPattern(prefix), pattern, prefix)
})

/** The stores' default time to live in the CLI's configuration: not connect-redis's 86,400. */
const TTL_SECONDS = 7200
const IMPORTER_PASSWORD = 'importer password of the test'
const redis = await startRedisServer({ binary: REDIS_SERVER })
t.teardown(() => redis.stop())
const client = createClient({ url: redis.url })
await client.connect()
t.teardown(() => client.close())
// The import logs in as a user of its own, so that the tests see its password kept out of output.
await client.sendCommand([
  'ACL',
  'SETUSER',
  'importer',
  'on',
  `>${IMPORTER_PASSWORD}`,
  '~*',
  '+@all',
])
const sourceUri = `redis://importer:${encodeURIComponent(IMPORTER_PASSWORD)}@127.0.0.1:${redis.port}/0`

const cluster = await startTestCluster(t, { stores: 3 })
const cwd = await mkdtemp(path.join(os.tmpdir(), 'session-shards-import-redis-test-'))
t.teardown(() => rm(cwd, { recursive: true, force: true }))
const storePassword = cluster.stores[0]!.config.password
await writeFile(
  path.join(cwd, 'session-shards.config.json'),
  JSON.stringify({
    stores: cluster.stores.map((store) => ({ id: store.id, uri: store.uri })),
    copies: 2,
    ttlSeconds: TTL_SECONDS,
  }),
)

function importCli(args: string[], env: Record<string, string> = {}): Promise<CliRun> {
  return runCli(['import', 'connect-redis', ...args], {
    cwd,
    env: { SESSION_SHARDS_IMPORT_FROM: sourceUri, ...env },
  })
}

function noSecrets(t: Test, run: CliRun): void {
  for (const secret of [IMPORTER_PASSWORD, encodeURIComponent(IMPORTER_PASSWORD), storePassword]) {
    t.notOk(run.stdout.includes(secret) || run.stderr.includes(secret), 'no password in output')
  }
}

const manager = await startManager(t, cluster, { copies: 2 })
const get = expressGetter(manager)

// The source: keys written by connect-redis's own store, as an app on it leaves them.
const connectRedis = new RedisStore({ client })
const live = Array.from({ length: 230 }, (_, index) => ({
  id: generateSessionId(),
  data: sessionWith({ user: `user-${index}` }, 3_600_000),
}))
for (const { id, data } of live) await connectRedis.set(id, data)
const unusualId = 'legacy:42,with=odd characters'
await connectRedis.set(unusualId, sessionWith({ user: 'legacy' }, 3_600_000))
// A browser-session cookie (no expiry): connect-redis gives the key its ttl, a day by default.
const browserSessionId = generateSessionId()
await connectRedis.set(browserSessionId, sessionWith({ user: 'browser session' }))
// connect-redis with disableTTL: a key that never expires, and a cookie without an expiry.
const foreverId = generateSessionId()
await new RedisStore({ client, disableTTL: true }).set(foreverId, sessionWith({ user: 'forever' }))
// express-session with resave: false touches unchanged data instead of saving it, and
// connect-redis's touch moves only the key's time to live: the cookie inside says the session
// ended an hour ago, and the user is still logged in.
const touchedId = generateSessionId()
await client.set(
  `sess:${touchedId}`,
  JSON.stringify({
    cookie: { expires: new Date(Date.now() - 3_600_000).toISOString() },
    user: 'x',
  }),
  { expiration: { type: 'EX', value: 3600 } },
)
// Under the prefix but no session: cut-short JSON, and a hash.
const unreadable = [generateSessionId(), generateSessionId()]
await client.set(`sess:${unreadable[0]}`, '{"cookie": {}, "user": ', {
  expiration: { type: 'EX', value: 3600 },
})
await client.hSet(`sess:${unreadable[1]}`, { user: 'a hash' })
// Not under the prefix: another app's key, left alone.
const otherAppId = generateSessionId()
await client.set(`other:${otherAppId}`, JSON.stringify(sessionWith({ user: 'other app' })))
// Already in the stores: written since the switch (newer), and logged out since.
const newerId = live[0]!.id
await manager.writeSession(newerId, { cookie: {}, user: 'written after the switch' })
const loggedOutId = live[1]!.id
await manager.writeSession(loggedOutId, { cookie: {}, user: 'about to log out' })
await manager.destroySession(loggedOutId)

t.test(
  'every live session under the prefix is copied in; what the stores hold stays',
  async (t) => {
    const startedAt = Date.now()
    const run = await importCli(['--batch-size', '40', '--json'])
    t.equal(run.code, 1, `two keys could not be read: exit 1 (${run.stderr.trim()})`)
    noSecrets(t, run)
    t.match(JSON.parse(run.stdout), {
      ok: false,
      prefix: 'sess:',
      imported: live.length - 2 + 4,
      present: 2,
      expired: 0,
      unreadable: 2,
      failed: 0,
    })
    for (const { id, data } of live.slice(2)) {
      const read = await get(id)
      t.equal(read?.['user' as never], data['user' as never], `${id}: its data`)
      t.equal(
        new Date(read!.cookie.expires!).getTime(),
        data.cookie.expires!.getTime(),
        `${id}: its cookie's expiry, to the millisecond`,
      )
    }
    t.match(await get(unusualId), { user: 'legacy' }, 'an unusual id, read where the store looks')
    const browser = await manager.readSession(browserSessionId, { withVersion: true })
    t.match(browser, { data: { user: 'browser session' } }, 'a browser-session cookie')
    t.ok(
      browser !== null &&
        browser.expiresAt >= startedAt + 86_399_000 &&
        browser.expiresAt <= Date.now() + 86_400_000,
      "a cookie without an expiry: the key's time to live",
    )
    const forever = await manager.readSession(foreverId, { withVersion: true })
    t.match(forever, { data: { user: 'forever' } }, 'a key without a time to live')
    t.ok(
      forever !== null &&
        forever.expiresAt >= startedAt + TTL_SECONDS * 1000 &&
        forever.expiresAt <= Date.now() + TTL_SECONDS * 1000,
      "no expiry from the cookie or the key: the stores' ttlSeconds",
    )
    t.match(await get(newerId), { user: 'written after the switch' }, 'a newer session stays')
    t.equal(await get(loggedOutId), null, 'a logged-out session is not brought back')
    const touched = await manager.readSession(touchedId, { withVersion: true })
    t.match(touched, { data: { user: 'x' } }, 'a session the source touched since it was saved')
    t.ok(touched!.expiresAt > startedAt + 3_500_000, "with the key's expiry, not the cookie's")
    for (const id of unreadable) t.equal(await get(id), null, 'an unreadable key is skipped')
    t.equal(await get(otherAppId), null, 'a key outside the prefix is left alone')
    t.equal(
      await client.exists(live.map(({ id }) => `sess:${id}`)),
      live.length,
      'the source is only read',
    )
  },
)

t.test('run again: nothing written twice; exit 0 once every key can be read', async (t) => {
  await client.del(unreadable.map((id) => `sess:${id}`))
  const run = await importCli(['--json'])
  t.equal(run.code, 0, run.stderr)
  t.match(JSON.parse(run.stdout), {
    ok: true,
    imported: 0,
    present: live.length + 4,
    unreadable: 0,
    failed: 0,
  })
  const human = await importCli([])
  t.equal(human.code, 0)
  t.match(human.stdout, /0 session\(s\) imported from the keys sess:\*, 234 already there\./)
})

t.test('--prefix: only the keys that start with it, glob characters and all', async (t) => {
  const prefix = 'app[1]*:'
  const mine = generateSessionId()
  await new RedisStore({ client, prefix }).set(mine, sessionWith({ user: 'mine' }, 600_000))
  // Would match the prefix read as a pattern (app1…:), but does not start with it.
  const lookalike = generateSessionId()
  await new RedisStore({ client, prefix: 'app1x:' }).set(
    lookalike,
    sessionWith({ user: 'lookalike' }, 600_000),
  )
  const run = await importCli(['--prefix', prefix, '--json'])
  t.equal(run.code, 0, run.stderr)
  t.match(JSON.parse(run.stdout), { ok: true, prefix, imported: 1, present: 0 })
  t.match(await get(mine), { user: 'mine' })
  t.equal(await get(lookalike), null, 'a key that only matches the prefix as a pattern')
})

t.test('a key whose name is not UTF-8 is counted unreadable, not passed over', async (t) => {
  // connect-redis writes a JS string's UTF-8; another client may have written other bytes.
  const prefix = 'bytes:'
  const fine = generateSessionId()
  await new RedisStore({ client, prefix }).set(fine, sessionWith({ user: 'fine' }, 600_000))
  const odd = Buffer.concat([Buffer.from(`${prefix}legacy-`), Buffer.from([0xe9, 0xff, 0x41])])
  await client.set(odd, JSON.stringify(sessionWith({ user: 'odd' }, 600_000)), {
    expiration: { type: 'EX', value: 600 },
  })
  const run = await importCli(['--prefix', prefix, '--json'])
  t.equal(run.code, 1, 'exit 1: not every live key was imported')
  t.match(JSON.parse(run.stdout), { ok: false, imported: 1, present: 0, unreadable: 1, failed: 0 })
  t.match(await get(fine), { user: 'fine' })
  t.equal(await client.exists(odd), 1, 'the source keeps it')
})

t.test('usage errors: exit 2, one line, no value echoed', async (t) => {
  const hostile = 'sess:\u0007; FLUSHALL'
  const cases: [string, string[], Record<string, string>, RegExp][] = [
    [
      'a source that is not redis',
      [],
      { SESSION_SHARDS_IMPORT_FROM: `mysql://shards:${IMPORTER_PASSWORD}@127.0.0.1/sessions` },
      /must be redis:\/\/user:pass@host:6379\/0/,
    ],
    ['a prefix with a control character', ['--prefix', hostile], {}, /--prefix must be at most/],
    ['a prefix past the bound', ['--prefix', 'p'.repeat(257)], {}, /--prefix must be at most 256/],
    [
      "another kind's option",
      ['--table', hostile],
      {},
      /--table is an option of import express-mysql-session/,
    ],
  ]
  for (const [what, args, env, message] of cases) {
    const run = await importCli(args, env)
    t.equal(run.code, 2, `${what}: exit 2`)
    t.match(run.stderr, message, what)
    t.match(run.stderr, /^session-shards import[^\n]*\n$/, `${what}: one line`)
    t.notOk(run.stderr.includes(hostile) || run.stderr.includes('ppppp'), `${what}: nothing echoed`)
    noSecrets(t, run)
  }
})

t.test('a source that fails: exit 1, said by its code, no password', async (t) => {
  const wrongPassword = await importCli([], {
    SESSION_SHARDS_IMPORT_FROM: `redis://importer:not-${encodeURIComponent(IMPORTER_PASSWORD)}@127.0.0.1:${redis.port}`,
  })
  t.equal(wrongPassword.code, 1)
  t.match(wrongPassword.stderr, /could not connect to the source \(WRONGPASS\)/)
  noSecrets(t, wrongPassword)
  const down = await importCli([], {
    SESSION_SHARDS_IMPORT_FROM: `redis://importer:${encodeURIComponent(IMPORTER_PASSWORD)}@127.0.0.1:1`,
  })
  t.equal(down.code, 1)
  t.match(down.stderr, /could not connect to the source \(ECONNREFUSED\)/)
  noSecrets(t, down)
})
