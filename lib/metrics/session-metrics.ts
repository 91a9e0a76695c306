/**
 * A manager's metrics: every statement by store, kind and outcome with its latency; failovers,
 * degraded writes, read repairs and unreadable copies; hints waiting and each store's state.
 * Kept for the Prometheus text format (`session-shards serve`'s `/metrics`) and sent to
 * OpenTelemetry when the app has `@opentelemetry/api` (nothing is recorded without an SDK).
 */
import type { SessionManagerEvents } from '../events.js'
import type {
  CounterLike,
  HistogramLike,
  MeterLike,
  MeterProviderLike,
  MetricAttributes,
  ObservableCallback,
  ObservableLike,
} from './open-telemetry.js'
import { globalMeterProvider, noopMeter } from './open-telemetry.js'
import { LATENCY_BUCKETS_SECONDS, PrometheusRegistry } from './prometheus.js'
import type { Labels } from './prometheus.js'

/** What the metrics read of one store. */
export interface MeteredStore {
  readonly id: string
  readonly standing: { readonly up: boolean; readonly behind: boolean }
}

/** What the metrics read of the manager: its stores, hints and configuration guard. */
export interface MeteredCluster {
  readonly stores: readonly MeteredStore[]
  hintsWaiting(store: MeteredStore): number
  configMismatches(): number
}

/**
 * How a statement sent to a store ended: answered (`ok`), answered with an error (`error`, an
 * SQL error), or not answered (`unreachable`: refused, timed out, connection lost).
 */
export type RequestOutcome = 'ok' | 'error' | 'unreachable'

/** Reports one statement sent to a store: its kind, how long it took, how it ended. */
export type RequestObserver = (statement: string, seconds: number, outcome: RequestOutcome) => void

/** Subscribes to one of the manager's events. */
export type EventSource = <K extends keyof SessionManagerEvents>(
  name: K,
  listener: (...payload: SessionManagerEvents[K]) => void,
) => void

/** One store's series for one statement, bound once. */
type StatementSeries = Record<RequestOutcome, () => void> & { duration: (seconds: number) => void }

/** The OpenTelemetry meter's name: the library's package name. */
const METER_NAME = 'session-shards'

/** A counter kept for Prometheus and, once a meter is known, sent to OpenTelemetry. */
interface DualCounter {
  prometheus: ReturnType<PrometheusRegistry['counter']>
  otelName: string
  description: string
  otel: CounterLike | null
}

/**
 * One manager's instruments. Created with the manager; {@link observeStore} is handed to each
 * store, and the manager's events feed the counters.
 */
