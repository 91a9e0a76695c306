/** The demo's report as a page to look at: one self-contained HTML file, charts in inline SVG. */

/** One second of the demo's workload, as the first app server saw it. */
export interface DemoSample {
  /** Milliseconds since the demo started. */
  atMillis: number
  /** Operations so far (failed ones included). */
  operations: number
  /** Failed requests so far. */
  failedRequests: number
  /** p99 latency of the operations that ended in this second, ms; null when none did. */
  p99Millis: number | null
  stores: { id: string; state: 'up' | 'down' | 'behind' }[]
}

/** What the page shows: the figures of the report, its samples and its timeline. */
export interface DemoPageInput {
  title: string
  /** Label and value of each summary row. */
  summary: [string, string][]
  verdict: { ok: boolean; text: string }
  samples: DemoSample[]
  timeline: { atMillis: number; text: string }[]
}

const WIDTH = 960
const LEFT = 70
const RIGHT = 20
const CHART_HEIGHT = 130
const BAND_HEIGHT = 18
const GAP = 34
const STATE_COLORS = { up: '#2e9d4f', behind: '#e0a526', down: '#d64545' } as const

/** One point of a chart: seconds since the workload started, and the value then. */
interface Point {
  seconds: number
  value: number
}

/** Escapes text for HTML and SVG. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`)
}

/** Per-second rates from the samples' running totals. */
export function perSecond(
  samples: readonly DemoSample[],
  field: 'operations' | 'failedRequests',
): Point[] {
  const points: Point[] = []
  const start = (samples[0]?.atMillis ?? 0) - 1000
  let previous = { atMillis: start, total: 0 }
  for (const sample of samples) {
    const seconds = (sample.atMillis - previous.atMillis) / 1000
    if (seconds <= 0) continue
    points.push({
      seconds: (sample.atMillis - start) / 1000,
      value: (sample[field] - previous.total) / seconds,
    })
    previous = { atMillis: sample.atMillis, total: sample[field] }
  }
  return points
}

/** The markers drawn across the charts: the kill, the restart, the return to service. */
export function markers(
  timeline: DemoPageInput['timeline'],
): { atMillis: number; label: string; color: string }[] {
  const found: { atMillis: number; label: string; color: string }[] = []
  for (const event of timeline) {
    if (event.text.startsWith('SIGKILL')) {
      found.push({ atMillis: event.atMillis, label: event.text, color: STATE_COLORS.down })
    } else if (event.text.startsWith('restarting')) {
      found.push({ atMillis: event.atMillis, label: event.text, color: '#666' })
    } else if (event.text.includes('back in service')) {
      found.push({ atMillis: event.atMillis, label: 'back in service', color: STATE_COLORS.up })
    }
  }
  return found
}

