/**
 * Redraws docs/performance-batching.svg from bench/results/batching-latest.json (a full run of
 * bench/batching.ts does this itself): `node --import tsx bench/batching-chart.ts`.
 */
import { readFile, writeFile } from 'node:fs/promises'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import type { CaptionSource, ChartPoint } from './lib/batching-chart.js'
import { chartCaption, renderBatchingChart } from './lib/batching-chart.js'
import { RESULTS_DIR } from './lib/results.js'

if (process.argv.length > 2) {
  // Nothing to set: any argument (--help among them) gets the usage, and the chart is left as it is.
  console.log('Usage: node --import tsx bench/batching-chart.ts (no options)')
  process.exit(process.argv.includes('--help') ? 0 : 2)
}

const source = path.join(RESULTS_DIR, 'batching-latest.json')
const chart = fileURLToPath(new URL('../docs/performance-batching.svg', import.meta.url))
const run = JSON.parse(await readFile(source, 'utf8')) as CaptionSource & {
  settings: { quick?: boolean }
  results: ChartPoint[]
}
if (run.settings.quick === true) {
  console.warn(`${source} holds a --quick run: its figures are not for citing.`)
}
await writeFile(chart, renderBatchingChart(run.results, chartCaption(run)))
console.log(`Chart written to ${chart}`)
