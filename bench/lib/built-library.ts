import { access } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'

/** The modules of the compiled library that the benchmarks call. */
export interface BuiltLibrary {
  index: typeof import('../../lib/index.js')
  placement: typeof import('../../lib/placement.js')
  statements: typeof import('../../lib/store/statements.js')
  atRest: typeof import('../../lib/at-rest.js')
}

const DIST = new URL('../../dist/', import.meta.url)

/**
 * Loads the library from `dist/`, the JavaScript that `tsc` emits and users run, rather than
 * from `lib/*.ts` through tsx: tsx's transform (esbuild with `keepNames`) adds work to every
 * closure the library creates, which would be charged to the library. The modules are typed
 * by their sources, so type-checking the benchmarks does not need a build; running them does
 * (`npm run bench` builds first).
 *
 * @param dist Where the build is: this checkout's `dist/` unless another build is compared.
 */
export async function loadBuiltLibrary(dist: URL = DIST): Promise<BuiltLibrary> {
  const url = (name: string): string => new URL(name, dist).href
  try {
    await access(fileURLToPath(url('index.js')))
  } catch (error) {
    throw new Error(
      `The compiled library is missing (${fileURLToPath(dist)}): run \`npm run build\` first, or use \`npm run bench\`, which builds.`,
      { cause: error },
    )
  }
  const [index, placement, statements, atRest] = await Promise.all([
    import(url('index.js')) as Promise<BuiltLibrary['index']>,
    import(url('placement.js')) as Promise<BuiltLibrary['placement']>,
    import(url('store/statements.js')) as Promise<BuiltLibrary['statements']>,
    import(url('at-rest.js')) as Promise<BuiltLibrary['atRest']>,
  ])
  return { index, placement, statements, atRest }
}
