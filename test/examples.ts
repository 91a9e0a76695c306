// The runnable examples of the README (examples/express and examples/fastify) as a user runs
// them: a process of their own, configured by SESSION_SHARDS_STORES with real stores, visited
// by a browser stand-in. Views count, a login moves the session to a new id (the old one is
// worth nothing), a logout removes it from the stores for good, and Ctrl-C ends the process.
import { spawn, type ChildProcess } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { freePort } from '../lib/local-cluster/free-port.js'
import { startTestCluster } from './helpers/cluster.js'
import { finished } from './helpers/cli.js'
import { CookieClient } from './helpers/http-client.js'
import { startManager } from './helpers/manager.js'
import { waitFor } from './helpers/wait.js'

const cluster = await startTestCluster(t, { stores: 3 })
const storesVariable = cluster.stores.map((store) => `${store.id}=${store.uri}`).join(',')
const TSX = import.meta.resolve('tsx')

/** Each example, and the name of the cookie its framework keeps the session id in. */
const EXAMPLES = [
  { name: 'express', cookie: 'connect.sid' },
  { name: 'fastify', cookie: 'sessionId' },
] as const

/** The session id a signed session cookie carries (express-session prefixes it with `s:`). */
function sessionIdOf(cookie: string | undefined): string {
  const value = decodeURIComponent(cookie ?? '').replace(/^s:/, '')
  return value.slice(0, value.lastIndexOf('.'))
}

/** What the example's page says about the visitor. */
function page(text: string): string {
  return /<p>(.*?)<\/p>/.exec(text)?.[1] ?? `(no page: ${text.slice(0, 200)})`
}

for (const { name, cookie } of EXAMPLES) {
  t.test(
    `examples/${name}/server.ts: count, log in under a new id, log out for good`,
    async (t) => {
      const manager = await startManager(t, cluster, { copies: 2 })
      const { child, exited, home } = await startExample(name)
      t.teardown(() => stop(child))

      const browser = new CookieClient()
      t.equal(page((await browser.get(home)).text), 'Logged in: nobody. Views: 1.')
      t.equal(page((await browser.get(home)).text), 'Logged in: nobody. Views: 2.', 'counted')
      const beforeLogin = browser.copy()
      const anonymousId = sessionIdOf(browser.cookie(cookie))
      t.match(await manager.readSession(anonymousId), { views: 2 }, 'in the stores')

      const login = await browser.postForm(`${home}login`, { user: '<b>ada</b>' })
      t.equal(login.status, 302, 'login redirects')
      t.equal(login.location, '/')
      const userId = sessionIdOf(browser.cookie(cookie))
      t.not(userId, anonymousId, 'a new session id at login')
      t.equal(
        page((await browser.get(home)).text),
        'Logged in: &#60;b&#62;ada&#60;/b&#62;. Views: 1.',
        'logged in, the name escaped',
      )
      t.match(await manager.readSession(userId), { user: '<b>ada</b>', views: 1 })
      t.equal(await manager.readSession(anonymousId), null, 'the id from before login is gone')
      t.match(
        page((await beforeLogin.get(home)).text),
        /^Logged in: nobody\. Views: 1\.$/,
        'the cookie from before login is worth nothing',
      )

      const logout = await browser.postForm(`${home}logout`, {})
      t.equal(logout.status, 302, 'logout redirects')
      t.equal(await manager.readSession(userId), null, 'logged out: gone from the stores')
      const replayed = browser.copy()
      t.match(
        page((await replayed.get(home)).text),
        /^Logged in: nobody\. Views: 1\.$/,
        'the logged-out cookie replayed: nobody',
      )
      t.equal(await manager.readSession(userId), null, 'and the session stays gone')

      child.kill('SIGINT')
      const end = await exited
      t.same({ code: end.code, signal: end.signal }, { code: 0, signal: null }, 'Ctrl-C ends it')
    },
  )
}

/**
 * Starts an example on a port that was free a moment ago, and waits until it answers; again on
 * another port should another process have taken that one first.
 */
async function startExample(
  name: string,
): Promise<{ child: ChildProcess; exited: ReturnType<typeof finished>; home: string }> {
  const file = fileURLToPath(new URL(`../examples/${name}/server.ts`, import.meta.url))
  for (let attempt = 1; ; attempt++) {
    const port = await freePort()
    const child = spawn(process.execPath, ['--import', TSX, file], {
      env: {
        ...process.env,
        SESSION_SHARDS_STORES: storesVariable,
        PORT: String(port),
        COOKIE_SECRET: 'a cookie secret of more than 32 characters',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    const exited = finished(child)
    const home = `http://localhost:${port}/`
    await waitFor(
      'the example to answer, or to exit',
      () =>
        child.exitCode !== null ||
        fetch(`${home}nothing-here`).then(
          (response) => response.status === 404,
          () => false,
        ),
      30_000,
    )
    if (child.exitCode === null) return { child, exited, home }
    const { stdout, stderr } = await exited
    if (attempt === 3 || !/EADDRINUSE/.test(stdout + stderr)) {
      throw new Error(`examples/${name} exited with ${child.exitCode}: ${stderr.slice(0, 500)}`)
    }
  }
}

/** Stops the example if the test did not (a failed assertion, a timeout). */
async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return
  const gone = new Promise((resolve) => child.once('exit', resolve))
  child.kill('SIGKILL')
  await gone
}
