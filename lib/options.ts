/** The session manager's options: their documentation, defaults and checks. */
import type { Clock } from './clock.js'
import { systemClock } from './clock.js'
import type { RowCodec, SessionCodec } from './codec.js'
import { jsonCodec } from './codec.js'
import type { MeterProviderLike } from './metrics/open-telemetry.js'
import { isMeterProvider } from './metrics/open-telemetry.js'
import type { CompressionOption, EncryptionOption } from './at-rest.js'
import { atRestCodec, resolveCompression, resolveEncryption } from './at-rest.js'
import { InvalidOptionError } from './errors.js'
import type { IdSigner } from './ids.js'
import { signerOf } from './ids.js'
import type { PlacementName } from './placement.js'
import { isValidTableName, MAX_TABLE_NAME_LENGTH } from './schema.js'
import { checkSeconds } from './call-arguments.js'
import type { ResolvedStore, StoreOptions } from './store-options.js'
import { resolveStores } from './store-options.js'
import {
  booleanOption,
  MAX_TTL_SECONDS,
  millisOption,
  resolveReadable,
  secondsOption,
  wholeNumber,
} from './validate.js'

/** Options of {@link createSessionManager}. */
export interface SessionManagerOptions {
  /** The stores sessions are spread over. At least one; ids unique. */
  stores: StoreOptions[]
  /**
   * How many stores hold each session.
   * @default 2 (or 1 with a single store)
   */
  copies?: number
  /**
   * Least copies for a write or destroy to be acknowledged when fewer than `copies` stores can
   * take it. The default, `copies`, is what the read rule relies on: a write acknowledged with
   * fewer copies could be missed by a read from another app server (docs/guarantees.md). A
   * lower value keeps writes acknowledged with fewer stores up, trading that guarantee for it.
   * @default copies
   */
  minCopies?: number
  /**
   * How many reachable stores a read asks before answering "no session". At least `copies`.
   * @default copies + 1, at most the number of stores
   */
  maxReadStores?: number
  /**
   * Table name on every store: 1 to 53 letters, digits, `_` or `$`, not only digits (53, so
   * that `<table>_expires_at`, the expiry index, fits MySQL's 64-character identifiers).
   * @default 'sessions'
   */
  table?: string
  /**
   * Lifetime of a session written without an explicit `ttlSeconds`.
   * @default 86400
   */
  ttlSeconds?: number
  /**
   * Time to open a connection to a store.
   * @default 2000
   */
  connectTimeoutMillis?: number
  /**
   * Time one statement may take on one store before the store counts as failed for it.
   * @default 2000
   */
  queryTimeoutMillis?: number
  /**
   * Connections per store.
   * @default 10
   */
  connectionsPerStore?: number
  /**
   * Encodes session data for storage.
   * @default JSON
   */
  codec?: SessionCodec
  /**
   * Largest session, in bytes: the codec's encoding, and the row stored (after compression and
   * encryption, which adds 34 bytes and the key id).
   * @default 1048576
   */
  maxSessionBytes?: number
  /**
   * Compress stored sessions with Node's zlib: `'deflate'`, `'brotli'`, or
   * `{ algorithm, thresholdBytes }`. Sessions whose encoding is shorter than `thresholdBytes`
   * (default 1024) stay plain, as does one that would not shrink. Rows stay readable when
   * compression is turned on, off, or changed: every row says how it was stored.
   * @default off
   */
  compression?: CompressionOption
  /**
   * Encrypt stored sessions with AES-256-GCM: `{ keys: [{ id, key }, ...] }`, 32-byte keys.
   * The first key encrypts; every key decrypts (each row names its key), so keys rotate
   * without downtime: add the new key second on every app server, then move it first on every
   * one, and drop the old one once no row written with it is alive (a session's expiry after its next write: repair copies rows as they are). Each
   * row is bound to its session's id: a row that was tampered with, moved to another id, or
   * whose key is gone is an unreadable copy (the `unreadable-copy` event; the next copy
   * answers), never garbage or another session's data. So is a row not encrypted for its id
   * (a plain row, written before encryption was turned on or planted by someone who can write
   * to the stores), unless `acceptPlainRows: true`, for the migration window. The id, expiry
   * and owner columns stay plain.
   * @default off
   */
  encryption?: EncryptionOption
  /**
   * How many session orders to keep computed in memory: the ones used last, and up to as many
   * more (0 computes each one every time, about 1.3 µs).
   * @default 10000
   */
  orderCacheSize?: number
  /**
   * Operations (reads, writes, destroys, locks, and cluster-wide ones such as a sweep) this
   * manager runs at once at most; one more is refused at once with `TooManyOperationsError`
   * (`TOO_MANY_OPERATIONS`), before any statement. It bounds every queue a flood of calls
   * could grow while the stores are slow.
   * @default 10000
   */
  maxOperationsInFlight?: number
  /**
   * Consecutive failed statements after which a store is marked down and skipped until the
   * health check finds it answering again.
   * @default 3
   */
  failThreshold?: number
  /**
   * How often each store is probed (with ±20% jitter). The probe marks stores down and up,
   * and notices restarts.
   * @default 1000
   */
  healthCheckIntervalMillis?: number
  /**
   * How long a store may miss writes (this manager's, from the first one it missed until it
   * caught up) before hints for it stop (as Cassandra's `max_hint_window`): the writes it
   * misses afterwards leave only one marker per store that took them, the `repair-needed`
   * event is emitted, and the store serves no reads alone until `repair()` has run. Bounds
   * the hints kept for a store that stays away.
   * @default 3_600_000 (one hour)
   */
  hintWindowMillis?: number
  /**
   * Retries on the same store for a transient error (deadlock, lock wait timeout, a pooled
   * connection found broken). Timeouts are never retried.
   * @default 2
   */
  transientRetries?: number
  /**
   * How many reachable stores every read asks in parallel, the newest copy (or a tombstone)
   * winning. The first store sends the data, the others only a digest (version, expiry,
   * tombstone flag), fetched with the data only when it is newer. With `copies` (the default)
   * the stores a read asks always include one that took the last acknowledged write or destroy,
   * whatever each app server sees of the stores, while fewer than `copies` stores are down
   * (docs/guarantees.md). 1 asks the first store alone: one statement per read, with a window
   * in which an app server that did not see a failure may serve a stale copy.
   * @default copies
   */
  readQuorum?: number
  /**
   * With `readQuorum` above 1, how long this manager trusts what it last heard of stores that
   * missed writes. Every app server announces a store that missed one of its writes on the
   * other stores before it acknowledges the write, and reads every store's announcements four
   * times per lease: while its lease runs, a read asks one store that nobody announced alone
   * (one statement), and falls back to `readQuorum` stores otherwise. The first write that
   * misses a store waits one lease before it is acknowledged. 0 turns this off: every read
   * asks `readQuorum` stores. Needs the `<table>_stale` table (`applySchema`); without it,
   * reads ask `readQuorum` stores. A manager that did not read for ten leases stops reading
   * the announcements until its next read, which asks `readQuorum` stores.
   * @default 500
   */
  readLeaseMillis?: number
  /**
   * How sessions are placed. `classic`: the seeded shuffle (docs/placement.md). `rendezvous`:
   * seeded the same way, but adding a store moves only about 1/(n+1) of sessions' first copy.
   * Changing it moves sessions: treat it like a change of the store list (`previousPlacement`).
   * @default 'classic'
   */
  placement?: PlacementName
  /**
   * The store list before a change (a store added, retired or replaced). While set, reads that
   * find nothing under the new placement look under the old one and move what they find;
   * writes and destroys clear the old placement. Run `repair()` (the rebalance) and drop this option once it
   * reports `done`.
   * @default none
   */
  previousStores?: StoreOptions[]
  /**
   * The placement used with `previousStores`.
   * @default the same as `placement`
   */
  previousPlacement?: PlacementName
  /**
   * Coalesce concurrent reads of one store into one statement (`WHERE id IN (...)`): reads
   * that arrive while the store's statements are busy leave together when one completes. A
   * lone read goes out at once, so low-load latency is unchanged.
   * @default true
   */
  batching?: boolean
  /**
   * A key of the session data whose value (a string or number, e.g. `"userId"`), as encoded
   * (one decode per write), is copied into an indexed column, so that `findByOwner` and
   * `destroyByOwner` ("log this user out everywhere") use an index instead of a scan.
   * @default none
   */
  ownerKey?: string
  /**
   * Secrets for signed ids (HMAC-SHA256). The first signs new ids; any of them verifies, so
   * rotate by putting a new secret first and dropping the old one once its ids have expired.
   * Forged or mangled ids are then refused without a statement to any store. At least 32
   * characters each.
   * @default none: ids are not signed
   */
  secrets?: string[]
  /**
   * With `secrets`, also accept ids without a signature (ids issued before signing was turned
   * on). Leave false once those sessions have expired.
   * @default false
   */
  acceptUnsignedIds?: boolean
  /**
   * Delete expired sessions and tombstones on every store every this many seconds (±20%), in
   * small batches, keeping each store busy a fifth of the time at most (`dutyCycle` 0.2); 0
   * turns the background sweep off (run `sm.sweep()` or the CLI instead).
   * @default 900
   */
  sweepIntervalSeconds?: number
  /**
   * How long after it expired a row may be swept. A write's copies can expire before its hint
   * for a store it missed is stored (once that store failed: up to `queryTimeoutMillis` per
   * try); swept meanwhile, they would leave that store's older copy to be the session again.
   * Keep it well above the longest a write can take; 0 sweeps rows as they expire (for tests).
   * @default 300
   */
  sweepGraceSeconds?: number
  /**
   * How long a tombstone (the mark a destroyed session leaves) is kept. It must outlive every
   * copy of the session, so it should be at least the longest TTL you use.
   * @default ttlSeconds
   */
  tombstoneTtlSeconds?: number
  /**
   * Where the manager reads the time (ms since the epoch) for expiries, tombstones and leases.
   * Each operation reads it once, so every copy it writes carries the same expiry. For tests: a
   * fake clock makes expiry decisions reproducible.
   * @default the wall clock (`Date.now()`)
   */
  clock?: Clock
  /**
   * Where the manager's metrics go through OpenTelemetry: statements by store, kind and
   * outcome with their latency, failovers, degraded writes, read repairs, hints waiting and
   * each store's state (docs/operations.md lists them). Nothing is recorded until the app
   * registers an OpenTelemetry SDK. The same figures are always kept for
   * {@link SessionManager.prometheusMetrics}.
   * @default the global meter provider of `@opentelemetry/api` when that package is installed
   * (register the SDK before creating the manager), else none
   */
  meterProvider?: MeterProviderLike
}

