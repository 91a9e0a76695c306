/** Finds the mariadbd or mysqld binary and what it is. */
import { accessSync, constants } from 'node:fs'
import { spawnSync } from 'node:child_process'
import path from 'node:path'

/** Which server family a binary belongs to; they differ in how a data directory is initialised. */
export type ServerFlavor = 'mariadb' | 'mysql'

/**
 * A MySQL-protocol server binary found on this machine.
 *
 * @example
 * ```ts
 * const binary = findServerBinary()
 * if (binary === null) console.log('install mariadb-server')
 * else console.log(binary.path, binary.flavor, binary.version)
 * ```
 */
export interface ServerBinary {
  /** Absolute path of `mariadbd` or `mysqld`. */
  readonly path: string
  /** `'mariadb'` when `--version` mentions MariaDB, `'mysql'` otherwise. */
  readonly flavor: ServerFlavor
  /** The first line of `--version`, e.g. `mariadbd  Ver 10.11.19-MariaDB-0+deb12u1 for debian-linux-gnu on x86_64`. */
  readonly version: string
}

const SERVER_NAMES = ['mariadbd', 'mysqld'] as const
const EXTRA_DIRS = ['/usr/sbin', '/usr/libexec', '/usr/local/mysql/bin']

function isExecutable(file: string): boolean {
  try {
    accessSync(file, constants.X_OK)
    return true
  } catch {
    return false
  }
}

/** The directories searched by default: `PATH`, then where server packages put their binaries. */
export function serverSearchDirs(): string[] {
  const fromPath = (process.env['PATH'] ?? '').split(path.delimiter).filter((dir) => dir !== '')
  return [...new Set([...fromPath, ...EXTRA_DIRS])]
}

function findExecutable(names: readonly string[], dirs: readonly string[]): string | null {
  for (const name of names) {
    for (const dir of dirs) {
      const candidate = path.join(dir, name)
      if (isExecutable(candidate)) return candidate
    }
  }
  return null
}

/**
 * Runs `binary --version` and classifies it; `null` when it does not run or does not print a
 * version line.
 */
export function describeServerBinary(binaryPath: string): ServerBinary | null {
  const result = spawnSync(binaryPath, ['--version'], { encoding: 'utf8', timeout: 10_000 })
  if (result.error !== undefined || result.status !== 0) return null
  const version = result.stdout.split('\n')[0]?.trim() ?? ''
  if (!/\bVer\b/.test(version)) return null
  return { path: binaryPath, flavor: /mariadb/i.test(version) ? 'mariadb' : 'mysql', version }
}

/**
 * Looks for `mariadbd`, then `mysqld`, in `dirs` (by default `PATH`, `/usr/sbin`,
 * `/usr/libexec` and `/usr/local/mysql/bin`), and tells MariaDB from MySQL by its `--version`
 * output.
 *
 * @returns the first binary that runs, or `null` when there is none.
 */
export function findServerBinary(
  dirs: readonly string[] = serverSearchDirs(),
): ServerBinary | null {
  for (const name of SERVER_NAMES) {
    const found = findExecutable([name], dirs)
    if (found === null) continue
    const described = describeServerBinary(found)
    if (described !== null) return described
  }
  return null
}

/** `[major, minor, patch]` parsed from a `--version` line, zeros when absent. */
function versionNumbers(version: string): [number, number, number] {
  const match = /Ver\s+(\d+)\.(\d+)\.(\d+)/.exec(version)
  return [Number(match?.[1] ?? 0), Number(match?.[2] ?? 0), Number(match?.[3] ?? 0)]
}

function isMysqlAtLeast(binary: ServerBinary, wanted: [number, number, number]): boolean {
  if (binary.flavor !== 'mysql') return false
  const have = versionNumbers(binary.version)
  for (let i = 0; i < 3; i++) {
    const diff = (have[i] ?? 0) - (wanted[i] ?? 0)
    if (diff !== 0) return diff > 0
  }
  return true
}

