/** One measured point of bench/batching.ts, as the chart needs it. */
export interface ChartPoint {
  panel: 'read' | 'write'
  case: string
  inFlight: number
  opsPerSecond: number
}

/** What the chart says about where its figures come from. */
export interface ChartCaption {
  date: string
  /** E.g. `3 local MariaDB 10.11 stores and redis-server 7.0 on 2 CPUs shared with the client`. */
  setup: string
}

/** The fields of bench/results/batching-latest.json that the caption uses. */
export interface CaptionSource {
  environment: { date: string; cpus: number }
  server: string
  redis: string
  settings: { stores: number }
}

/** The caption for a run's results: stores, servers, CPUs and date. */
export function chartCaption(run: CaptionSource): ChartCaption {
  const mariadb = /^[\d.]+/.exec(run.server)?.[0] ?? run.server
  return {
    date: run.environment.date.slice(0, 10),
    setup:
      `${run.settings.stores} local MariaDB ${mariadb} stores and redis-server ${run.redis}, ` +
      `${run.environment.cpus} CPUs shared by client and servers`,
  }
}

interface Style {
  color: string
  dash?: string
  width: number
}

/**
 * Same case, same look in both panels; session-shards in blue and teal, batching off dashed,
 * one store dotted; Redis with an append-only file dashed (everysec) and dotted (always).
 */
const STYLES: [RegExp, Style][] = [
  [/copies=1, one store/, { color: '#0f8b8d', dash: '2 3', width: 2 }],
  [/raw mysql2.*one store/, { color: '#8a8a8a', dash: '2 3', width: 2 }],
  [/copies=1, batching on/, { color: '#0f8b8d', width: 2.5 }],
  [/copies=1, batching off/, { color: '#0f8b8d', dash: '6 4', width: 2 }],
  [/batching on/, { color: '#1f5fbf', width: 3 }],
  [/batching off/, { color: '#1f5fbf', dash: '6 4', width: 2 }],
  [/raw mysql2.*×1/, { color: '#8a8a8a', width: 2 }],
  [/raw mysql2/, { color: '#222222', width: 2 }],
  [/express-mysql-session/, { color: '#e07b00', width: 2 }],
  [/connect-redis.*AOF always/, { color: '#c62828', dash: '2 3', width: 2 }],
  [/connect-redis.*AOF everysec/, { color: '#c62828', dash: '6 4', width: 2 }],
  [/connect-redis/, { color: '#c62828', width: 2 }],
]

const PANEL = { width: 470, plotLeft: 64, plotTop: 80, plotWidth: 380, plotHeight: 280 }
const LEGEND_ROW = 18

/**
 * An SVG of ops/s against operations in flight, reads and writes side by side, one line per
 * case, drawn from bench/batching.ts's results. Both axes are logarithmic: the cases span two
 * orders of magnitude, and equal vertical distances are equal ratios, which are what a run on
 * a shared machine can be read for. Plain SVG text: no dependencies.
 */
export function renderBatchingChart(points: readonly ChartPoint[], caption: ChartCaption): string {
  const panels = (['read', 'write'] as const).map((panel) =>
    points.filter((point) => point.panel === panel),
  )
  const legendRows = Math.max(...panels.map((panel) => cases(panel).length))
  const height = PANEL.plotTop + PANEL.plotHeight + 48 + legendRows * LEGEND_ROW + 28
  const width = PANEL.width * 2 + 20
  const title = 'session-shards batching: throughput against operations in flight'
  const body = [
    `<rect width="${width}" height="${height}" fill="#ffffff"/>`,
    text(width / 2, 22, title, { size: 16, anchor: 'middle', weight: 'bold' }),
    text(width / 2, 40, `${caption.setup}; ${caption.date}`, {
      size: 11,
      anchor: 'middle',
      color: '#555555',
    }),
    ...panels.map((panel, index) =>
      renderPanel(
        panel,
        index === 0 ? 'Reads' : 'Writes',
        10 + index * (PANEL.width + 10),
        PANEL.plotTop + PANEL.plotHeight + 48,
      ),
    ),
    text(
      width / 2,
      height - 10,
      'Absolute figures hold for this run only; compare the lines with each other.',
      { size: 11, anchor: 'middle', color: '#555555' },
    ),
  ]
  return (
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" ` +
    `viewBox="0 0 ${width} ${height}" font-family="Helvetica, Arial, sans-serif" role="img">\n` +
    `<title>${escape(title)}</title>\n` +
    `<desc>${escape(describe(points, caption))}</desc>\n` +
    `${body.join('\n')}\n</svg>\n`
  )
}