/** The charts alone, as one SVG element (`standalone` adds the XML namespace a file needs). */
export function demoTimelineSvg(input: DemoPageInput, standalone = false): string {
  const { samples } = input
  const start = (samples[0]?.atMillis ?? 0) - 1000
  const end = samples[samples.length - 1]?.atMillis ?? start + 1000
  const totalSeconds = Math.max(1, (end - start) / 1000)
  const plotWidth = WIDTH - LEFT - RIGHT
  const x = (seconds: number): number => LEFT + (seconds / totalSeconds) * plotWidth
  const storeIds = samples[0]?.stores.map((store) => store.id) ?? []
  const charts: { title: string; unit: string; points: Point[]; color: string; bars?: boolean }[] =
    [
      {
        title: 'operations per second',
        unit: '/s',
        points: perSecond(samples, 'operations'),
        color: '#2f6fb3',
      },
      {
        title: 'p99 latency',
        unit: ' ms',
        points: samples.map((sample) => ({
          seconds: (sample.atMillis - start) / 1000,
          value: sample.p99Millis ?? 0,
        })),
        color: '#7a4cb0',
      },
      {
        title: 'failed requests per second',
        unit: '/s',
        points: perSecond(samples, 'failedRequests'),
        color: STATE_COLORS.down,
        bars: true,
      },
    ]
  const parts: string[] = []
  let top = 24
  for (const chart of charts) {
    const max = niceMax(Math.max(1, ...chart.points.map((point) => point.value)))
    const y = (value: number): number => top + CHART_HEIGHT - (value / max) * CHART_HEIGHT
    parts.push(
      `<text x="${LEFT}" y="${top - 8}" class="title">${escapeHtml(chart.title)}</text>`,
      `<line x1="${LEFT}" y1="${top + CHART_HEIGHT}" x2="${WIDTH - RIGHT}" y2="${top + CHART_HEIGHT}" class="axis"/>`,
      `<line x1="${LEFT}" y1="${top}" x2="${WIDTH - RIGHT}" y2="${top}" class="grid"/>`,
      `<text x="${LEFT - 6}" y="${top + 4}" class="tick" text-anchor="end">${formatValue(max)}${chart.unit}</text>`,
      `<text x="${LEFT - 6}" y="${top + CHART_HEIGHT + 4}" class="tick" text-anchor="end">0</text>`,
    )
    if (chart.bars === true) {
      const barWidth = Math.max(1, plotWidth / totalSeconds - 2)
      for (const point of chart.points) {
        if (point.value <= 0) continue
        parts.push(
          `<rect x="${(x(point.seconds) - barWidth).toFixed(1)}" y="${y(point.value).toFixed(1)}" width="${barWidth.toFixed(1)}" height="${(top + CHART_HEIGHT - y(point.value)).toFixed(1)}" fill="${chart.color}"/>`,
        )
      }
    } else if (chart.points.length > 0) {
      const path = chart.points
        .map(
          (point, index) =>
            `${index === 0 ? 'M' : 'L'}${x(point.seconds).toFixed(1)},${y(point.value).toFixed(1)}`,
        )
        .join(' ')
      parts.push(`<path d="${path}" fill="none" stroke="${chart.color}" stroke-width="2"/>`)
    }
    top += CHART_HEIGHT + GAP
  }
  parts.push(`<text x="${LEFT}" y="${top - 8}" class="title">store state (app server 1)</text>`)
  for (const [row, id] of storeIds.entries()) {
    const bandTop = top + row * (BAND_HEIGHT + 4)
    parts.push(
      `<text x="${LEFT - 6}" y="${bandTop + 13}" class="tick" text-anchor="end">${escapeHtml(id)}</text>`,
    )
    let from = 0
    for (const sample of samples) {
      const to = (sample.atMillis - start) / 1000
      const state = sample.stores.find((store) => store.id === id)?.state ?? 'down'
      parts.push(
        `<rect x="${x(from).toFixed(1)}" y="${bandTop}" width="${Math.max(0.5, x(to) - x(from)).toFixed(1)}" height="${BAND_HEIGHT}" fill="${STATE_COLORS[state]}"><title>${escapeHtml(`${id}: ${state} at ${to.toFixed(0)} s`)}</title></rect>`,
      )
      from = to
    }
  }
  const bottom = top + storeIds.length * (BAND_HEIGHT + 4)
  for (let second = 0; second <= totalSeconds; second += tickStep(totalSeconds)) {
    parts.push(
      `<text x="${x(second).toFixed(1)}" y="${bottom + 16}" class="tick" text-anchor="middle">${second} s</text>`,
    )
  }
  for (const marker of markers(input.timeline)) {
    const at = x((marker.atMillis - start) / 1000)
    if (at < LEFT || at > WIDTH - RIGHT) continue
    parts.push(
      `<line x1="${at.toFixed(1)}" y1="16" x2="${at.toFixed(1)}" y2="${bottom}" stroke="${marker.color}" stroke-dasharray="4 3" stroke-width="1.5"/>`,
      `<text x="${(at + 4).toFixed(1)}" y="12" class="marker" fill="${marker.color}">${escapeHtml(marker.label)}</text>`,
    )
  }
  const height = bottom + 28
  const namespace = standalone ? ' xmlns="http://www.w3.org/2000/svg"' : ''
  return (
    `<svg${namespace} viewBox="0 0 ${WIDTH} ${height}" width="${WIDTH}" height="${height}" role="img" aria-label="demo timeline">` +
    `<style>.title{font:600 13px sans-serif;fill:#222}.tick{font:11px sans-serif;fill:#555}.marker{font:11px sans-serif}.axis{stroke:#888}.grid{stroke:#ddd}</style>` +
    `<rect width="${WIDTH}" height="${height}" fill="#fff"/>` +
    parts.join('') +
    '</svg>'
  )
}

/** The whole page: title, verdict, summary table, the charts and the timeline; nothing fetched. */
export function demoReportHtml(input: DemoPageInput): string {
  const rows = input.summary
    .map(([label, value]) => `<tr><th>${escapeHtml(label)}</th><td>${escapeHtml(value)}</td></tr>`)
    .join('')
  const events = input.timeline
    .map(
      (event) =>
        `<li><code>${(event.atMillis / 1000).toFixed(1).padStart(5)} s</code> ${escapeHtml(event.text)}</li>`,
    )
    .join('')
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${escapeHtml(input.title)}</title>
<style>body{font:14px/1.45 sans-serif;margin:24px;color:#222;max-width:1000px}
.verdict{padding:8px 12px;border-radius:4px;font-weight:600}
.ok{background:#e3f4e8;color:#1d6b35}.problem{background:#fbe4e4;color:#9b2222}
table{border-collapse:collapse;margin:12px 0}th{text-align:left;padding:2px 16px 2px 0;font-weight:500;color:#555}
ul{padding-left:18px}code{color:#666}</style></head>
<body><h1>${escapeHtml(input.title)}</h1>
<p class="verdict ${input.verdict.ok ? 'ok' : 'problem'}">${escapeHtml(input.verdict.text)}</p>
${demoTimelineSvg(input)}
<table>${rows}</table>
<h2>Timeline</h2><ul>${events}</ul>
</body></html>
`
}

function niceMax(value: number): number {
  const magnitude = 10 ** Math.floor(Math.log10(value))
  for (const step of [1, 2, 2.5, 5, 10]) if (value <= step * magnitude) return step * magnitude
  return 10 * magnitude
}

function tickStep(totalSeconds: number): number {
  for (const step of [1, 2, 5, 10, 15, 30, 60, 120, 300]) if (totalSeconds / step <= 12) return step
  return 600
}

function formatValue(value: number): string {
  return value >= 10_000 ? `${value / 1000}k` : String(value)
}
