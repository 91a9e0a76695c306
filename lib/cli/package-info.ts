/** The package's own version, for `session-shards --version`. */
import { existsSync, readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

/**
 * The package's root directory: two levels above lib/cli (sources run through tsx) and above
 * dist/cli (the compiled CLI) alike.
 */
export const packageRoot = fileURLToPath(new URL('../../', import.meta.url))

/** The `version` of the package.json at {@link packageRoot}, or `unknown`. */
export function packageVersion(): string {
  try {
    const manifest = JSON.parse(
      readFileSync(new URL('../../package.json', import.meta.url), 'utf8'),
    ) as {
      version?: unknown
    }
    return typeof manifest.version === 'string' ? manifest.version : 'unknown'
  } catch {
    return 'unknown'
  }
}

/** Whether the package runs from a clone of its repository (the benchmarks are there). */
export function isClone(): boolean {
  return existsSync(new URL('../../bench/core.ts', import.meta.url))
}
