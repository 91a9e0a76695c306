import t from 'tap'
import { spawnSync } from 'node:child_process'
import { createNoopMeter, metrics as otelMetrics } from '@opentelemetry/api'
import {
  AggregationTemporality,
  InMemoryMetricExporter,
  MeterProvider,
  PeriodicExportingMetricReader,
} from '@opentelemetry/sdk-metrics'
import type { MeterProviderLike } from '../lib/metrics/open-telemetry.js'
import { Counter, Histogram, PrometheusRegistry } from '../lib/metrics/prometheus.js'
import { startTestCluster } from './helpers/cluster.js'
import { createManager, startManager } from './helpers/manager.js'
import { startServer } from './helpers/session-server.js'
import { waitFor } from './helpers/wait.js'

// Metrics: what the manager counts, in the Prometheus text format (checked by promtool when it
// is installed) and through OpenTelemetry.

/** The value of the sample `name{labels}` in a Prometheus text, or undefined. */
function sample(
  text: string,
  name: string,
  labels: Record<string, string> = {},
): number | undefined {
  for (const line of text.split('\n')) {
    const match = /^([a-z_]+)(?:\{(.*)\})? (\S+)$/.exec(line)
    if (match === null || match[1] !== name) continue
    const found = Object.fromEntries(
      [...(match[2] ?? '').matchAll(/([a-z_]+)="((?:[^"\\]|\\.)*)"/g)].map((m) => [m[1], m[2]]),
    )
    if (Object.entries(labels).every(([key, value]) => found[key] === value)) {
      return Number(match[3])
    }
  }
  return undefined
}

/** promtool's verdict on a text, or null when promtool is not installed. */
function promtool(text: string): { status: number | null; output: string } | null {
  const run = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' })
  if (run.error !== undefined) return null
  return { status: run.status, output: `${run.stdout}${run.stderr}` }
}

t.test('the registry, from tables: counters, histograms, gauges, escaping', async (t) => {
  const registry = new PrometheusRegistry()
  const counter = registry.counter('x_total', 'Things.\nOn two lines \\ with a backslash.')
  counter.add({ store: 'a"b\\c\nd' })
  counter.add({ store: 'plain' }, 2)
  const histogram = registry.histogram('x_seconds', 'Time.', [0.1, 1])
  histogram.observe({}, 0.05)
  histogram.observe({}, 0.5)
  histogram.observe({}, 5)
  registry.gauge('x_up', 'Up.', () => [{ labels: { store: 'a' }, value: 1 }])
  const text = registry.render()
  t.match(text, '# HELP x_total Things.\\nOn two lines \\\\ with a backslash.\n')
  t.match(text, 'x_total{store="a\\"b\\\\c\\nd"} 1\n')
  t.equal(sample(text, 'x_total', { store: 'plain' }), 2)
  t.equal(sample(text, 'x_seconds_bucket', { le: '0.1' }), 1)
  t.equal(sample(text, 'x_seconds_bucket', { le: '1' }), 2, 'buckets are cumulative')
  t.equal(sample(text, 'x_seconds_bucket', { le: '+Inf' }), 3)
  t.equal(sample(text, 'x_seconds_count'), 3)
  t.equal(sample(text, 'x_seconds_sum'), 5.55)
  t.equal(sample(text, 'x_up', { store: 'a' }), 1)
  t.ok(text.endsWith('\n'))

  const bounded = new Counter('y_total', 'Bounded.')
  for (let i = 0; i < 1500; i++) bounded.add({ i: String(i) })
  t.equal(bounded.render().length, 2 + 1000, 'at most 1000 series: later ones are dropped')
  const bins = new Histogram('z_seconds', 'Bins.', [1])
  bins.observe({}, 1)
  t.equal(sample(bins.render().join('\n'), 'z_seconds_bucket', { le: '1' }), 1, 'le is inclusive')

  const checked = promtool(text)
  if (checked !== null) t.equal(checked.status, 0, `promtool: ${checked.output}`)
})

const cluster = await startTestCluster(t, { stores: 3 })

