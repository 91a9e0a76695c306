/** One manager's stores and what keeps them in service: placement orders, health checks, hinted handoff. */
import { ConfigGuard } from './config-guard.js'
import { SchemaNotAppliedError } from './errors.js'
import type { Emit } from './events.js'
import { HealthCheck } from './failure/health-check.js'
import { HintedHandoff } from './failure/hinted-handoff.js'
import { ReadLease } from './failure/read-lease.js'
import type { RepairContext } from './maintenance/repair-plan.js'
import type { ResolvedOptions } from './options.js'
import { OrderCache } from './placement.js'
import type { StoreListChange } from './store-list-change.js'
import { NO_STORE_LIST_CHANGE, storeListChange } from './store-list-change.js'
import { lockAndHintStatements } from './store/lock-and-hint-statements.js'
import { staleStatements } from './store/stale-statements.js'
import { sessionStatements } from './store/statements.js'
import { upkeepStatements } from './store/upkeep-statements.js'
import { LocalSlowness } from './store/local-slowness.js'
import { Store } from './store/store.js'

/**
 * The stores of one manager (the configured ones and any only in `previousStores`), their
 * orders per session, and the background work that keeps them in service: a health check
 * that probes them and hinted handoff that catches up the ones that missed writes.
 */
export class Cluster {
  /** Every store, sorted by id. */
  readonly stores: readonly Store[]
  /** Stores only in `previousStores`: they hold copies to move away and get no new ones. */
  readonly retiring: readonly Store[]
  readonly storeListChange: StoreListChange
  readonly handoff: HintedHandoff
  /** The read lease, when reads may ask one store alone (`readLeaseMillis`); else null. */
  readonly readLease: ReadLease | null
  /** Publishes this manager's placement configuration and watches the others'. */
  readonly configGuard: ConfigGuard
  /** What repairs need: the order over every store, retiring ones last (never targets). */
  readonly repairContext: RepairContext
  readonly #orders: OrderCache<Store>
  readonly #slowness: LocalSlowness
  readonly #healthCheck: HealthCheck
  readonly #ready: Promise<void>
  #isReady = false

  constructor(options: ResolvedOptions, emit: Emit) {
    const { stores, previousStores, orderCacheSize, copies } = options
    const statements = {
      ...sessionStatements(options.table),
      ...upkeepStatements(options.table),
      ...lockAndHintStatements(options.table),
      ...staleStatements(options.table),
    }
    this.#slowness = new LocalSlowness(
      new Set([...stores, ...(previousStores ?? [])].map((config) => config.id)).size,
      options.queryTimeoutMillis,
    )
    const byId = new Map<string, Store>()
    for (const config of [...stores, ...(previousStores ?? [])]) {
      if (byId.has(config.id)) continue
      const store: Store = new Store(
        config,
        options,
        statements,
        {
          down: (error) => emit('store-down', { storeId: store.id, error }),
          serving: () => emit('store-up', { storeId: store.id }),
        },
        this.#slowness,
      )
      byId.set(config.id, store)
    }
    const current = stores.map((config) => byId.get(config.id) as Store)
    this.stores = [...byId.values()].sort((a, b) => (a.id < b.id ? -1 : 1))
    this.retiring = this.stores.filter((store) => !current.includes(store))
    this.#orders = new OrderCache(current, orderCacheSize, options.placement)
    this.storeListChange =
      previousStores === null
        ? NO_STORE_LIST_CHANGE
        : storeListChange(
            new OrderCache(
              previousStores.map((config) => byId.get(config.id) as Store),
              orderCacheSize,
              options.previousPlacement,
            ),
            this.retiring,
            copies,
            options.minCopies,
            options.clock,
          )
    this.repairContext = {
      orderOf: (id) => this.storeListChange.repairOrder(this.order(id)),
      copies,
      clock: options.clock,
      retiring: new Set(this.retiring),
      moving: this.storeListChange.underWay,
      // As a write's expiresAt in the past (guarantees, expiry): half the sweep grace.
      clockToleranceMillis: options.sweepGraceSeconds * 500,
      decodes: (id, data) => {
        try {
          options.codec.decode(data, id)
          return true
        } catch {
          return false
        }
      },
    }
    this.handoff = new HintedHandoff(this.stores, this.repairContext, {
      windowMillis: options.hintWindowMillis,
      clock: options.clock,
      emit,
    })
    const lease =
      options.readLeaseMillis === 0
        ? null
        : new ReadLease(
            this.stores,
            options.readLeaseMillis,
            options.clock,
            // Read at read time, once the guard and the health check below exist.
            () => this.configGuard.readSettingsAgree && this.#healthCheck.hintsHeard,
          )
    this.readLease = lease
    this.#healthCheck = new HealthCheck(this.stores, options.healthCheckIntervalMillis, (store) => {
      void this.handoff.replay(store).then((caughtUp) => {
        if (caughtUp) lease?.caughtUp(store)
      })
    })
    lease?.start()
    this.configGuard = new ConfigGuard(
      this.stores,
      options.table,
      {
        stores: current.map((store) => store.id).sort(),
        placement: options.placement,
        copies,
        previousStores: previousStores?.map((config) => config.id).sort() ?? null,
        previousPlacement: previousStores === null ? null : options.previousPlacement,
        readQuorum: options.readQuorum,
        readLeaseMillis: options.readLeaseMillis,
      },
      options.healthCheckIntervalMillis,
      options.clock,
      emit,
      // The clock difference a write's expiry already allows (docs/guarantees.md, Expiry).
      (options.sweepGraceSeconds * 1000) / 2,
    )
    const firstGuardRound = this.configGuard.start()
    const firstRound = this.#healthCheck.start()
    // Reads wait for the first round (bounded by one query timeout) so that a manager started
    // after an outage never reads a store before the hints for it are replayed. By then the
    // other managers' configurations were read too.
    const firstRounds = Promise.all([firstRound, firstGuardRound])
    this.#ready = Promise.race([firstRounds, delay(options.queryTimeoutMillis)]).then(() => {
      this.#isReady = true
    })
  }

  /** The session's order over the configured stores. */
  order(sessionId: string): readonly Store[] {
    return this.#orders.order(sessionId)
  }

  /** Resolves once the first health round is done (at most one query timeout). */
  ready(): Promise<void> {
    return this.#ready
  }

  get isReady(): boolean {
    return this.#isReady
  }

  /**
   * Creates the session tables on every store, even one that requests skip as down; rejects
   * with {@link SchemaNotAppliedError}, each failing store's cause attached, if any failed.
   */
  async applySchema(): Promise<void> {
    const results = await Promise.allSettled(this.stores.map((store) => store.applySchema()))
    const failures = results.flatMap((result, index) =>
      result.status === 'rejected'
        ? [{ storeId: (this.stores[index] as Store).id, error: result.reason as Error }]
        : [],
    )
    if (failures.length > 0) throw new SchemaNotAppliedError(failures)
    // The peers table may have just been created: publish this manager's configuration now.
    await this.configGuard.checkNow().catch(() => {})
  }

  /** Stops probing; resolves when a round in flight has finished. */
  stopHealthCheck(): Promise<void> {
    return this.#healthCheck.stop()
  }

  /** Lets hint replays in flight finish, then ends every connection. */
  async close(): Promise<void> {
    await Promise.all([this.#healthCheck.stop(), this.readLease?.stop(), this.configGuard.stop()])
    await this.handoff.settle()
    await Promise.allSettled(this.stores.map((store) => store.close()))
  }
}

function delay(millis: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, millis).unref())
}
