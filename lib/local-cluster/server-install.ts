/**
 * Makes sure a MySQL-protocol server binary is there before the demo or the tests start stores:
 * installs Debian's `mariadb-server` when it can, else says the one command to run.
 */
import { spawn } from 'node:child_process'
import { accessSync, constants } from 'node:fs'
import path from 'node:path'
import { ServerBinaryNotFoundError } from './errors.js'
import type { ServerBinary } from './server-binary.js'
import { findServerBinary, serverSearchDirs } from './server-binary.js'

/** The package that provides `mariadbd` on Debian and Ubuntu. */
const SERVER_PACKAGE = 'mariadb-server'
/** The one command a user without root (or without apt-get) is told to run. */
export const INSTALL_COMMAND = `sudo apt-get install -y ${SERVER_PACKAGE}`
/** apt-get update and install together take well under this on a reachable mirror. */
const APT_TIMEOUT_MILLIS = 15 * 60_000

/** What to do about the server binary: nothing, install it, or tell the user how. */
export type ServerBinaryPlan = 'ready' | 'install' | 'tell'

/** The decision alone: install only as root with apt-get at hand (never sudo on one's own). */
export function serverBinaryPlan(
  found: boolean,
  isRoot: boolean,
  hasAptGet: boolean,
): ServerBinaryPlan {
  if (found) return 'ready'
  return isRoot && hasAptGet ? 'install' : 'tell'
}

/** Where to look, who is running, and where progress goes; the defaults are this process's. */
export interface EnsureServerBinaryOptions {
  /** Directories searched for `mariadbd`/`mysqld`. @default PATH and the usual sbin directories */
  dirs?: readonly string[]
  /** The environment `apt-get` is looked up in (its `PATH`) and runs with. @default process.env */
  env?: NodeJS.ProcessEnv
  /** Whether this process may install packages. @default running as root */
  isRoot?: boolean
  /** Receives one line per step (what is installed, and why). */
  log: (line: string) => void
}

/**
 * The server binary the local stores will run: the one found, or, when there is none, Debian's
 * `mariadb-server` installed with `apt-get` (only as root; it says so first). Otherwise throws
 * {@link ServerBinaryNotFoundError} whose message is the command to run.
 */
export async function ensureServerBinary(
  options: EnsureServerBinaryOptions,
): Promise<ServerBinary> {
  const dirs = options.dirs ?? serverSearchDirs()
  const env = options.env ?? process.env
  const isRoot = options.isRoot ?? (typeof process.getuid === 'function' && process.getuid() === 0)
  const found = findServerBinary(dirs)
  if (found !== null) return found
  const aptGet = findOnPath('apt-get', env)
  if (serverBinaryPlan(false, isRoot, aptGet !== null) === 'tell') throw notFound()
  options.log(
    `No MariaDB/MySQL server binary (mariadbd, mysqld) found: installing Debian's ${SERVER_PACKAGE} with apt-get.`,
  )
  const aptEnv = { ...env, DEBIAN_FRONTEND: 'noninteractive' }
  await run(aptGet as string, ['update', '-qq'], aptEnv)
  await run(aptGet as string, ['install', '-y', '-qq', SERVER_PACKAGE], aptEnv)
  const installed = findServerBinary(dirs)
  if (installed === null) throw notFound()
  options.log(`Installed: ${installed.version}`)
  return installed
}

function notFound(): ServerBinaryNotFoundError {
  return new ServerBinaryNotFoundError(
    `No MariaDB/MySQL server binary (mariadbd, mysqld) was found, and it cannot be installed from here (that needs root and apt-get). Install it with: ${INSTALL_COMMAND}`,
  )
}

function findOnPath(name: string, env: NodeJS.ProcessEnv): string | null {
  for (const dir of (env['PATH'] ?? '').split(path.delimiter)) {
    if (dir === '') continue
    const candidate = path.join(dir, name)
    try {
      accessSync(candidate, constants.X_OK)
      return candidate
    } catch {
      // not here
    }
  }
  return null
}

/** Runs a command to its end; its output is kept (bounded) for the error should it fail. */
function run(command: string, args: string[], env: NodeJS.ProcessEnv): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { env, stdio: ['ignore', 'pipe', 'pipe'] })
    let output = ''
    const keep = (chunk: Buffer): void => {
      output = (output + chunk.toString('utf8')).slice(-4000)
    }
    child.stdout.on('data', keep)
    child.stderr.on('data', keep)
    const timer = setTimeout(() => child.kill('SIGTERM'), APT_TIMEOUT_MILLIS)
    child.once('error', (error) => {
      clearTimeout(timer)
      reject(error)
    })
    child.once('close', (code, signal) => {
      clearTimeout(timer)
      if (code === 0) resolve()
      else
        reject(
          new ServerBinaryNotFoundError(
            `\`apt-get ${args.join(' ')}\` failed (${signal ?? `exit ${code}`}); install the server with: ${INSTALL_COMMAND}\n${output.trim()}`,
          ),
        )
    })
  })
}
