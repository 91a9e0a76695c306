import type { StorePool } from './store-pool.js'

/** What the health check reports to the manager. */
export interface HealthCheckHandlers {
  /** A probe failed on a store whose circuit was closed. */
  storeDown(store: StorePool, error: Error): void
  /**
   * Bring a store that came back (or restarted, or has hints) up to date in the background;
   * it stays behind until that is done.
   */
  catchUp(store: StorePool): void
}

/**
 * Probes every store on a jittered interval (the timer never keeps the process alive):
 * a failed probe marks a store down; a store that answers again is closed and caught up
 * before it serves reads; a store whose uptime went back restarted unseen and is caught up
 * too. Each round also asks every store which stores it holds hints for, so that a store
 * another manager wrote hints for is caught up here too, within one interval.
 */
export class HealthCheck {
  readonly #stores: readonly StorePool[]
  readonly #intervalMillis: number
  readonly #handlers: HealthCheckHandlers
  readonly #uptimes = new Map<StorePool, number>()
  #timer: NodeJS.Timeout | undefined
  #tick: Promise<void> | undefined
  #stopped = false

  constructor(stores: readonly StorePool[], intervalMillis: number, handlers: HealthCheckHandlers) {
    this.#stores = stores
    this.#intervalMillis = intervalMillis
    this.#handlers = handlers
  }

  /**
   * Runs a first check now (which finds stores with hints left by other managers), then
   * checks on the interval. Resolves when the first check is done.
   */
  start(): Promise<void> {
    this.#run()
    return this.#tick ?? Promise.resolve()
  }

  /** Stops probing; resolves when a check in flight has finished. */
  async stop(): Promise<void> {
    this.#stopped = true
    clearTimeout(this.#timer)
    await this.#tick
  }

  #run(): void {
    if (this.#stopped) return
    this.#tick = Promise.all(this.#stores.map((store) => this.#check(store)))
      .then(() => this.#findHintedStores())
      .then(() => this.#schedule())
  }

  #schedule(): void {
    if (this.#stopped) return
    const jitter = 0.8 + Math.random() * 0.4
    this.#timer = setTimeout(() => this.#run(), Math.round(this.#intervalMillis * jitter))
    this.#timer.unref()
  }

  async #check(store: StorePool): Promise<void> {
    let uptime: number
    try {
      uptime = await store.probe()
    } catch (error) {
      if (store.circuit.open()) this.#handlers.storeDown(store, error as Error)
      return
    }
    const previous = this.#uptimes.get(store)
    this.#uptimes.set(store, uptime)
    if (store.circuit.state === 'down') store.circuit.close()
    else if (previous !== undefined && uptime < previous) store.circuit.behind = true
    if (store.circuit.behind) this.#handlers.catchUp(store)
  }

  async #findHintedStores(): Promise<void> {
    const byId = new Map(this.#stores.map((store) => [store.id, store]))
    const targets = await Promise.all(
      this.#stores
        .filter((store) => store.circuit.state === 'up')
        .map((store) => store.hintTargets().catch(() => [] as string[])),
    )
    for (const id of new Set(targets.flat())) {
      const target = byId.get(id)
      if (target === undefined || target.circuit.state !== 'up') continue
      target.circuit.behind = true
      this.#handlers.catchUp(target)
    }
  }
}
