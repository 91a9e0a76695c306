import t from 'tap'
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { findServerBinary } from '../lib/local-cluster/server-binary.js'
import {
  ensureServerBinary,
  INSTALL_COMMAND,
  serverBinaryPlan,
} from '../lib/local-cluster/server-install.js'

// The check `npm test` and the demo run first: with no mariadbd/mysqld where it looks, root
// with apt-get installs Debian's mariadb-server (saying so); anyone else is told the command.
t.test('the plan, from a table', async (t) => {
  const cases: [boolean, boolean, boolean, string][] = [
    [true, false, false, 'ready'],
    [true, true, true, 'ready'],
    [false, true, true, 'install'],
    [false, true, false, 'tell'],
    [false, false, true, 'tell'],
    [false, false, false, 'tell'],
  ]
  for (const [found, root, apt, plan] of cases) {
    t.equal(serverBinaryPlan(found, root, apt), plan, `found ${found}, root ${root}, apt ${apt}`)
  }
})

const real = findServerBinary()
const scratch = await mkdtemp(path.join(os.tmpdir(), 'session-shards-install-'))
t.teardown(() => rm(scratch, { recursive: true, force: true }))

/** A directory on PATH with an apt-get that records its calls and, on install, links `binary` into `into`. */
async function fakeAptGet(name: string, binary: string, into: string): Promise<string> {
  const dir = path.join(scratch, name)
  await mkdir(dir)
  const script = `#!/bin/sh
echo "$DEBIAN_FRONTEND $*" >> "${dir}/calls"
if [ "$1" = install ]; then /bin/ln -s "${binary}" "${into}/mariadbd"; fi
`
  await writeFile(path.join(dir, 'apt-get'), script)
  await chmod(path.join(dir, 'apt-get'), 0o755)
  return dir
}

t.test('not root, or no apt-get: stops with the one command to run', async (t) => {
  const empty = path.join(scratch, 'empty')
  await mkdir(empty)
  const logged: string[] = []
  for (const [isRoot, env] of [
    [false, { PATH: await fakeAptGet('apt-unused', '/nonexistent', empty) }],
    [true, { PATH: empty }],
  ] as const) {
    await t.rejects(
      ensureServerBinary({ dirs: [empty], env, isRoot, log: (l) => logged.push(l) }),
      {
        code: 'SERVER_BINARY_NOT_FOUND',
        message: new RegExp(INSTALL_COMMAND.replace(/[-]/g, '\\-')),
      },
    )
  }
  t.same(logged, [], 'nothing installed, nothing said but the error')
  await t.rejects(readFile(path.join(scratch, 'apt-unused', 'calls')), 'apt-get never ran')
})

t.test(
  'root with apt-get: installs mariadb-server, says so, and finds it',
  { skip: real === null ? 'no server binary to stand in for the installed one' : false },
  async (t) => {
    const hidden = path.join(scratch, 'hidden')
    await mkdir(hidden)
    const apt = await fakeAptGet('apt', real!.path, hidden)
    const logged: string[] = []
    const binary = await ensureServerBinary({
      dirs: [hidden],
      env: { PATH: apt },
      isRoot: true,
      log: (line) => logged.push(line),
    })
    t.equal(binary.path, path.join(hidden, 'mariadbd'), 'the installed binary')
    t.equal(binary.version.split(' Ver ')[1], real!.version.split(' Ver ')[1], 'the same server')
    t.same(
      (await readFile(path.join(apt, 'calls'), 'utf8')).trim().split('\n'),
      ['noninteractive update -qq', 'noninteractive install -y -qq mariadb-server'],
      'apt-get update, then install, non-interactive',
    )
    t.match(logged[0], /installing Debian's mariadb-server with apt-get/)
    t.match(logged[1], /^Installed: /)

    const again = await ensureServerBinary({
      dirs: [hidden],
      env: { PATH: apt },
      isRoot: true,
      log: (l) => logged.push(l),
    })
    t.equal(again.path, binary.path, 'found now: nothing more to install')
    t.equal(logged.length, 2)
  },
)
