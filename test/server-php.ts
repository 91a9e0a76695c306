import t from 'tap'
import { isUtf8 } from 'node:buffer'
import { execFile, spawnSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { startTestCluster } from './helpers/cluster.js'
import { startManager } from './helpers/manager.js'
import { startServer } from './helpers/session-server.js'

const php = spawnSync('php', ['-r', 'echo PHP_VERSION;'], { encoding: 'utf8' })
if (php.error !== undefined || php.status !== 0) {
  t.plan(0, 'php is not installed (apt-get install php-cli): skipping the PHP session handler test')
  process.exit(0)
}

const SCRIPT = fileURLToPath(new URL('../examples/php/visits.php', import.meta.url))
const run = promisify(execFile)

/** What examples/php/visits.php prints. */
interface Visit {
  id: string
  before: Record<string, unknown>
  visits?: number
  csrf?: string
  destroyed?: boolean
}

const cluster = await startTestCluster(t, { stores: 3 })
const manager = await startManager(t, cluster)
const server = await startServer(t, manager)
const address = `tcp://127.0.0.1:${server.lineAddress.port}`

/** One request of the PHP page: its own session_start() through SessionShardsHandler. */
async function visit(id = '', action = '', env: Record<string, string> = {}): Promise<Visit> {
  const { stdout, stderr } = await run(
    'php',
    ['-d', 'display_errors=stderr', SCRIPT, address, id, action],
    {
      env: { ...process.env, ...env },
    },
  )
  if (stderr.trim() !== '') throw new Error(`php wrote to stderr: ${stderr}`)
  return JSON.parse(stdout) as Visit
}

t.comment(`PHP ${php.stdout}`)

t.test('PHP reads what Node wrote; Node reads what PHP wrote', async (t) => {
  const written = {
    user: 'ada',
    note: 'two\nlines',
    unicode: 'héllo wörld ✓ 日本',
    cart: [{ sku: 'a-1', qty: 2 }],
    admin: true,
  }
  const id = await manager.createSession(written)

  const first = await visit(id)
  t.equal(first.id, id, 'PHP kept the id (it exists, so strict mode accepts it)')
  t.same(first.before, written, "session_start() saw the Node app's data")
  t.equal(first.visits, 1)

  const stored = (await manager.readSession(id)) as Record<string, unknown>
  t.match(
    stored,
    { ...written, visits: 1, last_visit: { php: String, at: Number } },
    'the Node app sees what PHP wrote',
  )
  // 16 random bytes are valid UTF-8 about once in 10,000 visits (a clean-clone CI run met one):
  // then they are stored as text, as any PHP string that is valid UTF-8 is.
  const csrf = Buffer.from(first.csrf!, 'hex')
  t.same(
    stored['csrf'],
    isUtf8(csrf) ? csrf.toString('utf8') : { $binary: csrf.toString('base64') },
    "PHP's binary string, byte for byte",
  )

  await manager.putAll(id, { visits: 41, user: 'grace' })
  await manager.removeValue(id, 'note')
  const second = await visit(id)
  t.equal(second.visits, 42, 'PHP counted on from what Node set')
  t.equal(second.before['user'], 'grace')
  t.notOk('note' in second.before, 'a key Node removed is gone for PHP')
  t.equal(second.csrf, first.csrf, 'the binary value came back to PHP unchanged')

  const afterPhp = (await manager.readSession(id)) as Record<string, unknown>
  t.notOk('note' in afterPhp, 'and PHP did not bring it back')
  t.equal(afterPhp['visits'], 42)
})

t.test(
  'new sessions from session_start(): ids from the server, strict mode, session_destroy()',
  async (t) => {
    const fresh = await visit()
    t.match(fresh.id, /^[A-Za-z0-9_-]{32}$/, "the server made the id (the handler's create_sid)")
    t.same(fresh.before, {})
    t.match(
      await manager.readSession(fresh.id),
      { visits: 1 },
      'Node reads the session PHP created',
    )

    const unknown = 'unknownsession0123456789abcdef'
    const adopted = await visit(unknown)
    t.not(adopted.id, unknown, 'an id no store knows is refused and replaced (validateId)')
    t.equal(await manager.readSession(unknown), null)

    const gone = await visit(fresh.id, 'logout')
    t.equal(gone.destroyed, true)
    t.equal(await manager.readSession(fresh.id), null, 'Node sees session_destroy()')
  },
)

t.test(
  'concurrent PHP requests on one session lose no update (open w holds the lock)',
  async (t) => {
    const id = await manager.createSession({ visits: 0 })
    const requests = 12
    const results = await Promise.all(Array.from({ length: requests }, () => visit(id)))
    t.same(
      results.map((result) => result.visits).sort((a, b) => (a ?? 0) - (b ?? 0)),
      Array.from({ length: requests }, (_, i) => i + 1),
      'each request saw the one before it',
    )
    t.match(await manager.readSession(id), { visits: requests })
  },
)

t.test(
  'with signed ids: the handler gets its ids from the server, so they carry the signature',
  async (t) => {
    const signing = await startManager(t, cluster, {
      secrets: ['a-secret-of-at-least-32-characters!!'],
    })
    const signed = await startServer(t, signing)
    const signedAddress = `tcp://127.0.0.1:${signed.lineAddress.port}`
    const { stdout } = await run('php', [SCRIPT, signedAddress])
    const first = JSON.parse(stdout) as Visit
    t.match(first.id, /^[A-Za-z0-9_-]{32}\.[A-Za-z0-9_-]{43}$/, 'a signed id')
    t.match(await signing.readSession(first.id), { visits: 1 })
    const again = JSON.parse((await run('php', [SCRIPT, signedAddress, first.id])).stdout) as Visit
    t.equal(again.visits, 2, 'and PHP keeps using it')
    const unsigned = 'unsignedsession0123456789abcdef'
    const replaced = JSON.parse(
      (await run('php', [SCRIPT, signedAddress, unsigned])).stdout,
    ) as Visit
    t.match(replaced.id, /\./, 'an unsigned id from a client is replaced by a signed one')
    t.equal(replaced.visits, 1)
  },
)

t.test('with a token', async (t) => {
  const token = 'php-token-0123456789abcdef'
  const guarded = await startServer(t, manager, { token })
  const guardedAddress = `tcp://127.0.0.1:${guarded.lineAddress.port}`
  const id = await manager.createSession({ user: 'ada' })
  const { stdout } = await run('php', [SCRIPT, guardedAddress, id], {
    env: { ...process.env, SESSION_SHARDS_SERVER_TOKEN: token },
  })
  t.equal((JSON.parse(stdout) as Visit).visits, 1)
  const refused = await run('php', [SCRIPT, guardedAddress, id], {
    env: { ...process.env, SESSION_SHARDS_SERVER_TOKEN: 'wrong-token-0123456789abc' },
  }).catch((error: { stdout: string; stderr: string }) => error)
  t.match(
    `${refused.stdout}${refused.stderr}`,
    /UNAUTHORIZED|connection was lost/,
    'a wrong token fails session_start()',
  )
})
