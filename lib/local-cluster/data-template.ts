/** A data directory initialised once and copied for every local store. */
import { execFile } from 'node:child_process'
import { createHash } from 'node:crypto'
import { constants } from 'node:fs'
import { cp, mkdir, mkdtemp, readdir, rename, rm, stat } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { promisify } from 'node:util'
import { debug } from '../debug.js'
import { initCommand, sizingFlags, type ServerBinary } from './server-binary.js'

const execFileAsync = promisify(execFile)

const TEMPLATE_ROOT = 'session-shards-templates'
const STALE_BUILD_MILLIS = 10 * 60_000

/**
 * The directory that holds the template for this binary; the name changes with the server
 * version and the sizing flags, so an upgrade never reuses an incompatible template.
 */
function templateDir(binary: ServerBinary): string {
  const hash = createHash('sha256')
    .update([binary.path, binary.version, ...sizingFlags(binary)].join('\0'))
    .digest('hex')
    .slice(0, 12)
  return path.join(os.tmpdir(), TEMPLATE_ROOT, `${binary.flavor}-${hash}`)
}

async function exists(dir: string): Promise<boolean> {
  try {
    await stat(dir)
    return true
  } catch {
    return false
  }
}

/** Build directories left by a process that died while initialising. */
async function removeStaleBuilds(root: string): Promise<void> {
  for (const entry of await readdir(root).catch(() => [])) {
    if (!entry.startsWith('.build-')) continue
    const dir = path.join(root, entry)
    const info = await stat(dir).catch(() => null)
    if (info !== null && Date.now() - info.mtimeMs > STALE_BUILD_MILLIS) {
      await rm(dir, { recursive: true, force: true })
    }
  }
}

/**
 * Returns the path of an initialised, never-started data directory for `binary`, creating it on
 * first use. It is shared by every process of a test run: it is built in a private directory and
 * renamed into place, so a concurrent process sees either no template or a complete one.
 */
export async function ensureDataTemplate(binary: ServerBinary): Promise<string> {
  const target = templateDir(binary)
  if (await exists(target)) return target

  const root = path.dirname(target)
  await mkdir(root, { recursive: true })
  await removeStaleBuilds(root)
  const build = await mkdtemp(path.join(root, '.build-'))
  try {
    const dataDir = path.join(build, 'data')
    const { command, args } = initCommand(binary, dataDir)
    const started = Date.now()
    try {
      await execFileAsync(command, args, { timeout: 120_000, maxBuffer: 16 * 1024 * 1024 })
    } catch (error) {
      const output = error instanceof Error && 'stderr' in error ? String(error.stderr).trim() : ''
      throw new Error(
        `Could not initialise a data directory with ${command}${output === '' ? '' : `: ${output.split('\n').slice(-10).join('\n')}`}`,
        { cause: error },
      )
    }
    try {
      await rename(dataDir, target)
      debug('local-cluster: built data template %s in %dms', target, Date.now() - started)
    } catch (error) {
      // Another process renamed its template first; theirs is as good as ours.
      const code = (error as NodeJS.ErrnoException).code
      if (code !== 'ENOTEMPTY' && code !== 'EEXIST') throw error
    }
    return target
  } finally {
    await rm(build, { recursive: true, force: true })
  }
}

/** Replaces `dataDir` with a fresh copy of the template: an empty store. */
export async function copyDataTemplate(template: string, dataDir: string): Promise<void> {
  await rm(dataDir, { recursive: true, force: true })
  // A reflink where the file system has them (btrfs, XFS), a plain copy elsewhere.
  await cp(template, dataDir, { recursive: true, mode: constants.COPYFILE_FICLONE })
}
