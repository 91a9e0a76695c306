/** Probes every store on an interval: down stores come back, restarted and hinted stores catch up. */
import { JitteredTimer } from '../jittered-timer.js'
import type { Store } from '../store/store.js'

/**
 * Probes every store on a jittered interval. The probe's answer goes to the store's standing,
 * which decides: a failed probe takes a store down; a store that answers again is up but behind;
 * a store whose uptime went back restarted unseen and is behind too. Each round also asks every
 * store which stores it holds hints for, so that a store another manager wrote hints for is
 * caught up here too, within one interval. A store that is behind is handed to `catchUp`.
 */
export class HealthCheck {
  readonly #stores: readonly Store[]
  readonly #catchUp: (store: Store) => void
  readonly #uptimes = new Map<Store, number>()
  readonly #timer: JitteredTimer
  #hintsHeard = false

  constructor(stores: readonly Store[], intervalMillis: number, catchUp: (store: Store) => void) {
    this.#stores = stores
    this.#catchUp = catchUp
    this.#timer = new JitteredTimer(intervalMillis, () => this.#round())
  }

  /**
   * Runs a first round now (which finds stores with hints left by other managers), then one
   * per interval. Resolves when the first round is done.
   */
  start(): Promise<void> {
    return this.#timer.runNow()
  }

  /**
   * Whether a round has heard from every store which stores it holds hints for: until then, a
   * store that missed writes before this manager started (its writer's announcement may have
   * run out since) is not known to be behind, and must not be read alone.
   */
  get hintsHeard(): boolean {
    return this.#hintsHeard
  }

  /** Stops probing; resolves when a round in flight has finished. */
  stop(): Promise<void> {
    return this.#timer.stop()
  }

  async #round(): Promise<void> {
    await Promise.all(this.#stores.map((store) => this.#check(store)))
    await this.#findHintedStores()
  }

  async #check(store: Store): Promise<void> {
    let uptime: number
    try {
      uptime = await store.probe()
    } catch (error) {
      store.standing.probeFailed(error as Error, store.weigh(error))
      return
    }
    const previous = this.#uptimes.get(store)
    this.#uptimes.set(store, uptime)
    const restarted = previous !== undefined && uptime < previous
    if (store.standing.probeAnswered(restarted)) this.#catchUp(store)
  }

  async #findHintedStores(): Promise<void> {
    const byId = new Map(this.#stores.map((store) => [store.id, store]))
    let heardAll = this.#stores.every((store) => store.standing.up)
    const targets = await Promise.all(
      this.#stores
        .filter((store) => store.standing.up)
        .map((store) =>
          store.hintTargets().catch(() => {
            heardAll = false
            return [] as string[]
          }),
        ),
    )
    for (const id of new Set(targets.flat())) {
      const target = byId.get(id)
      if (target === undefined || !target.standing.up) continue
      target.standing.missedWrites()
      this.#catchUp(target)
    }
    if (heardAll) this.#hintsHeard = true
  }
}