/** Options after defaults and validation. */
export interface ResolvedOptions {
  readonly stores: readonly ResolvedStore[]
  readonly copies: number
  readonly minCopies: number
  readonly maxReadStores: number
  readonly table: string
  readonly ttlSeconds: number
  readonly connectTimeoutMillis: number
  readonly queryTimeoutMillis: number
  readonly connectionsPerStore: number
  readonly codec: RowCodec
  readonly maxSessionBytes: number
  readonly orderCacheSize: number
  readonly maxOperationsInFlight: number
  readonly failThreshold: number
  readonly healthCheckIntervalMillis: number
  readonly hintWindowMillis: number
  readonly transientRetries: number
  readonly readQuorum: number
  /** 0 when reads never ask one store alone on the lease (off, or `readQuorum` 1). */
  readonly readLeaseMillis: number
  readonly tombstoneTtlSeconds: number
  /** Verifies ids when `secrets` is set; the secrets live only inside it. */
  readonly idSigner: IdSigner | null
  readonly sweepIntervalSeconds: number
  readonly sweepGraceSeconds: number
  readonly ownerKey: string | null
  readonly batching: boolean
  readonly placement: PlacementName
  /** The previous store list, resolved; stores in both lists appear in both. */
  readonly previousStores: readonly ResolvedStore[] | null
  readonly previousPlacement: PlacementName
  readonly clock: Clock
  /** Undefined: the global one, if `@opentelemetry/api` is installed. */
  readonly meterProvider: MeterProviderLike | undefined
}

