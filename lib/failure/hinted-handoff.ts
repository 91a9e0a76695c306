/** Hinted handoff: remembers which stores missed which writes, and replays them before those stores serve reads. */
import { debug } from '../debug.js'
import type { RepairContext } from '../maintenance/repair-plan.js'
import { repairSessions } from '../maintenance/repair-plan.js'
import type { Store } from '../store/store.js'

/** Hinted ids remembered in memory per store; past this, only the durable hints remain. */
const MEMORY_HINTS_PER_STORE = 100_000
/** Ids replayed per statement batch. */
const REPLAY_BATCH = 200

/**
 * Hinted handoff: when a write or destroy cannot reach a store among a session's first
 * `copies`, the stores that took it instead keep a hint (a row in `<table>_hints`, and this
 * manager keeps the id in memory too). The missing store is marked `behind` at once, so this
 * manager does not read from it; before it is read from again, every hint for it is replayed
 * (the newest copy or tombstone is written to it), then the hints are deleted.
 */
export class HintedHandoff {
  readonly #context: RepairContext
  readonly #memory = new Map<Store, Set<string>>()
  readonly #recording = new Map<Store, number>()
  readonly #replays = new Map<Store, Promise<boolean>>()
  readonly #stores: readonly Store[]

  constructor(stores: readonly Store[], context: RepairContext) {
    this.#stores = stores
    this.#context = context
  }

  /**
   * Records that `targets` missed a write of `sessionId` that `holders` took. The targets
   * stop answering this manager's reads at once; the durable hints are written before the
   * write is acknowledged.
   */
  async record(
    sessionId: string,
    targets: readonly Store[],
    holders: readonly Store[],
  ): Promise<void> {
    for (const target of targets) {
      target.standing.missedWrites()
      const ids = this.#memory.get(target) ?? new Set<string>()
      this.#memory.set(target, ids)
      if (ids.size < MEMORY_HINTS_PER_STORE) ids.add(sessionId)
      this.#recording.set(target, (this.#recording.get(target) ?? 0) + 1)
    }
    try {
      await Promise.allSettled(
        holders.flatMap((holder) => targets.map((target) => holder.addHint(target.id, sessionId))),
      )
    } finally {
      for (const target of targets)
        this.#recording.set(target, (this.#recording.get(target) ?? 1) - 1)
    }
  }

  /**
   * Replays every hint for `target` (one replay at a time per store). Resolves true once the
   * store holds everything it missed and may answer reads again (its `behind` mark is
   * cleared), false if it must be tried again later.
   */
  replay(target: Store): Promise<boolean> {
    let running = this.#replays.get(target)
    if (running === undefined) {
      running = this.#replayAll(target).finally(() => this.#replays.delete(target))
      this.#replays.set(target, running)
    }
    return running
  }

  /** Waits for replays in flight (used by close). */
  async settle(): Promise<void> {
    await Promise.allSettled([...this.#replays.values()])
  }

  async #replayAll(target: Store): Promise<boolean> {
    for (let round = 0; round < 5; round++) {
      if (!target.standing.up) return false
      if (!(await this.#replayMemory(target))) return false
      for (const holder of this.#stores) {
        if (holder === target || !holder.standing.up) continue
        if (!(await this.#replayDurable(target, holder))) return false
      }
      if ((this.#memory.get(target)?.size ?? 0) === 0 && (this.#recording.get(target) ?? 0) === 0) {
        target.standing.caughtUp()
        return true
      }
    }
    return false
  }

  async #replayMemory(target: Store): Promise<boolean> {
    const ids = this.#memory.get(target)
    while (ids !== undefined && ids.size > 0) {
      const batch = [...ids].slice(0, REPLAY_BATCH)
      const { failed } = await repairSessions(this.#context, batch, { dropExtras: false })
      if (failed.length > 0) return false
      for (const id of batch) ids.delete(id)
    }
    return true
  }

  async #replayDurable(target: Store, holder: Store): Promise<boolean> {
    let after = ''
    try {
      for (;;) {
        const batch = await holder.hintedIds(target.id, after, REPLAY_BATCH)
        if (batch.length === 0) return true
        const { failed } = await repairSessions(this.#context, batch, { dropExtras: false })
        if (failed.length > 0) return false
        await Promise.all(batch.map((id) => holder.deleteHint(target.id, id)))
        after = batch[batch.length - 1] as string
      }
    } catch (error) {
      // A holder that fails now is skipped; its hints are also on the other holders.
      debug('hint replay for %s from %s: %s', target.id, holder.id, (error as Error).message)
      return !holder.standing.up
    }
  }
}
