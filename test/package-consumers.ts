import t from 'tap'
import { execFile } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdir, mkdtemp, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { startTestCluster } from './helpers/cluster.js'

// The package as users get it: `npm pack`, installed into an empty project, then required from
// CommonJS (most express-session apps) against real stores, and compiled as a TypeScript
// consumer under moduleResolution node16 and bundler. Reads the build in dist/ (`npm test`
// builds first).
const run = promisify(execFile)
const ROOT = fileURLToPath(new URL('..', import.meta.url))
const ENTRY_POINTS = ['', '/express', '/fastify', '/server', '/local-cluster']

if (!existsSync(path.join(ROOT, 'dist/index.js'))) {
  t.fail('dist/ is missing: run `npm run build` (npm test does) before this test')
  process.exit(1)
}

const cluster = await startTestCluster(t, { stores: 3 })
const scratch = await mkdtemp(path.join(os.tmpdir(), 'session-shards-consumer-'))
t.teardown(() => rm(scratch, { recursive: true, force: true }))

/** The environment of npm and node in the scratch project: none of `npm test`'s own npm_* settings. */
function cleanEnvironment(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {}
  for (const [name, value] of Object.entries(process.env)) {
    if (!name.startsWith('npm_') && !name.startsWith('SESSION_SHARDS_')) env[name] = value
  }
  delete env['NODE_OPTIONS']
  return env
}

async function installedVersion(name: string): Promise<string> {
  const manifest = path.join(ROOT, 'node_modules', name, 'package.json')
  return (JSON.parse(await readFile(manifest, 'utf8')) as { version: string }).version
}

t.before(async () => {
  const packed = await run('npm', ['pack', '--silent', '--pack-destination', scratch], {
    cwd: ROOT,
    env: cleanEnvironment(),
  })
  const tarball = path.join(scratch, packed.stdout.trim().split('\n').pop() as string)
  const app = path.join(scratch, 'app')
  await mkdir(app)
  await writeFile(
    path.join(app, 'package.json'),
    JSON.stringify({ name: 'scratch-app', version: '1.0.0', private: true }),
  )
  // The frameworks are the app's own (optional peers); the cache `npm ci` filled serves them.
  const peers = [
    `express-session@${await installedVersion('express-session')}`,
    `@fastify/session@${await installedVersion('@fastify/session')}`,
    `@fastify/cookie@${await installedVersion('@fastify/cookie')}`,
    `fastify@${await installedVersion('fastify')}`,
  ]
  await run(
    'npm',
    ['install', '--prefer-offline', '--no-audit', '--no-fund', '--silent', tarball, ...peers],
    { cwd: app, env: cleanEnvironment(), timeout: 120_000 },
  )
  // Type declarations the compiled consumers need (node, express-session), from the checkout.
  for (const name of await readdir(path.join(ROOT, 'node_modules/@types'))) {
    const target = path.join(app, 'node_modules/@types', name)
    await mkdir(path.dirname(target), { recursive: true })
    if (!existsSync(target)) await symlink(path.join(ROOT, 'node_modules/@types', name), target)
  }
})

t.test('require() loads every entry point from a CommonJS project', async (t) => {
  const app = path.join(scratch, 'app')
  await writeFile(
    path.join(app, 'consumer.cjs'),
    `const entries = ${JSON.stringify(ENTRY_POINTS)}
const loaded = {}
for (const entry of entries) loaded[entry] = Object.keys(require('session-shards' + entry)).sort()
const { createSessionManager } = require('session-shards')
const { SessionShardsStore } = require('session-shards/express')
async function main() {
  const manager = createSessionManager({ stores: JSON.parse(process.env.STORES), copies: 2, table: 'cjs_consumer' })
  await manager.applySchema()
  const store = new SessionShardsStore({ manager })
  const cookie = { expires: new Date(Date.now() + 60000), originalMaxAge: 60000, path: '/' }
  await store.set('a-legacy-id', { user: 'ada', cookie })
  const session = await store.get('a-legacy-id')
  await manager.close()
  console.log(JSON.stringify({ loaded, user: session.user }))
}
main().catch((error) => { console.error(error); process.exit(1) })
`,
  )
  const { stdout } = await run(process.execPath, ['consumer.cjs'], {
    cwd: app,
    env: { ...cleanEnvironment(), STORES: JSON.stringify(cluster.storeConfigs()) },
  })
  const result = JSON.parse(stdout) as { loaded: Record<string, string[]>; user: string }
  t.ok(result.loaded['']?.includes('createSessionManager'), 'session-shards')
  t.ok(result.loaded['/express']?.includes('SessionShardsStore'), 'session-shards/express')
  t.ok(result.loaded['/fastify']?.includes('SessionShardsStore'), 'session-shards/fastify')
  t.ok(result.loaded['/server']?.includes('startSessionServer'), 'session-shards/server')
  t.ok(result.loaded['/local-cluster']?.length, 'session-shards/local-cluster')
  t.equal(result.user, 'ada', 'a session written and read through the required store')
})

