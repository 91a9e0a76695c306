import { execFileSync } from 'node:child_process'
import { mkdir, writeFile } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

/** Where the benchmarks write their JSON results: `bench/results/`. */
export const RESULTS_DIR = path.resolve(
  path.dirname(fileURLToPath(import.meta.url)),
  '..',
  'results',
)

/** The machine and code a result was measured on, so that docs can say what a number means. */
export interface Environment {
  date: string
  node: string
  platform: string
  cpuModel: string
  cpus: number
  totalMemoryBytes: number
  /** `git describe`-style commit of the working tree, with `-dirty` when it has changes. */
  commit: string | null
}

export function describeEnvironment(): Environment {
  const cpus = os.cpus()
  return {
    date: new Date().toISOString(),
    node: process.version,
    platform: `${os.platform()} ${os.release()} ${os.arch()}`,
    cpuModel: cpus[0]?.model.trim() ?? 'unknown',
    cpus: os.availableParallelism(),
    totalMemoryBytes: os.totalmem(),
    commit: gitCommit(),
  }
}

function gitCommit(): string | null {
  try {
    return execFileSync('git', ['describe', '--always', '--dirty'], {
      cwd: path.dirname(RESULTS_DIR),
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    }).trim()
  } catch {
    return null
  }
}

/**
 * Writes `value` as pretty JSON to `bench/results/<name>-latest.json`, or for a `--quick` run to
 * `<name>-quick.json` (which git ignores): a check that the benchmarks work must not replace
 * the figures that docs/performance.md cites. Returns the path.
 */
export async function writeResults(
  name: string,
  value: unknown,
  run: { quick: boolean },
): Promise<string> {
  await mkdir(RESULTS_DIR, { recursive: true })
  const file = path.join(RESULTS_DIR, `${name}-${run.quick ? 'quick' : 'latest'}.json`)
  await writeFile(file, `${JSON.stringify(value, null, 2)}\n`)
  return file
}
