import type { StorePool } from './store-pool.js'

/** What the health check reports to the manager. */
export interface HealthCheckHandlers {
  /** A probe failed on a store whose circuit was closed. */
  storeDown(store: StorePool, error: Error): void
  /** Bring a store that came back (or restarted, or missed writes) up to date; true when done. */
  catchUp(store: StorePool): Promise<boolean>
}

/**
 * Probes every store on a jittered interval (the timer never keeps the process alive):
 * a failed probe marks a store down; a store that answers again is closed and caught up
 * before it serves reads; a store whose uptime went back restarted unseen and is caught up too.
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
   * Runs a first check now, which also replays hints left for any store by other managers,
   * then checks on the interval. Resolves when the first check is done.
   */
  start(): Promise<void> {
    this.#run(true)
    return this.#tick ?? Promise.resolve()
  }

  /** Stops probing; resolves when a check in flight has finished. */
  async stop(): Promise<void> {
    this.#stopped = true
    clearTimeout(this.#timer)
    await this.#tick
  }

  #run(initial = false): void {
    if (this.#stopped) return
    this.#tick = Promise.all(this.#stores.map((store) => this.#check(store, initial))).then(() => {
      this.#schedule()
    })
  }

  #schedule(): void {
    if (this.#stopped) return
    const jitter = 0.8 + Math.random() * 0.4
    this.#timer = setTimeout(() => this.#run(), Math.round(this.#intervalMillis * jitter))
    this.#timer.unref()
  }

  async #check(store: StorePool, initial: boolean): Promise<void> {
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
    else if (initial || (previous !== undefined && uptime < previous)) store.circuit.behind = true
    if (store.circuit.behind) await this.#handlers.catchUp(store)
  }
}