function renderPanel(
  points: readonly ChartPoint[],
  heading: string,
  offsetX: number,
  legendTop: number,
): string {
  const levels = [...new Set(points.map((point) => point.inFlight))].sort((a, b) => a - b)
  const minLog = Math.log2(levels[0] ?? 1)
  const maxLog = Math.log2(levels[levels.length - 1] ?? 2)
  const rates = points.map((point) => point.opsPerSecond).filter((ops) => ops > 0)
  const ticks = logTicks(Math.min(...rates), Math.max(...rates))
  const lowLog = Math.log10(ticks[0] ?? 1)
  const highLog = Math.log10(ticks[ticks.length - 1] ?? 10)
  const left = offsetX + PANEL.plotLeft
  const bottom = PANEL.plotTop + PANEL.plotHeight
  const x = (inFlight: number): number =>
    left + ((Math.log2(inFlight) - minLog) / (maxLog - minLog || 1)) * PANEL.plotWidth
  const y = (ops: number): number =>
    bottom - ((Math.log10(ops) - lowLog) / (highLog - lowLog || 1)) * PANEL.plotHeight

  const parts: string[] = [
    text(left + PANEL.plotWidth / 2, PANEL.plotTop - 8, heading, {
      size: 14,
      anchor: 'middle',
      weight: 'bold',
    }),
  ]
  for (const value of ticks) {
    parts.push(
      `<line x1="${left}" y1="${round(y(value))}" x2="${left + PANEL.plotWidth}" y2="${round(y(value))}" stroke="#e4e4e4"/>`,
      text(left - 6, y(value) + 4, compact(value), { size: 11, anchor: 'end' }),
    )
  }
  for (const level of levels) {
    parts.push(
      `<line x1="${round(x(level))}" y1="${PANEL.plotTop}" x2="${round(x(level))}" y2="${bottom}" stroke="#f0f0f0"/>`,
      text(x(level), bottom + 16, String(level), { size: 11, anchor: 'middle' }),
    )
  }
  parts.push(
    `<rect x="${left}" y="${PANEL.plotTop}" width="${PANEL.plotWidth}" height="${PANEL.plotHeight}" fill="none" stroke="#999999"/>`,
    text(left + PANEL.plotWidth / 2, bottom + 32, 'operations in flight (log scale)', {
      size: 11,
      anchor: 'middle',
    }),
    `<text x="${offsetX + 14}" y="${PANEL.plotTop + PANEL.plotHeight / 2}" font-size="11" ` +
      `text-anchor="middle" transform="rotate(-90 ${offsetX + 14} ${PANEL.plotTop + PANEL.plotHeight / 2})">ops/s (log scale)</text>`,
  )
  for (const [index, name] of cases(points).entries()) {
    const style = styleOf(name)
    const series = points
      .filter((point) => point.case === name)
      .sort((a, b) => a.inFlight - b.inFlight)
    const path = series.map(
      (point) => `${round(x(point.inFlight))},${round(y(point.opsPerSecond))}`,
    )
    const stroke = `stroke="${style.color}" stroke-width="${style.width}"${style.dash === undefined ? '' : ` stroke-dasharray="${style.dash}"`}`
    parts.push(
      `<polyline points="${path.join(' ')}" fill="none" ${stroke}>` +
        `<title>${escape(name)}</title></polyline>`,
      ...series.map(
        (point) =>
          `<circle cx="${round(x(point.inFlight))}" cy="${round(y(point.opsPerSecond))}" r="3" fill="${style.color}">` +
          `<title>${escape(`${name}, ${point.inFlight} in flight: ${Math.round(point.opsPerSecond)} ops/s`)}</title></circle>`,
      ),
    )
    const legendX = offsetX + PANEL.plotLeft
    const legendY = legendTop + index * LEGEND_ROW
    parts.push(
      `<line x1="${legendX}" y1="${legendY - 4}" x2="${legendX + 26}" y2="${legendY - 4}" ${stroke}/>`,
      text(legendX + 32, legendY, name, { size: 11 }),
    )
  }
  return `<g>\n${parts.join('\n')}\n</g>`
}

/** Cases in the order they first appear. */
function cases(points: readonly ChartPoint[]): string[] {
  return [...new Set(points.map((point) => point.case))]
}

function styleOf(name: string): Style {
  return STYLES.find(([pattern]) => pattern.test(name))?.[1] ?? { color: '#6a3d9a', width: 2 }
}

/** Axis values 1, 2, 5 × 10^k from the one at or below `min` to the one at or above `max`. */
function logTicks(min: number, max: number): number[] {
  const ticks: number[] = []
  let exponent = Math.floor(Math.log10(min))
  while (!(ticks[ticks.length - 1]! >= max)) {
    for (const mantissa of [1, 2, 5]) ticks.push(mantissa * 10 ** exponent)
    exponent++
  }
  while (ticks.length > 2 && ticks[ticks.length - 2]! >= max) ticks.pop()
  while (ticks.length > 2 && ticks[1]! <= min) ticks.shift()
  return ticks
}

function compact(value: number): string {
  if (value === 0) return '0'
  return value >= 1000 ? `${Number((value / 1000).toFixed(1))}k` : String(value)
}

function describe(points: readonly ChartPoint[], caption: ChartCaption): string {
  const lines = cases(points).map((name) => {
    const series = points
      .filter((point) => point.case === name)
      .sort((a, b) => a.inFlight - b.inFlight)
      .map((point) => `${point.inFlight}: ${Math.round(point.opsPerSecond)}`)
    return `${name} (ops/s by in flight) ${series.join(', ')}`
  })
  return `${caption.setup}; ${caption.date}. ${lines.join('; ')}.`
}

function text(
  x: number,
  y: number,
  content: string,
  options: {
    size: number
    anchor?: 'start' | 'middle' | 'end'
    weight?: 'bold'
    color?: string
  },
): string {
  const attributes = [
    `x="${round(x)}"`,
    `y="${round(y)}"`,
    `font-size="${options.size}"`,
    ...(options.anchor === undefined ? [] : [`text-anchor="${options.anchor}"`]),
    ...(options.weight === undefined ? [] : [`font-weight="${options.weight}"`]),
    `fill="${options.color ?? '#222222'}"`,
  ]
  return `<text ${attributes.join(' ')}>${escape(content)}</text>`
}

function round(value: number): number {
  return Math.round(value * 10) / 10
}

function escape(value: string): string {
  return value
    .replaceAll('&', '&amp;')
    .replaceAll('<', '&lt;')
    .replaceAll('>', '&gt;')
    .replaceAll('"', '&quot;')
}
