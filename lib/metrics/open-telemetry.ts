/**
 * The part of the OpenTelemetry metrics API the library uses, typed here so that neither the
 * library nor its type declarations need `@opentelemetry/api` (an optional peer dependency).
 */

/** Attributes of one measurement. */
export type MetricAttributes = Record<string, string>

/** What {@link SessionManagerOptions.meterProvider} must provide: OpenTelemetry's `MeterProvider`. */
export interface MeterProviderLike {
  getMeter(name: string, version?: string): MeterLike
}

/** The instruments of OpenTelemetry's `Meter` that the library creates. */
export interface MeterLike {
  createCounter(name: string, options?: InstrumentOptions): CounterLike
  createHistogram(name: string, options?: InstrumentOptions): HistogramLike
  createObservableGauge(name: string, options?: InstrumentOptions): ObservableLike
}

export interface InstrumentOptions {
  description?: string
  unit?: string
  advice?: { explicitBucketBoundaries?: number[] }
}

export interface CounterLike {
  add(value: number, attributes?: MetricAttributes): void
}

export interface HistogramLike {
  record(value: number, attributes?: MetricAttributes): void
}

export type ObservableCallback = (result: {
  observe(value: number, attributes?: MetricAttributes): void
}) => void

export interface ObservableLike {
  addCallback(callback: ObservableCallback): void
  removeCallback(callback: ObservableCallback): void
}

/** Widened to string so that TypeScript does not resolve the optional module at build time. */
const API_MODULE: string = '@opentelemetry/api'

/** The parts of `@opentelemetry/api` the library calls. */
interface OtelApi {
  metrics?: { getMeterProvider?: () => MeterProviderLike }
  createNoopMeter?: () => MeterLike
}

/** `@opentelemetry/api`, or null when it is not installed. */
async function otelApi(): Promise<OtelApi | null> {
  try {
    return (await import(API_MODULE)) as OtelApi
  } catch {
    return null // not installed: the optional peer dependency is what makes metrics available
  }
}

/**
 * The application's global meter provider, from `@opentelemetry/api` when it is installed;
 * null when it is not. Without an SDK registered, the API's provider records nothing.
 */
export async function globalMeterProvider(): Promise<MeterProviderLike | null> {
  return (await otelApi())?.metrics?.getMeterProvider?.() ?? null
}

/**
 * The API's no-op meter, which its providers hand out while no SDK is registered (and keep
 * handing out: its instruments never record), or null when the API is not installed.
 */
export async function noopMeter(): Promise<MeterLike | null> {
  return (await otelApi())?.createNoopMeter?.() ?? null
}

/** Whether `value` can serve as a meter provider (checked like every option). */
export function isMeterProvider(value: unknown): value is MeterProviderLike {
  return (
    value !== null &&
    typeof value === 'object' &&
    typeof (value as { getMeter?: unknown }).getMeter === 'function'
  )
}