export class SessionMetrics {
  readonly #registry = new PrometheusRegistry()
  readonly #cluster: MeteredCluster
  readonly #requests: ReturnType<PrometheusRegistry['counter']>
  readonly #durations: ReturnType<PrometheusRegistry['histogram']>
  readonly #failovers: DualCounter
  readonly #degradedWrites: DualCounter
  readonly #readRepairs: DualCounter
  readonly #unreadableCopies: DualCounter
  #otel: {
    requests: CounterLike
    durations: HistogramLike
    gauges: [ObservableLike, ObservableCallback][]
  } | null = null
  #closed = false
  /** Resolves once the OpenTelemetry meter is known (or known to be absent). */
  readonly loaded: Promise<void>

  constructor(
    cluster: MeteredCluster,
    on: EventSource,
    meterProvider: MeterProviderLike | undefined,
  ) {
    this.#cluster = cluster
    const registry = this.#registry
    this.#requests = registry.counter(
      'session_shards_store_requests_total',
      'Statements sent to each store, by statement and outcome (ok, error: an SQL error, unreachable).',
    )
    this.#durations = registry.histogram(
      'session_shards_store_request_duration_seconds',
      'Time each store took to answer a statement, by statement.',
    )
    const dual = (name: string, otelName: string, description: string): DualCounter => ({
      prometheus: registry.counter(name, description),
      otelName,
      description,
      otel: null,
    })
    this.#failovers = dual(
      'session_shards_failovers_total',
      'session_shards.failovers',
      'Times a store was taken out of service (store-down events), by store.',
    )
    this.#degradedWrites = dual(
      'session_shards_degraded_writes_total',
      'session_shards.degraded_writes',
      'Writes acknowledged with fewer copies than wanted, or with a miss no hint recorded.',
    )
    this.#readRepairs = dual(
      'session_shards_read_repairs_total',
      'session_shards.read_repairs',
      'Reads that found stale or missing copies and wrote the newest back.',
    )
    this.#unreadableCopies = dual(
      'session_shards_unreadable_copies_total',
      'session_shards.unreadable_copies',
      'Copies that could not be decoded (corrupt, tampered with, or under an unknown key).',
    )
    for (const [name, help, read] of this.#gauges()) registry.gauge(name, help, read)

    on('store-down', ({ storeId }) => this.#count(this.#failovers, { store: storeId }))
    on('degraded-write', () => this.#count(this.#degradedWrites, {}))
    on('read-repair', () => this.#count(this.#readRepairs, {}))
    on('unreadable-copy', () => this.#count(this.#unreadableCopies, {}))

    this.loaded = Promise.all([
      meterProvider === undefined ? globalMeterProvider() : Promise.resolve(meterProvider),
      noopMeter(),
    ]).then(([provider, noop]) => {
      if (provider === null || this.#closed) return
      const meter = provider.getMeter(METER_NAME)
      // A no-op meter records nothing: reporting to it would only cost every statement two
      // attribute objects and two calls (the usual case when the API is installed, as a
      // dependency of a dependency, without an SDK).
      if (meter !== noop) this.#startOtel(meter)
    })
  }

  /** The observer one store reports its statements to (its series bound once, not per call). */
  observeStore(storeId: string): RequestObserver {
    const bound = new Map<string, StatementSeries>()
    return (statement, seconds, outcome) => {
      let series = bound.get(statement)
      if (series === undefined) {
        series = this.#statementSeries({ store: storeId, statement })
        bound.set(statement, series)
      }
      // An unanswered statement's time is the timeout's or the connection's, not the store's.
      if (outcome !== 'unreachable') series.duration(seconds)
      series[outcome]()
      const otel = this.#otel
      if (otel !== null) {
        const attributes = { store: storeId, statement }
        if (outcome !== 'unreachable') otel.durations.record(seconds, attributes)
        otel.requests.add(1, { ...attributes, outcome })
      }
    }
  }

  #statementSeries(labels: Labels): StatementSeries {
    return {
      duration: this.#durations.bind(labels),
      ok: this.#requests.bind({ ...labels, outcome: 'ok' }),
      error: this.#requests.bind({ ...labels, outcome: 'error' }),
      unreachable: this.#requests.bind({ ...labels, outcome: 'unreachable' }),
    }
  }

  /** Every metric in the Prometheus text format. */
  prometheusText(): string {
    return this.#registry.render()
  }

  /** Stops reporting to OpenTelemetry (the manager is closing). */
  close(): void {
    this.#closed = true
    for (const [gauge, callback] of this.#otel?.gauges ?? []) gauge.removeCallback(callback)
    this.#otel = null
  }

  #count(counter: DualCounter, labels: Labels): void {
    counter.prometheus.add(labels)
    counter.otel?.add(1, labels as MetricAttributes)
  }

  /** Gauges read when the metrics are collected: name, help, and every series. */
  #gauges(): [string, string, () => { labels: Labels; value: number }[]][] {
    const perStore = (value: (store: MeteredStore) => number) => () =>
      this.#cluster.stores.map((store) => ({ labels: { store: store.id }, value: value(store) }))
    return [
      [
        'session_shards_store_up',
        'Whether requests go to the store (1), or skip it until a health check succeeds (0).',
        perStore((store) => (store.standing.up ? 1 : 0)),
      ],
      [
        'session_shards_store_behind',
        'Whether the store missed writes not yet replayed to it (1); it serves no reads meanwhile.',
        perStore((store) => (store.standing.behind ? 1 : 0)),
      ],
      [
        'session_shards_hints_waiting',
        'Sessions this manager knows the store missed and has not replayed to it yet.',
        perStore((store) => this.#cluster.hintsWaiting(store)),
      ],
      [
        'session_shards_config_mismatches',
        'Live managers on these stores whose placement configuration conflicts with this one.',
        () => [{ labels: {}, value: this.#cluster.configMismatches() }],
      ],
    ]
  }

  #startOtel(meter: MeterLike): void {
    const requests = meter.createCounter('session_shards.store.requests', {
      description:
        'Statements sent to each store, by statement and outcome (ok, error: an SQL error, unreachable).',
    })
    const durations = meter.createHistogram('session_shards.store.request.duration', {
      description: 'Time each store took to answer a statement, by statement.',
      unit: 's',
      advice: { explicitBucketBoundaries: [...LATENCY_BUCKETS_SECONDS] },
    })
    for (const counter of [
      this.#failovers,
      this.#degradedWrites,
      this.#readRepairs,
      this.#unreadableCopies,
    ]) {
      counter.otel = meter.createCounter(counter.otelName, { description: counter.description })
    }
    const gauges = this.#gauges().map(
      ([name, description, read]): [ObservableLike, ObservableCallback] => {
        const gauge = meter.createObservableGauge(otelName(name), { description })
        const callback: ObservableCallback = (result) => {
          for (const { labels, value } of read()) result.observe(value, labels as MetricAttributes)
        }
        gauge.addCallback(callback)
        return [gauge, callback]
      },
    )
    this.#otel = { requests, durations, gauges }
  }
}

/** `session_shards_store_up` → `session_shards.store_up`: OpenTelemetry's namespace dot. */
function otelName(prometheusName: string): string {
  return prometheusName.replace(/^session_shards_/, 'session_shards.')
}