/** The options whose values are objects, checked readable before any use. */
const OBJECT_OPTIONS = (
  'stores previousStores secrets codec clock encryption compression meterProvider' as const
).split(' ') as (keyof SessionManagerOptions)[]

/** Applies defaults and checks every option; throws {@link InvalidOptionError} naming the option. */
export function resolveOptions(given: SessionManagerOptions): ResolvedOptions {
  if (given === null || typeof given !== 'object') {
    throw new InvalidOptionError('options', 'must be an object')
  }
  return resolveReadable(given, OBJECT_OPTIONS, resolveOwnOptions)
}

function resolveOwnOptions(options: SessionManagerOptions): ResolvedOptions {
  const stores = resolveStores(options.stores)
  const copies = wholeNumber('copies', options.copies, Math.min(2, stores.length), {
    min: 1,
    max: stores.length,
  })
  const minCopies = wholeNumber('minCopies', options.minCopies, copies, { min: 1, max: copies })
  // More than the number of stores means "all of them".
  const maxReadStores = Math.min(
    wholeNumber('maxReadStores', options.maxReadStores, Math.min(copies + 1, stores.length), {
      min: copies,
    }),
    stores.length,
  )
  const table = options.table ?? 'sessions'
  if (!isValidTableName(table)) {
    throw new InvalidOptionError(
      'table',
      `must be 1 to ${MAX_TABLE_NAME_LENGTH} letters, digits, "_" or "$", not only digits`,
    )
  }
  const codec = options.codec ?? jsonCodec
  if (typeof codec?.encode !== 'function' || typeof codec?.decode !== 'function') {
    throw new InvalidOptionError('codec', 'must have encode and decode functions')
  }
  // A store's data column (MEDIUMBLOB) holds at most 16 MiB - 1.
  const maxSessionBytes = wholeNumber('maxSessionBytes', options.maxSessionBytes, 1024 * 1024, {
    min: 2,
    max: 16_777_215,
    unit: 'bytes',
  })
  const readQuorum = wholeNumber('readQuorum', options.readQuorum, copies, {
    min: 1,
    max: maxReadStores,
  })
  const ttlSeconds =
    options.ttlSeconds === undefined ? 86400 : checkSeconds('ttlSeconds', options.ttlSeconds)
  return {
    stores,
    copies,
    minCopies,
    maxReadStores,
    table,
    ttlSeconds,
    connectTimeoutMillis: millisOption(
      'connectTimeoutMillis',
      options.connectTimeoutMillis,
      2000,
      1,
      MAX_STATEMENT_MILLIS,
    ),
    queryTimeoutMillis: millisOption(
      'queryTimeoutMillis',
      options.queryTimeoutMillis,
      2000,
      1,
      MAX_STATEMENT_MILLIS,
    ),
    connectionsPerStore: wholeNumber('connectionsPerStore', options.connectionsPerStore, 10, {
      min: 1,
      max: 1000,
    }),
    codec: atRestCodec(
      codec,
      resolveCompression(options.compression),
      resolveEncryption(options.encryption),
      maxSessionBytes,
    ),
    maxSessionBytes,
    orderCacheSize: wholeNumber('orderCacheSize', options.orderCacheSize, 10000, {
      min: 0,
      max: 10_000_000,
    }),
    maxOperationsInFlight: wholeNumber(
      'maxOperationsInFlight',
      options.maxOperationsInFlight,
      10_000,
      { min: 1, max: 10_000_000 },
    ),
    failThreshold: wholeNumber('failThreshold', options.failThreshold, 3, { min: 1, max: 1000 }),
    // Jittered by up to +20%: one day keeps the timer far inside its range.
    healthCheckIntervalMillis: millisOption(
      'healthCheckIntervalMillis',
      options.healthCheckIntervalMillis,
      1000,
      10,
      86_400_000,
    ),
    hintWindowMillis: millisOption(
      'hintWindowMillis',
      options.hintWindowMillis,
      3_600_000,
      1,
      604_800_000,
    ),
    transientRetries: wholeNumber('transientRetries', options.transientRetries, 2, {
      min: 0,
      max: 10,
    }),
    readQuorum,
    readLeaseMillis:
      readQuorum === 1 ? 0 : leaseOption('readLeaseMillis', options.readLeaseMillis, 500),
    idSigner: signerOf(
      options.secrets,
      booleanOption('acceptUnsignedIds', options.acceptUnsignedIds, false),
    ),
    ownerKey: resolveOwnerKey(options.ownerKey),
    batching: booleanOption('batching', options.batching, true),
    placement: placementOption('placement', options.placement),
    previousStores:
      options.previousStores === undefined
        ? null
        : resolveStores(options.previousStores, 'previousStores'),
    previousPlacement: placementOption(
      'previousPlacement',
      options.previousPlacement ?? options.placement,
    ),
    // Jittered by up to +20%: a week keeps the timer far inside its range.
    sweepIntervalSeconds: secondsOption(
      'sweepIntervalSeconds',
      options.sweepIntervalSeconds,
      900,
      0,
      604_800,
    ),
    sweepGraceSeconds: secondsOption(
      'sweepGraceSeconds',
      options.sweepGraceSeconds,
      300,
      0,
      604_800,
    ),
    tombstoneTtlSeconds: secondsOption(
      'tombstoneTtlSeconds',
      options.tombstoneTtlSeconds,
      ttlSeconds,
      1,
      MAX_TTL_SECONDS,
    ),
    clock: clockOption(options.clock),
    meterProvider: meterProviderOption(options.meterProvider),
  }
}

