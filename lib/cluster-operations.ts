/** Operations on the whole cluster: listing and finding, maintenance, views for operators, the lifecycle. */
import { EventEmitter } from 'node:events'
import { inspect } from 'node:util'
import { settledUnlessAborted } from './abortable.js'
import {
  batchSizeOption,
  callOptions,
  checkOwner,
  dutyCycleOption,
  ownerOf,
} from './call-arguments.js'
import { Cluster } from './cluster.js'
import type { SessionData } from './codec.js'
import { InvalidOptionError, ManagerClosedError } from './errors.js'
import type { Emit, SessionManagerEvents } from './events.js'
import { checkSessionId } from './ids.js'
import type { SessionInspection, StoreReport } from './maintenance/inspection.js'
import { inspectSession, storeReports } from './maintenance/inspection.js'
import type { ListingContext, ListOptions } from './maintenance/listing.js'
import { findSessions, hasValue, listIds, ownerCandidates } from './maintenance/listing.js'
import type { RepairOptions, RepairResult } from './maintenance/repair-scan.js'
import { checkRepairOptions, repairAllStores } from './maintenance/repair-scan.js'
import type { SweepOptions, SweepResult } from './maintenance/sweeper.js'
import { BackgroundSweeper, sweepStores } from './maintenance/sweeper.js'
import type { ResolvedOptions, SessionManagerOptions } from './options.js'
import { resolveOptions } from './options.js'
import { checkKey } from './session-values.js'
import { checkFunction, checkSignal } from './validate.js'
import type { ConfigMismatch } from './events.js'
import type { ReadLeaseStats } from './failure/read-lease.js'
import { SessionMetrics } from './metrics/session-metrics.js'
import type { Store, StoreStats } from './store/store.js'
import { WorkTracker } from './work-tracker.js'

/**
 * The background sweep's share of each store's time: it is never in a hurry, and on app servers
 * that share their machines with the stores a sweep at full speed takes CPU from requests.
 */
const BACKGROUND_SWEEP_DUTY_CYCLE = 0.2

/**
 * What a {@link SessionManager} does with the whole cluster rather than one session: it owns
 * the stores (a {@link Cluster}), the work in flight and the background sweeper, and it closes
 * them. The session operations live in the subclass, {@link SessionManager}, the only one.
 */
export abstract class ClusterOperations extends EventEmitter<SessionManagerEvents> {
  // Private fields behind protected getters: util.inspect (even without custom inspection)
  // shows a class's own properties, and the options hold the stores' passwords.
  readonly #options: ResolvedOptions
  readonly #cluster: Cluster
  readonly #work: WorkTracker
  readonly #emit: Emit
  readonly #sweeper: BackgroundSweeper
  readonly #metrics: SessionMetrics
  #closing: Promise<void> | undefined