t.test(
  'import connect-redis without the redis package: says how to add it, asks no store',
  async (t) => {
    const app = path.join(scratch, 'app')
    const cli = path.join(app, 'node_modules/session-shards/dist/cli/main.js')
    /** Statements every store has been sent (MariaDB's Questions), summed. */
    const questions = async (): Promise<number> => {
      const counts = await Promise.all(
        cluster.stores.map((store) =>
          store.query<{ Value: string }>("SHOW GLOBAL STATUS LIKE 'Questions'"),
        ),
      )
      return counts.reduce((sum, [row]) => sum + Number(row?.Value), 0)
    }
    // What measuring costs by itself (its connections' own statements), to leave out.
    const calibration = await questions()
    const before = await questions()
    const measuring = before - calibration
    const failed = await run(process.execPath, [cli, 'import', 'connect-redis'], {
      cwd: app,
      env: {
        ...cleanEnvironment(),
        SESSION_SHARDS_STORES: cluster.stores.map((store) => `${store.id}=${store.uri}`).join(','),
        SESSION_SHARDS_IMPORT_FROM: 'redis://127.0.0.1:1/0',
      },
    }).then(
      () => undefined,
      (error: { code?: number; stderr?: string }) => error,
    )
    t.equal(failed?.code, 2, 'a usage error: exit 2')
    t.equal(
      failed?.stderr,
      'session-shards import: import connect-redis needs the redis package: npm install redis\n',
    )
    t.equal((await questions()) - before - measuring, 0, 'no statement sent to the stores')
  },
)

t.test('a TypeScript consumer compiles under node16 and bundler resolution', async (t) => {
  const app = path.join(scratch, 'app')
  const source = `import { createSessionManager, type SessionManagerOptions } from 'session-shards'
import { SessionShardsStore as ExpressStore } from 'session-shards/express'
import { SessionShardsStore as FastifyStore } from 'session-shards/fastify'
import { startSessionServer } from 'session-shards/server'
import * as localCluster from 'session-shards/local-cluster'

const options: SessionManagerOptions = { stores: [{ id: 'a', uri: 'mysql://localhost/s' }] }
const manager = createSessionManager(options)
const stores = [new ExpressStore({ manager }), new FastifyStore({ manager })]
const key: string = manager.sessionKey('apple')
export { key, localCluster, startSessionServer, stores }
`
  const wrong = `import { createSessionManager } from 'session-shards'
createSessionManager({ stores: 'not a list' })
`
  const tsc = path.join(ROOT, 'node_modules/typescript/bin/tsc')
  const settings = {
    node16: ['--module', 'node16', '--moduleResolution', 'node16'],
    bundler: ['--module', 'esnext', '--moduleResolution', 'bundler'],
  }
  const common = ['--noEmit', '--strict', '--target', 'es2022', '--types', 'node']
  for (const [name, flags] of Object.entries(settings)) {
    // .mts: an ES module under node16 whatever the project's type. Both files in one run of
    // tsc (each run checks every declaration file the consumer pulls in, @types/node's
    // included): the consumer must compile, and the wrong one must fail, alone.
    const file = `consumer-${name}.mts`
    const wrongFile = `wrong-${name}.mts`
    await writeFile(path.join(app, file), source)
    await writeFile(path.join(app, wrongFile), wrong)
    const errors = await run(process.execPath, [tsc, ...common, ...flags, file, wrongFile], {
      cwd: app,
    }).then(
      () => [],
      (error: { stdout: string }) =>
        error.stdout.split('\n').filter((line) => /error TS/.test(line)),
    )
    t.same(
      errors.filter((line) => !line.startsWith(wrongFile)),
      [],
      `${name}: the consumer compiles`,
    )
    t.match(
      errors.filter((line) => line.startsWith(wrongFile)).join('\n'),
      /TS2322/,
      `${name}: the types are really checked (a wrong option fails)`,
    )
  }
})
