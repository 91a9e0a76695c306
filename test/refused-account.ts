import { mkdtemp, rm } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { createConnection } from 'mysql2/promise'
import t from 'tap'
import { createSessionManager } from '../lib/index.js'
import { errorSummary } from '../lib/errors.js'
import { runCli } from './helpers/cli.js'
import { startTestCluster } from './helpers/cluster.js'
import { closeAtEnd } from './helpers/teardown.js'

// A server's refusals name the account: "Access denied for user 'name'@'host'", "User 'name'
// has exceeded the 'max_user_connections' resource". docs/security.md: driver errors are
// summarized without it (a user name is part of the credentials), by the library and the CLI.

const cluster = await startTestCluster(t, { stores: 1 })
const localTest = cluster.canCrash ? t.test.bind(t) : t.skip.bind(t)
const USER = 'ops_bob_prod'
const PASSWORD = 'bob-password-12345'

localTest('a refusal for too many connections does not print the user name', async (t) => {
  const store = cluster.stores[0]!
  const { database } = store.config
  await store.query(`DROP USER IF EXISTS '${USER}'@'%'`)
  await store.query(
    `CREATE USER '${USER}'@'%' IDENTIFIED BY '${PASSWORD}' WITH MAX_USER_CONNECTIONS 1`,
  )
  await store.query(`GRANT ALL PRIVILEGES ON \`${database}\`.* TO '${USER}'@'%'`)
  t.teardown(() => store.query(`DROP USER IF EXISTS '${USER}'@'%'`))
  // Applies the schema with the harness user (the tables are shared).
  const setup = createSessionManager({ stores: cluster.storeConfigs() })
  closeAtEnd(t, 'setup manager', () => setup.close())
  await setup.applySchema()
  // The account's one connection, held elsewhere (another process of the app, say).
  const holder = await createConnection({
    host: store.host,
    port: store.port,
    user: USER,
    password: PASSWORD,
    database,
  })
  t.teardown(() => holder.end())

  const uri = `mysql://${USER}:${encodeURIComponent(PASSWORD)}@${store.host}:${store.port}/${database}`
  const cwd = await mkdtemp(path.join(os.tmpdir(), 'session-shards-refused-account-'))
  t.teardown(() => rm(cwd, { recursive: true, force: true }))
  for (const args of [['status'], ['status', '--json'], ['schema', 'apply']]) {
    const run = await runCli(args, { cwd, env: { SESSION_SHARDS_STORES: `${store.id}=${uri}` } })
    const printed = run.stdout + run.stderr
    t.equal(run.code, 1, `${args.join(' ')}: exit 1`)
    t.match(printed, /max_user_connections/, `${args.join(' ')}: says why`)
    t.notMatch(printed, USER, `${args.join(' ')}: the user name is not printed`)
  }

  // The library's own messages too.
  const manager = createSessionManager({
    stores: [{ id: store.id, uri }],
    connectTimeoutMillis: 1000,
    queryTimeoutMillis: 1000,
  })
  closeAtEnd(t, 'a session manager', () => manager.close())
  const error = await manager.createSession({ a: 1 }).then(
    () => undefined,
    (e: unknown) => e as Error,
  )
  t.ok(error, 'the write fails')
  t.notMatch(String(error?.message), USER, 'the error message does not name the user')
})

t.test('errorSummary hides the account in every form a refusal names it', async (t) => {
  const summary = (code: string, message: string): string =>
    errorSummary(Object.assign(new Error(message), { code }))
  const cases: [string, string, string][] = [
    [
      'ER_ACCESS_DENIED_ERROR',
      "Access denied for user 'ops_bob_prod'@'10.0.0.7' (using password: YES)",
      "ER_ACCESS_DENIED_ERROR Access denied for user '…'@'…' (using password: YES)",
    ],
    [
      'ER_DBACCESS_DENIED_ERROR',
      "Access denied for user 'ops_bob_prod'@'%' to database 'sessions_db'",
      "ER_DBACCESS_DENIED_ERROR Access denied for user '…'@'…' to database 'sessions_db'",
    ],
    [
      'ER_TABLEACCESS_DENIED_ERROR',
      "SELECT command denied to user 'ops_bob_prod'@'localhost' for table 'sessions'",
      "ER_TABLEACCESS_DENIED_ERROR SELECT command denied to user '…'@'…' for table 'sessions'",
    ],
    [
      'ER_USER_LIMIT_REACHED',
      "User 'ops_bob_prod' has exceeded the 'max_user_connections' resource (current value: 1)",
      "ER_USER_LIMIT_REACHED User '…' has exceeded the 'max_user_connections' resource (current value: 1)",
    ],
    [
      'ER_TOO_MANY_USER_CONNECTIONS',
      "User ops_bob_prod already has more than 'max_user_connections' active connections",
      "ER_TOO_MANY_USER_CONNECTIONS User … already has more than 'max_user_connections' active connections",
    ],
    [
      'ER_ACCESS_DENIED_ERROR',
      "Access denied for user 'it''s me'@'h' (using password: NO)",
      "ER_ACCESS_DENIED_ERROR Access denied for user '…'@'…' (using password: NO)",
    ],
    [
      'ER_NO_SUCH_TABLE',
      "Table 'db.sessions' doesn't exist",
      "ER_NO_SUCH_TABLE Table 'db.sessions' doesn't exist",
    ],
  ]
  for (const [code, message, expected] of cases) t.equal(summary(code, message), expected, code)
})
