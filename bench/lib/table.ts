/** How a column's cells line up. */
export type Align = 'left' | 'right'

/** One column of a {@link markdownTable}. */
export interface Column {
  header: string
  /** @default 'left' */
  align?: Align
}

/**
 * A GitHub-flavoured markdown table, padded so it also reads well as plain text.
 *
 * @example
 * markdownTable([{ header: 'case' }, { header: 'ops/s', align: 'right' }], [['read', '9,120']])
 */
export function markdownTable(
  columns: readonly Column[],
  rows: readonly (readonly string[])[],
): string {
  for (const [index, row] of rows.entries()) {
    if (row.length !== columns.length) {
      throw new TypeError(
        `row ${index} has ${row.length} cells; the table has ${columns.length} columns`,
      )
    }
  }
  const widths = columns.map((column, index) =>
    Math.max(3, column.header.length, ...rows.map((row) => (row[index] as string).length)),
  )
  const pad = (text: string, index: number): string => {
    const width = widths[index] as number
    return columns[index]?.align === 'right' ? text.padStart(width) : text.padEnd(width)
  }
  const line = (cells: readonly string[]): string =>
    `| ${cells.map((cell, index) => pad(cell, index)).join(' | ')} |`
  const rule = columns.map((column, index) => {
    const dashes = '-'.repeat(widths[index] as number)
    return column.align === 'right' ? `${dashes.slice(1)}:` : dashes
  })
  return [
    line(columns.map((column) => column.header)),
    `| ${rule.join(' | ')} |`,
    ...rows.map(line),
  ].join('\n')
}

/** Formats a number with a fixed count of decimals and thousands separators, e.g. `12,345.6`. */
export function formatNumber(value: number, decimals = 0): string {
  if (!Number.isFinite(value)) return '—'
  return value.toLocaleString('en-US', {
    minimumFractionDigits: decimals,
    maximumFractionDigits: decimals,
  })
}

/** The columns every load case shows: in flight, ops/s, p50 and p99 (see {@link loadCells}). */
export const LOAD_COLUMNS: readonly Column[] = [
  { header: 'in flight', align: 'right' },
  { header: 'ops/s', align: 'right' },
  { header: 'p50 ms', align: 'right' },
  { header: 'p99 ms', align: 'right' },
]

/** A load case's cells under {@link LOAD_COLUMNS}. */
export function loadCells(result: {
  inFlight: number
  opsPerSecond: number
  p50Millis: number
  p99Millis: number
}): string[] {
  return [
    String(result.inFlight),
    formatNumber(result.opsPerSecond),
    formatNumber(result.p50Millis, 3),
    formatNumber(result.p99Millis, 3),
  ]
}