t.test('a manager counts statements by store, kind and outcome, and failovers', async (t) => {
  const manager = await startManager(t, cluster, {
    copies: 2,
    table: 'metrics_sessions',
    healthCheckIntervalMillis: 100,
    failThreshold: 1,
  })
  const id = await manager.createSession({ user: 'ada' })
  await manager.readSession(id)
  let text = manager.prometheusMetrics()
  const holders = manager.locate(id).slice(0, 2)
  for (const store of holders) {
    t.ok(
      (sample(text, 'session_shards_store_requests_total', {
        store,
        statement: 'write',
        outcome: 'ok',
      }) ?? 0) >= 1,
      `${store}: the write is counted`,
    )
    t.ok(
      (sample(text, 'session_shards_store_request_duration_seconds_count', {
        store,
        statement: 'write',
      }) ?? 0) >= 1,
      `${store}: and timed`,
    )
  }
  for (const store of cluster.stores) {
    t.equal(sample(text, 'session_shards_store_up', { store: store.id }), 1)
    t.equal(sample(text, 'session_shards_hints_waiting', { store: store.id }), 0)
  }
  t.equal(sample(text, 'session_shards_config_mismatches'), 0)

  // A hung store: a write sent to it times out (unreachable), the circuit opens (a
  // failover), writes it misses leave hints. Hung rather than crashed: a crashed store refuses
  // connections at once, so a health round between the crash and the write could take it out
  // of service first and the write would never go to it; a hung store's probe takes a whole
  // timeout to fail, long after the write was sent.
  const hung = cluster.stores.find((store) => store.id === holders[0])!
  await hung.pause()
  t.teardown(() => (hung.paused ? hung.resume() : undefined))
  await manager.writeSession(id, { user: 'bob' }) // hedged to the next store
  const unreachableWrites = (): number =>
    sample(manager.prometheusMetrics(), 'session_shards_store_requests_total', {
      store: hung.id,
      statement: 'write',
      outcome: 'unreachable',
    }) ?? 0
  // Rejects (failing the test) unless the write's timeout is counted.
  await waitFor(
    'the write to the hung store to be counted as unreachable',
    () => unreachableWrites() === 1,
  )
  await waitFor('the circuit to open', () =>
    manager.stats().stores.some((store) => store.id === hung.id && store.state === 'down'),
  )
  for (let i = 0; i < 5; i++) await manager.writeSession(id, { user: 'bob', i })
  text = manager.prometheusMetrics()
  t.equal(sample(text, 'session_shards_failovers_total', { store: hung.id }), 1)
  t.equal(sample(text, 'session_shards_store_up', { store: hung.id }), 0)
  t.equal(unreachableWrites(), 1, 'a store out of service is sent no writes')
  t.equal(sample(text, 'session_shards_hints_waiting', { store: hung.id }), 1)
  t.equal(sample(text, 'session_shards_store_behind', { store: hung.id }), 1)

  const checked = promtool(text)
  if (checked !== null) t.equal(checked.status, 0, `promtool: ${checked.output}`)
  hung.resume()
  await waitFor('the store back in service, caught up', () =>
    manager.stats().stores.every((store) => store.state === 'up' && !store.behind),
  )
  text = manager.prometheusMetrics()
  t.equal(sample(text, 'session_shards_hints_waiting', { store: hung.id }), 0)
  t.equal(sample(text, 'session_shards_store_up', { store: hung.id }), 1)
})

/** A meter provider whose collected data the test can read. */
function meterProvider(): {
  provider: MeterProvider
  collect: () => Promise<Map<string, unknown[]>>
} {
  const exporter = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE)
  const reader = new PeriodicExportingMetricReader({ exporter, exportIntervalMillis: 3_600_000 })
  const provider = new MeterProvider({ readers: [reader] })
  const collect = async (): Promise<Map<string, unknown[]>> => {
    const { resourceMetrics } = await reader.collect()
    const byName = new Map<string, unknown[]>()
    for (const scope of resourceMetrics.scopeMetrics) {
      for (const metric of scope.metrics) {
        byName.set(metric.descriptor.name, metric.dataPoints as unknown[])
      }
    }
    return byName
  }
  return { provider, collect }
}

t.test('OpenTelemetry: a meterProvider given gets every instrument', async (t) => {
  const { provider, collect } = meterProvider()
  t.teardown(() => provider.shutdown())
  const manager = await startManager(t, cluster, {
    copies: 2,
    table: 'metrics_sessions',
    meterProvider: provider,
  })
  const id = await manager.createSession({ user: 'ada' })
  await manager.readSession(id)
  const collected = await collect()
  const requests = collected.get('session_shards.store.requests') as {
    attributes: Record<string, string>
    value: number
  }[]
  const holder = manager.locate(id)[0]!
  t.ok(
    requests.some(
      (point) =>
        point.attributes['store'] === holder &&
        point.attributes['statement'] === 'write' &&
        point.attributes['outcome'] === 'ok' &&
        point.value >= 1,
    ),
    'statements by store, kind and outcome',
  )
  const durations = collected.get('session_shards.store.request.duration') as {
    attributes: Record<string, string>
    value: { count: number }
  }[]
  t.ok(durations.some((point) => point.attributes['store'] === holder && point.value.count >= 1))
  const up = collected.get('session_shards.store_up') as {
    attributes: Record<string, string>
    value: number
  }[]
  t.same(
    up.map((point) => [point.attributes['store'], point.value]).sort(),
    cluster.stores.map((store) => [store.id, 1]),
    'store state, observed at collection',
  )
  t.ok(collected.has('session_shards.hints_waiting'), 'hints waiting, observed')
  t.ok(collected.has('session_shards.config_mismatches'), 'mismatches, observed')
})

