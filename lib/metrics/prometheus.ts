/**
 * Counters, gauges and histograms kept in process and written in the Prometheus text format
 * (version 0.0.4), for `session-shards serve`'s `/metrics`. No I/O: the server sends the text.
 */

/** Label names and values of one series, e.g. `{ store: 'a', statement: 'read' }`. */
export type Labels = Readonly<Record<string, string>>

/**
 * Series one metric keeps at most: labels come from the configuration (store ids) and from the
 * library's own names (statements, outcomes), so this only guards against a mistake; past it a
 * new series is dropped, never an old one.
 */
const MAX_SERIES = 1000

/** Histogram buckets for latencies, in seconds: 0.5 ms to 10 s. */
export const LATENCY_BUCKETS_SECONDS = [
  0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
] as const

type Kind = 'counter' | 'gauge' | 'histogram'

interface HistogramSeries {
  labels: Labels
  /** Per bucket, observations at or below its bound (not cumulative; summed when written). */
  buckets: number[]
  count: number
  sum: number
}

/** One metric family: a name, its help text, and its series by label set. */
abstract class Family<S> {
  readonly name: string
  readonly help: string
  abstract readonly kind: Kind
  protected readonly series = new Map<string, S>()

  constructor(name: string, help: string) {
    this.name = name
    this.help = help
  }

  /** The series for `labels`, created by `create` if new and under {@link MAX_SERIES}. */
  protected seriesFor(labels: Labels, create: () => S): S | undefined {
    const key = labelText(labels)
    let found = this.series.get(key)
    if (found === undefined && this.series.size < MAX_SERIES) {
      found = create()
      this.series.set(key, found)
    }
    return found
  }

  /** The family's lines: `# HELP`, `# TYPE`, then its samples. */
  render(): string[] {
    return [
      `# HELP ${this.name} ${escapeHelp(this.help)}`,
      `# TYPE ${this.name} ${this.kind}`,
      ...this.samples(),
    ]
  }

  protected abstract samples(): string[]
}

/** A count that only goes up. */
export class Counter extends Family<{ labels: Labels; value: number }> {
  readonly kind = 'counter'

  add(labels: Labels, amount = 1): void {
    this.bind(labels)(amount)
  }

  /** The series for `labels` as a function that adds to it: no lookup per call on hot paths. */
  bind(labels: Labels): (amount?: number) => void {
    const series = this.seriesFor(labels, () => ({ labels, value: 0 }))
    if (series === undefined) return () => {}
    return (amount = 1) => void (series.value += amount)
  }

  protected samples(): string[] {
    return [...this.series.values()].map(
      ({ labels, value }) => `${this.name}${labelText(labels)} ${formatNumber(value)}`,
    )
  }
}

/** A value read when the metrics are written, from a callback that gives every series. */
export class Gauge extends Family<never> {
  readonly kind = 'gauge'
  readonly #read: () => readonly { labels: Labels; value: number }[]

  constructor(
    name: string,
    help: string,
    read: () => readonly { labels: Labels; value: number }[],
  ) {
    super(name, help)
    this.#read = read
  }

  protected samples(): string[] {
    return this.#read()
      .slice(0, MAX_SERIES)
      .map(({ labels, value }) => `${this.name}${labelText(labels)} ${formatNumber(value)}`)
  }
}

/** Observations counted into fixed buckets, with their count and sum. */
export class Histogram extends Family<HistogramSeries> {
  readonly kind = 'histogram'
  readonly #bounds: readonly number[]

  constructor(name: string, help: string, bounds: readonly number[] = LATENCY_BUCKETS_SECONDS) {
    super(name, help)
    this.#bounds = bounds
  }

  observe(labels: Labels, value: number): void {
    this.bind(labels)(value)
  }

  /** The series for `labels` as a function that observes into it. */
  bind(labels: Labels): (value: number) => void {
    const series = this.seriesFor(labels, () => ({
      labels,
      buckets: this.#bounds.map(() => 0),
      count: 0,
      sum: 0,
    }))
    if (series === undefined) return () => {}
    const bounds = this.#bounds
    return (value) => {
      const bucket = bounds.findIndex((bound) => value <= bound)
      if (bucket !== -1) series.buckets[bucket] = (series.buckets[bucket] as number) + 1
      series.count++
      series.sum += value
    }
  }

  protected samples(): string[] {
    const lines: string[] = []
    for (const { labels, buckets, count, sum } of this.series.values()) {
      let cumulative = 0
      this.#bounds.forEach((bound, index) => {
        cumulative += buckets[index] as number
        const le = labelText({ ...labels, le: formatNumber(bound) })
        lines.push(`${this.name}_bucket${le} ${cumulative}`)
      })
      lines.push(`${this.name}_bucket${labelText({ ...labels, le: '+Inf' })} ${count}`)
      lines.push(`${this.name}_sum${labelText(labels)} ${formatNumber(sum)}`)
      lines.push(`${this.name}_count${labelText(labels)} ${count}`)
    }
    return lines
  }
}

/** Metric families in the order they are written. */
export class PrometheusRegistry {
  readonly #families: Family<unknown>[] = []

  counter(name: string, help: string): Counter {
    return this.#add(new Counter(name, help))
  }

  histogram(name: string, help: string, bounds?: readonly number[]): Histogram {
    return this.#add(new Histogram(name, help, bounds))
  }

  gauge(
    name: string,
    help: string,
    read: () => readonly { labels: Labels; value: number }[],
  ): Gauge {
    return this.#add(new Gauge(name, help, read))
  }

  /** Every family in the text exposition format, ending with a newline. */
  render(): string {
    return this.#families.flatMap((family) => family.render()).join('\n') + '\n'
  }

  #add<F extends Family<unknown>>(family: F): F {
    this.#families.push(family)
    return family
  }
}

/** The content type of {@link PrometheusRegistry.render}'s text. */
export const PROMETHEUS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8'

/** `{a="x",b="y"}`, values escaped as the format requires; empty for no labels. */
function labelText(labels: Labels): string {
  const entries = Object.entries(labels)
  if (entries.length === 0) return ''
  return `{${entries.map(([name, value]) => `${name}="${escapeLabelValue(value)}"`).join(',')}}`
}

function escapeLabelValue(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')
}

function escapeHelp(help: string): string {
  return help.replace(/\\/g, '\\\\').replace(/\n/g, '\\n')
}

function formatNumber(value: number): string {
  if (Number.isNaN(value)) return 'NaN'
  if (value === Infinity) return '+Inf'
  if (value === -Infinity) return '-Inf'
  return String(value)
}