const runningAsRoot = typeof process.getuid === 'function' && process.getuid() === 0

/**
 * Flags that shape the files of a data directory; they must be the same when the template is
 * initialised and when a copy of it is started, or InnoDB rebuilds its log at every start.
 */
export function sizingFlags(binary: ServerBinary): string[] {
  // MySQL 8.0.30 replaced the redo log files with innodb_redo_log_capacity.
  const redo = isMysqlAtLeast(binary, [8, 0, 30])
    ? '--innodb-redo-log-capacity=16M'
    : '--innodb-log-file-size=16M'
  return [redo, '--innodb-buffer-pool-size=32M']
}

/** Where a data directory is initialised, and by which command. */
export interface InitCommand {
  readonly command: string
  readonly args: string[]
}

/**
 * The command that creates an empty data directory at `dataDir` (which must not exist yet).
 *
 * @throws Error when a MariaDB server has no `mariadb-install-db` / `mysql_install_db` next to it.
 */
export function initCommand(binary: ServerBinary, dataDir: string): InitCommand {
  const user = runningAsRoot ? ['--user=root'] : []
  if (binary.flavor === 'mysql') {
    return {
      command: binary.path,
      args: [
        '--no-defaults',
        '--initialize-insecure',
        `--datadir=${dataDir}`,
        ...user,
        ...sizingFlags(binary),
      ],
    }
  }
  const serverDir = path.dirname(binary.path)
  const base = path.dirname(serverDir)
  const scriptDirs = [
    serverDir,
    path.join(base, 'bin'),
    path.join(base, 'scripts'),
    ...serverSearchDirs(),
  ]
  const script = findExecutable(['mariadb-install-db', 'mysql_install_db'], scriptDirs)
  if (script === null) {
    throw new Error(
      `Found ${binary.path} but no mariadb-install-db or mysql_install_db to initialise its data directory: install the full MariaDB server package.`,
    )
  }
  // A tarball install keeps the script in <base>/scripts and needs --basedir to find the server.
  const basedir = path.dirname(script) === path.join(base, 'scripts') ? [`--basedir=${base}`] : []
  return {
    command: script,
    args: [
      '--no-defaults',
      `--datadir=${dataDir}`,
      ...basedir,
      ...user,
      '--auth-root-authentication-method=normal',
      '--skip-test-db',
      '--skip-log-bin',
      ...sizingFlags(binary),
    ],
  }
}

/** Where one server keeps its files. */
export interface ServerPaths {
  readonly dataDir: string
  readonly socket: string
  readonly pidFile: string
  readonly errorLog: string
  readonly initFile: string
  /**
   * The server's own directory for temporary files: a server deletes every `#sql` file in its
   * tmpdir when it starts, so servers sharing one (the system's /tmp) delete each other's.
   */
  readonly tmpDir: string
}

/** The command-line arguments that start one store on 127.0.0.1:`port`. */
export function serverArgs(binary: ServerBinary, port: number, paths: ServerPaths): string[] {
  const args = [
    '--no-defaults',
    `--datadir=${paths.dataDir}`,
    `--port=${port}`,
    '--bind-address=127.0.0.1',
    `--socket=${paths.socket}`,
    `--pid-file=${paths.pidFile}`,
    `--log-error=${paths.errorLog}`,
    `--tmpdir=${paths.tmpDir}`,
    `--init-file=${paths.initFile}`,
    ...sizingFlags(binary),
    '--skip-log-bin',
    '--innodb-flush-log-at-trx-commit=2',
    // OFF works both for the boolean (MariaDB 10.x) and the enum (MySQL 8.0.30+) variable.
    '--innodb-doublewrite=OFF',
    '--skip-name-resolve',
  ]
  if (runningAsRoot) args.push('--user=root')
  // MySQL 8 starts the X plugin on port 33060, which every store but the first would fail to bind.
  if (isMysqlAtLeast(binary, [8, 0, 0])) args.push('--mysqlx=OFF')
  return args
}
