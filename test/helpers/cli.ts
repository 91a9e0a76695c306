import { spawn, type ChildProcess } from 'node:child_process'
import { execFile } from 'node:child_process'
import { readdirSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'

/** The CLI's entry point in source, run through tsx like `npm run cli`. */
export const CLI_MAIN = fileURLToPath(new URL('../../lib/cli/main.ts', import.meta.url))
/** The compiled entry point, the package's `bin`. */
const BUILT_MAIN = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url))
/** tsx's loader by absolute URL, so the CLI also runs from a working directory outside the repo. */
const TSX = import.meta.resolve('tsx')

/**
 * How the tests start the CLI: the compiled `bin` when `dist/` was built after the last change
 * to `lib/` (`npm test` builds first), else the source through tsx. Both run the same code; the
 * compiled one starts in about a third of the time (0.4 against 1.2 s here), which the tests'
 * dozens of CLI runs add up. A `dist/` older than the source is never used: a test run right
 * after an edit, without a build, tests the edit.
 */
const CLI_COMMAND: readonly string[] = builtIsCurrent() ? [BUILT_MAIN] : ['--import', TSX, CLI_MAIN]

/** Whether the compiled CLI is newer than every source file (tsc rewrites all of dist/). */
function builtIsCurrent(): boolean {
  const built = statSync(BUILT_MAIN, { throwIfNoEntry: false })
  if (built === undefined) return false
  const lib = fileURLToPath(new URL('../../lib', import.meta.url))
  return readdirSync(lib, { recursive: true, encoding: 'utf8' }).every(
    (name) => statSync(join(lib, name)).mtimeMs <= built.mtimeMs,
  )
}

/** What one CLI run printed and how it ended. */
export interface CliRun {
  code: number | null
  signal: NodeJS.Signals | null
  stdout: string
  stderr: string
}

export interface CliOptions {
  /** Added to the environment; SESSION_SHARDS_* variables of the test's own environment are dropped. */
  env?: Record<string, string>
  cwd?: string
}

function environment(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env = { ...process.env }
  for (const name of Object.keys(env)) if (name.startsWith('SESSION_SHARDS_')) delete env[name]
  delete env['NODE_DEBUG']
  return { ...env, ...extra }
}

/** Starts `session-shards <args>` with stdout and stderr piped (so no progress bars). */
export function spawnCli(args: readonly string[], options: CliOptions = {}): ChildProcess {
  return spawn(process.execPath, [...CLI_COMMAND, ...args], {
    cwd: options.cwd ?? process.cwd(),
    env: environment(options.env),
    stdio: ['ignore', 'pipe', 'pipe'],
  })
}

/** Runs `session-shards <args>` to its end. */
export function runCli(args: readonly string[], options: CliOptions = {}): Promise<CliRun> {
  return finished(spawnCli(args, options))
}

/** Collects a child's output until it exits. */
export function finished(child: ChildProcess): Promise<CliRun> {
  let stdout = ''
  let stderr = ''
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk))
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk))
  return new Promise((resolve, reject) => {
    child.once('error', reject)
    child.once('close', (code, signal) => resolve({ code, signal, stdout, stderr }))
  })
}

/** Server processes (`mariadbd`/`mysqld`) started by a local cluster, by pid: their command lines. */
export async function clusterServers(): Promise<Map<number, string>> {
  const { stdout } = await promisify(execFile)('ps', ['-eo', 'pid=,args='])
  const servers = new Map<number, string>()
  for (const line of stdout.split('\n')) {
    const match = /^\s*(\d+)\s+(.*)$/.exec(line)
    if (match === null) continue
    const args = match[2] ?? ''
    if (/(?:mariadbd|mysqld)\b/.test(args) && args.includes('session-shards-cluster')) {
      servers.set(Number(match[1]), args)
    }
  }
  return servers
}