t.test('OpenTelemetry: without meterProvider, the global one is used', async (t) => {
  const { provider, collect } = meterProvider()
  otelMetrics.setGlobalMeterProvider(provider)
  t.teardown(async () => {
    otelMetrics.disable()
    await provider.shutdown()
  })
  const manager = await startManager(t, cluster, { table: 'metrics_sessions' })
  await manager.createSession({ via: 'global' })
  const requests = (await collect()).get('session_shards.store.requests') as {
    attributes: Record<string, string>
  }[]
  t.ok(requests.some((point) => point.attributes['statement'] === 'write'))
})

t.test(
  'OpenTelemetry: without an SDK registered, nothing is reported to the no-op meter',
  async (t) => {
    // The API hands out one no-op meter; count what is asked of it while a manager works.
    const noop = createNoopMeter()
    const asked: string[] = []
    for (const method of ['createCounter', 'createHistogram', 'createObservableGauge'] as const) {
      const original = noop[method] as (...args: unknown[]) => unknown
      noop[method] = ((...args: unknown[]) => {
        asked.push(method)
        return original.apply(noop, args)
      }) as never
      t.teardown(() => {
        noop[method] = original as never
      })
    }
    const manager = await startManager(t, cluster, { table: 'metrics_sessions' })
    const id = await manager.createSession({ via: 'no sdk' })
    t.same(await manager.readSession(id), { via: 'no sdk' })
    t.same(asked, [], 'no instruments created on the no-op meter')
    t.match(
      manager.prometheusMetrics(),
      /session_shards_store_requests_total\{[^}]*statement="write"/,
    )
  },
)

t.test('meterProvider is checked; the value is not echoed', async (t) => {
  t.throws(() => createManager(t, cluster, { meterProvider: { secret: 'hunter2' } as never }), {
    code: 'INVALID_OPTION',
    message: /^(?!.*hunter2).*meterProvider/s,
  })
})

t.test('serve: /metrics in the Prometheus format, behind the token', async (t) => {
  const manager = await startManager(t, cluster, { table: 'metrics_sessions' })
  const token = 'a-token-of-twenty-chars'
  const server = await startServer(t, manager, { token })
  const base = `http://127.0.0.1:${server.httpAddress!.port}`
  t.equal((await fetch(`${base}/metrics`)).status, 401, 'no token: refused')
  await manager.createSession({ user: 'ada' })
  const answer = await fetch(`${base}/metrics`, { headers: { Authorization: `Bearer ${token}` } })
  t.equal(answer.status, 200)
  t.equal(answer.headers.get('content-type'), 'text/plain; version=0.0.4; charset=utf-8')
  const text = await answer.text()
  t.ok((sample(text, 'session_shards_store_requests_total', { statement: 'write' }) ?? 0) >= 1)
  t.equal(sample(text, 'session_shards_server_connections', { protocol: 'http' }), 1)
  t.equal(sample(text, 'session_shards_server_connections', { protocol: 'line' }), 0)
  t.notMatch(text, token, 'the token is nowhere in the metrics')
  const checked = promtool(text)
  if (checked === null) {
    t.comment('promtool is not installed (apt-get install prometheus): format checked by parsing')
  } else {
    t.equal(checked.status, 0, `promtool check metrics: ${checked.output}`)
  }
  const post = await fetch(`${base}/metrics`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${token}` },
  })
  t.equal(post.status, 405)
})

t.test('OpenTelemetry: a closed manager removes the callbacks of its gauges', async (t) => {
  const { provider } = meterProvider()
  t.teardown(() => provider.shutdown())
  // The SDK's own meter, with its gauges' callbacks counted as they are added and removed.
  let callbacks = 0
  const counting: MeterProviderLike = {
    getMeter: (name) => {
      const meter = provider.getMeter(name)
      return {
        createCounter: (...args) => meter.createCounter(...args),
        createHistogram: (...args) => meter.createHistogram(...args),
        createObservableGauge: (...args) => {
          const gauge = meter.createObservableGauge(...args)
          return {
            addCallback: (callback) => {
              callbacks++
              gauge.addCallback(callback)
            },
            removeCallback: (callback) => {
              callbacks--
              gauge.removeCallback(callback)
            },
          }
        },
      }
    },
  }
  const manager = await startManager(t, cluster, {
    table: 'metrics_sessions',
    meterProvider: counting,
  })
  t.equal(callbacks, 4, 'one per gauge')
  await manager.close()
  t.equal(callbacks, 0, 'all removed')
})