  constructor(options: SessionManagerOptions) {
    super()
    this.#options = resolveOptions(options)
    this.#work = new WorkTracker(this.#options.maxOperationsInFlight)
    // The map types every event; EventEmitter's own signature cannot follow a generic name.
    const untyped = this as unknown as EventEmitter
    this.#emit = (name, ...payload) => void untyped.emit(name, ...payload)
    this.#cluster = new Cluster(this.#options, this.#emit)
    const cluster = this.#cluster
    this.#metrics = new SessionMetrics(
      {
        stores: cluster.stores,
        hintsWaiting: (store) => cluster.handoff.hintsWaiting(store as Store),
        configMismatches: () => cluster.configGuard.mismatches.length,
      },
      (name, listener) => this.on(name, listener as never),
      this.#options.meterProvider,
    )
    for (const store of cluster.stores) store.observer = this.#metrics.observeStore(store.id)
    this.#sweeper = new BackgroundSweeper(this.options.sweepIntervalSeconds, () =>
      this.sweep({ dutyCycle: BACKGROUND_SWEEP_DUTY_CYCLE }),
    )
    this.#sweeper.start()
  }

  /** The options, resolved. */
  protected get options(): ResolvedOptions {
    return this.#options
  }

  /** The stores and what keeps them in service. */
  protected get cluster(): Cluster {
    return this.#cluster
  }

  /** Work in flight, so that close() can let it settle. */
  protected get work(): WorkTracker {
    return this.#work
  }

  /** Emits one of the manager's events (what the paths are handed instead of the manager). */
  protected get emitEvent(): Emit {
    return this.#emit
  }

  /** The session's data, or null (see {@link SessionManager.readSession}). */
  abstract readSession(sessionId: string): Promise<SessionData | null>

  /** Destroys the session (see {@link SessionManager.destroySession}). */
  abstract destroySession(sessionId: string): Promise<void>

  /**
   * Resolves once the manager's first health round is done (at most one `queryTimeoutMillis`
   * after creation): every store probed, stores with hints left by other managers found. Reads
   * wait for it on their own; call it to know `stats()` reflects the stores (and that the
   * OpenTelemetry instruments, if any, are in place).
   */
  ready(): Promise<void> {
    return Promise.all([this.cluster.ready(), this.#metrics.loaded]).then(() => {})
  }

  /**
   * The manager's metrics in the Prometheus text format (what `session-shards serve` answers
   * on `/metrics`): statements by store, kind and outcome with their latency, failovers,
   * degraded writes, read repairs, unreadable copies, hints waiting, each store's state and
   * configuration mismatches. The same go to OpenTelemetry (see `meterProvider`).
   */
  prometheusMetrics(): string {
    return this.#metrics.prometheusText()
  }

  /**
   * Every live session's id, once each (however many copies it has), in id order. Reads each
   * reachable store page by page in key order and merges the pages, so memory stays at one
   * page per store whatever the number of sessions.
   *
   * @example
   * for await (const id of sm.list()) console.log(id)
   */
  async *list(options: ListOptions = {}): AsyncGenerator<string> {
    yield* listIds(this.#listing(), callOptions(options))
  }

  /** How many live sessions the cluster holds, each counted once (a full scan, like {@link list}). */
  async count(options: ListOptions = {}): Promise<number> {
    let count = 0
    for await (const _ of this.list(options)) count++
    return count
  }

  /**
   * Ids of the live sessions whose data has `key` equal to `value` (deep equality), in id
   * order. A full scan of every store, in constant memory; for per-user lookups prefer the
   * indexed {@link findByOwner}.
   */
  async *find(key: string, value: unknown, options: ListOptions = {}): AsyncGenerator<string> {
    checkKey(key)
    yield* findSessions(this.#listing(), callOptions(options), (data) => hasValue(data, key, value))
  }

  /** Ids of the live sessions whose data has `key` at all (a full scan, like {@link find}). */
  async *listWithKey(key: string, options: ListOptions = {}): AsyncGenerator<string> {
    checkKey(key)
    yield* findSessions(this.#listing(), callOptions(options), (data) => Object.hasOwn(data, key))
  }

  /**
   * Ids of the live sessions whose `ownerKey` value is `owner`, through the owner index on
   * every reachable store (no scan). Each candidate is confirmed by a read, so a stale copy
   * with an old owner never counts.
   * @throws {NoStoreAvailableError} when a candidate cannot be read (a short list would pass for
   * the whole one)
   */
  async findByOwner(owner: string | number | bigint): Promise<string[]> {
    const owned: string[] = []
    for await (const { id, named } of this.#ownerSessions(owner)) {
      if (named) owned.push(id)
    }
    return owned
  }

  /**
   * Destroys every session of `owner` ("log this user out everywhere"), with tombstones like
   * {@link destroySession}, so none comes back: every candidate of the owner index but one
   * whose data now names another owner, including one this app server reads as expired (an
   * app server whose clock runs behind may still count it live, and a tombstone needs no
   * clock). Resolves how many were destroyed.
   * @throws {NoStoreAvailableError} when a candidate cannot be read (nothing is skipped
   * silently; what was destroyed stays destroyed)
   */
  async destroyByOwner(owner: string | number | bigint): Promise<number> {
    let destroyed = 0
    for await (const { id, data, named } of this.#ownerSessions(owner)) {
      if (data !== null && !named) continue
      await this.destroySession(id)
      destroyed++
    }
    return destroyed
  }

  /**
   * The owner index's candidates for `owner` that this manager serves, each with its data as a
   * read finds it now (null: none) and whether that data names the owner. A candidate that
   * cannot be read rejects (NoStoreAvailableError): none is skipped silently.
   */
  async *#ownerSessions(
    owner: string | number | bigint,
  ): AsyncGenerator<{ id: string; data: SessionData | null; named: boolean }> {
    if (this.options.ownerKey === null) {
      throw new InvalidOptionError('ownerKey', 'must be set to find sessions by owner')
    }
    const wanted = checkOwner(owner)
    for (const id of await ownerCandidates(this.#listing(), wanted)) {
      // An id this manager refuses (unsigned, with `secrets`) is no session it serves.
      try {
        this.checkId(id)
      } catch {
        continue
      }
      const data = await this.readSession(id)
      yield { id, data, named: data !== null && ownerOf(data, this.options.ownerKey) === wanted }
    }
  }

  /**
   * Deletes expired sessions and tombstones whose time is up (`sweepGraceSeconds` ago) on every
   * reachable store, in batches of `batchSize` through the expiry index. The
   * `sweepIntervalSeconds` option runs it in the background, at a `dutyCycle` of 0.2. A store
   * another sweep is sweeping (another app server's, on the same schedule) is skipped and
   * reported with `sweptElsewhere`. `close()` stops a sweep after its current batch (what it
   * left, the next sweep deletes).
   * @throws {InvalidOptionError} for a bad `batchSize`, `dutyCycle`, `onProgress` or `signal`,
   * before any statement
   */
  async sweep(options: SweepOptions = {}): Promise<SweepResult> {
    // Each read once: the sweep runs with the values checked, whatever a getter answers later.
    const { batchSize, dutyCycle, onProgress, signal } = callOptions(options)
    batchSizeOption(batchSize)
    dutyCycleOption(dutyCycle, 1)
    if (onProgress !== undefined) checkFunction('onProgress', onProgress)
    if (signal !== undefined) checkSignal(signal)
    return this.work.track(async () => {
      // The other app servers' store lists as of now, not of the last round: one that just
      // started on a new list may already have hinted the stores it added. Not waited for past
      // a stop: a hung store would hold the round up to a statement deadline.
      await settledUnlessAborted(this.cluster.configGuard.checkNow(), signal)
      return sweepStores(
        this.cluster.stores,
        { batchSize, dutyCycle, onProgress, signal },
        {
          clock: this.options.clock,
          graceMillis: this.options.sweepGraceSeconds * 1000,
          stopping: () => this.work.closing,
          otherHintTargets: this.cluster.configGuard.peerStoreIds,
          retiredHints: {
            hintWindowMillis: this.options.hintWindowMillis,
            unlistedMillis: (id) => this.cluster.configGuard.unlistedMillis(id),
            everListed: (id) => this.cluster.configGuard.everListed(id),
          },
        },
      )
    })
  }

  /**
   * Re-copies every session to where it belongs: walks every reachable store in batches
   * (constant memory), puts each session's newest copy (or tombstone) on the first `copies`
   * reachable stores of its order, removes stale copies and copies outside those stores once
   * the right stores hold the session, and deletes tombstones whose time is up. Idempotent: a
   * second run right after changes nothing. After a change of the store list (`previousStores`)
   * it is the rebalance: it empties the retiring stores too, and once it resolves with
   * `done: true` (and a second run moves nothing) `previousStores` can be dropped. Stop it with
   * `signal` and resume with the `resumeFrom` it returns; `close()` stops it the same way,
   * after the batch in progress.
   * @throws {InvalidOptionError} for a bad `batchSize`, `onProgress`, `signal` or `resumeFrom`,
   * before any statement
   */
  async repair(options: RepairOptions = {}): Promise<RepairResult> {
    const checked = checkRepairOptions(
      callOptions(options),
      this.cluster.stores.map((store) => store.id),
    )
    return this.work.track(async () => {
      const { handoff } = this.cluster
      const markers = await handoff.repairMarkers()
      const result = await repairAllStores(
        this.cluster.stores,
        this.cluster.repairContext,
        checked,
        () => this.work.closing,
      )
      // A store that missed writes past the hint window serves reads again only after this.
      if (result.done) await handoff.clearRepairMarkers(markers)
      return result
    })
  }

  /**
   * Creates the session tables on every store (idempotent), even one that requests skip as
   * down. Rejects with {@link SchemaNotAppliedError}, each failing store's cause attached, if
   * any store failed; the others have their tables.
   */
  async applySchema(): Promise<void> {
    await this.cluster.applySchema()
  }

  /**
   * Every store's row of the session — version, expiry, tombstone, data size, never the data —
   * in the session's order (then stores only in `previousStores`), and what they say by the
   * rule reads follow. Read-only: unlike a read, it repairs nothing.
   */
  async inspectSession(sessionId: string): Promise<SessionInspection> {
    this.checkId(sessionId)
    const { copies, clock } = this.options
    return this.work.track(() =>
      inspectSession(
        sessionId,
        this.cluster.order(sessionId),
        this.cluster.retiring,
        copies,
        clock,
      ),
    )
  }

  /** Each store's standing, a timed probe, and (with `counts`, a full scan each) its rows. */
  async storeReports(options: { counts?: boolean } = {}): Promise<StoreReport[]> {
    const { counts } = callOptions(options)
    return this.work.track(() =>
      storeReports(
        this.cluster.stores,
        this.cluster.retiring,
        this.options.table,
        counts === false ? null : this.options.clock,
      ),
    )
  }

  /**
   * Per store: state, operations, errors and latency; the read lease (null when off); and the
   * live managers on these stores whose placement configuration conflicts with this one's
   * (see the `config-mismatch` event; empty when all agree).
   */
  stats(): {
    stores: StoreStats[]
    readLease: ReadLeaseStats | null
    configMismatches: ConfigMismatch[]
  } {
    const lease = this.cluster.readLease
    return {
      stores: this.cluster.stores.map((store) => store.stats()),
      readLease:
        lease === null
          ? null
          : { holds: lease.holds, readsAlone: lease.usable, staleStoreIds: lease.staleStoreIds },
      configMismatches: this.cluster.configGuard.mismatches,
    }
  }

  /** What listing and finding need; refused once the manager is closing. */
  #listing(): ListingContext {
    if (this.work.closing) throw new ManagerClosedError()
    const { copies, codec, clock } = this.options
    return {
      stores: this.cluster.stores,
      copies,
      codec,
      clock,
      unreadable: (sessionId, error) =>
        this.emit('unreadable-copy', { sessionId, storeId: null, error }),
    }
  }

  /** Throws {@link InvalidSessionIdError} for a malformed id, or one whose signature fails. */
  protected checkId(sessionId: unknown): asserts sessionId is string {
    checkSessionId(sessionId, this.options.idSigner)
  }
  /**
   * Stops accepting work, lets operations in flight settle (a sweep stops after its batch, a
   * lock wait ends with {@link ManagerClosedError}), then ends every connection. Safe to call
   * more than once.
   */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      const settled = this.work.close()
      await Promise.all([this.cluster.stopHealthCheck(), this.#sweeper.stop()])
      await settled
      await this.cluster.close()
      this.#metrics.close()
    })()
    return this.#closing
  }

  [inspect.custom](): string {
    const ids = this.cluster.stores.map((store) => `'${store.id}'`).join(', ')
    return `SessionManager { stores: [${ids}], copies: ${this.options.copies} }`
  }
}
