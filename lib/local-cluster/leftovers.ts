/** Finds and removes local clusters whose owner process died. */
import { readFileSync, renameSync, writeFileSync } from 'node:fs'
import { readdir, readFile, rm, stat } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { debug } from '../debug.js'

/** Prefix of the default base directories, which is how leftovers are recognised. */
export const BASE_DIR_PREFIX = 'session-shards-cluster-'
const OWNER_FILE = 'owner.json'
/** A base directory without an owner file older than this was abandoned while being set up. */
const ORPHAN_MILLIS = 60_000

interface OwnerRecord {
  ownerPid: number
  servers: { id: string; pid: number }[]
}

/**
 * Records who owns `baseDir` and which server pids run from it, so that a later run can clean up
 * after a process that was killed before it could stop its servers. Synchronous, so that records
 * written by stores starting in parallel cannot overtake each other.
 */
export function writeOwnerFile(baseDir: string, servers: OwnerRecord['servers']): void {
  const record: OwnerRecord = { ownerPid: process.pid, servers }
  const file = path.join(baseDir, OWNER_FILE)
  const temporary = `${file}.${process.pid}.tmp`
  writeFileSync(temporary, JSON.stringify(record))
  renameSync(temporary, file)
}

/** True while `pid` exists and is not a zombie (a dead process its parent has not reaped). */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM'
  }
  try {
    // The state follows the parenthesised command name, which may itself contain spaces.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z'
  } catch {
    return true
  }
}

/** True only when `pid` is still a mariadbd/mysqld started from `baseDir`, not a reused pid. */
function isOurServer(pid: number, baseDir: string): boolean {
  let cmdline: string
  try {
    cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8')
  } catch {
    return false
  }
  const [program = '', ...args] = cmdline.split('\0')
  return /(?:mariadbd|mysqld)$/.test(program) && args.some((arg) => arg.includes(baseDir))
}

function readOwner(dir: string): OwnerRecord | null {
  try {
    const parsed = JSON.parse(readFileSync(path.join(dir, OWNER_FILE), 'utf8')) as unknown
    if (typeof parsed !== 'object' || parsed === null) return null
    const record = parsed as Partial<OwnerRecord>
    if (typeof record.ownerPid !== 'number' || !Array.isArray(record.servers)) return null
    return record as OwnerRecord
  } catch {
    return null
  }
}

/**
 * Cleans up base directories of earlier runs whose owner process is gone: SIGKILLs their servers
 * (after checking the pid still is one of them) and removes the directory.
 */
export async function reapLeftovers(): Promise<void> {
  const tmp = os.tmpdir()
  const entries = await readdir(tmp).catch(() => [] as string[])
  for (const entry of entries) {
    if (!entry.startsWith(BASE_DIR_PREFIX)) continue
    const dir = path.join(tmp, entry)
    const owner = readOwner(dir)
    if (owner === null) {
      const info = await stat(dir).catch(() => null)
      if (info === null || Date.now() - info.mtimeMs < ORPHAN_MILLIS) continue
      // Check again: the owner may have written its record meanwhile.
      if (
        await readFile(path.join(dir, OWNER_FILE)).then(
          () => true,
          () => false,
        )
      )
        continue
    } else {
      if (owner.ownerPid === process.pid || isAlive(owner.ownerPid)) continue
      for (const { pid } of owner.servers) {
        if (typeof pid !== 'number' || !isOurServer(pid, dir)) continue
        debug('local-cluster: killing leftover server pid %d from %s', pid, dir)
        try {
          process.kill(pid, 'SIGKILL')
        } catch {
          // It exited meanwhile.
        }
      }
    }
    debug('local-cluster: removing leftover %s', dir)
    await rm(dir, { recursive: true, force: true })
  }
}