function meterProviderOption(provider: unknown): MeterProviderLike | undefined {
  if (provider === undefined || isMeterProvider(provider)) return provider
  throw new InvalidOptionError(
    'meterProvider',
    'must be an OpenTelemetry MeterProvider (with getMeter)',
  )
}

function clockOption(clock: unknown): Clock {
  if (clock === undefined) return systemClock
  if (clock === null || typeof (clock as Partial<Clock>).now !== 'function') {
    throw new InvalidOptionError('clock', 'must be an object with a now() function')
  }
  return clock as Clock
}

/** The longest a statement or a connection attempt may take: ten minutes. */
const MAX_STATEMENT_MILLIS = 600_000

function placementOption(name: string, value: unknown): PlacementName {
  if (value === undefined) return 'classic'
  if (value !== 'classic' && value !== 'rendezvous') {
    throw new InvalidOptionError(name, 'must be "classic" or "rendezvous"')
  }
  return value
}

function resolveOwnerKey(key: unknown): string | null {
  if (key === undefined) return null
  if (typeof key !== 'string' || key === '') {
    throw new InvalidOptionError(
      'ownerKey',
      'must be a non-empty string naming a key of the session data',
    )
  }
  return key
}

/** `readLeaseMillis`: 0 (off), or from 20 ms (four rounds per lease) to a minute. */
function leaseOption(name: string, value: unknown, fallback: number): number {
  return value === 0 ? 0 : millisOption(name, value, fallback, 20, 60_000)
}
