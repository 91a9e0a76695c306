import { readdirSync, readFileSync } from 'node:fs'
import { dirname, join, relative, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'

// The layout docs/design.md draws, kept: small files, no import cycle inside lib/, and a core
// that imports no entry point (adapters, server, CLI) and no test tooling (local stores).
const LIB = resolve(dirname(fileURLToPath(import.meta.url)), '../lib')
const MAX_LINES = 500
const ENTRY_POINTS = ['adapters/', 'server/', 'cli/', 'local-cluster/']

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name)
    if (entry.isDirectory()) return sources(path)
    return entry.name.endsWith('.ts') ? [path] : []
  })
}

const files = sources(LIB).map((path) => relative(LIB, path))
const text = new Map(files.map((file) => [file, readFileSync(join(LIB, file), 'utf8')]))

/** The lib/ files a file imports (type imports too), by path relative to lib/. */
function importsOf(file: string): string[] {
  const found = (text.get(file) as string).matchAll(/from '(\.{1,2}\/[^']+)\.js'/g)
  return [...found].map((match) => relative(LIB, resolve(LIB, dirname(file), `${match[1]}.ts`)))
}
const graph = new Map(files.map((file) => [file, importsOf(file)]))

t.test(`no file in lib/ over ${MAX_LINES} lines`, async (t) => {
  const long = files.flatMap((file) => {
    const lines = (text.get(file) as string).split('\n').length - 1
    return lines > MAX_LINES ? [`${file}: ${lines}`] : []
  })
  t.same(long, [])
})

t.test('every relative import names a file that exists', async (t) => {
  const missing = [...graph].flatMap(([file, imports]) =>
    imports.filter((target) => !text.has(target)).map((target) => `${file} -> ${target}`),
  )
  t.same(missing, [])
})

t.test('no import cycle inside lib/', async (t) => {
  const cycles: string[] = []
  const state = new Map<string, 'open' | 'done'>()
  const visit = (file: string, path: string[]): void => {
    if (state.get(file) === 'done') return
    if (state.get(file) === 'open') {
      cycles.push([...path.slice(path.indexOf(file)), file].join(' -> '))
      return
    }
    state.set(file, 'open')
    for (const target of graph.get(file) ?? []) visit(target, [...path, file])
    state.set(file, 'done')
  }
  for (const file of files) visit(file, [])
  t.same(cycles, [])
})

t.test('the core imports no entry point and no local stores', async (t) => {
  const core = files.filter((file) => !ENTRY_POINTS.some((dir) => file.startsWith(dir)))
  const reaching = core.flatMap((file) =>
    (graph.get(file) ?? [])
      .filter((target) => ENTRY_POINTS.some((dir) => target.startsWith(dir)))
      .map((target) => `${file} -> ${target}`),
  )
  t.same(reaching, [])
})
