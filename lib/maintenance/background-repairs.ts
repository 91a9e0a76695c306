/** Repairs a read or a change of the store list asks for, run in the background and bounded. */
import type { Emit } from '../events.js'
import type { HintedHandoff } from '../failure/hinted-handoff.js'
import type { Store } from '../store/store.js'
import type { WorkTracker } from '../work-tracker.js'
import type { RepairContext } from './repair-plan.js'
import { repairSessions } from './repair-plan.js'

/** At most this many read repairs run at once; beyond that, later reads or repair() fix it. */
const MAX_READ_REPAIRS = 16
/** At most this many hand-offs run at once; beyond that, repair() removes what they would. */
const MAX_HAND_OFFS = 16
/**
 * At most this many moves run at once; beyond that, the session stays under the old placement
 * (where reads still look) until a later read finds it there and moves it, a write clears it,
 * or repair() (the rebalance) moves it.
 */
const MAX_MOVES = 16

/**
 * Background repairs of single sessions, counted by the manager's work tracker (so close()
 * lets them finish) and started only while it is open.
 */
export class BackgroundRepairs {
  readonly #context: RepairContext
  readonly #hints: Pick<HintedHandoff, 'record'>
  readonly #work: WorkTracker
  readonly #emit: Emit
  #readRepairs = 0
  #handOffs = 0
  /** Sessions being moved (at most {@link MAX_MOVES}): one read again is not moved twice. */
  readonly #moving = new Set<string>()

  constructor(
    context: RepairContext,
    hints: Pick<HintedHandoff, 'record'>,
    work: WorkTracker,
    emit: Emit,
  ) {
    this.#context = context
    this.#hints = hints
    this.#work = work
    this.#emit = emit
  }

  /**
   * Rewrites the newest copy (or tombstone) where a read found it missing (`stale`), a bounded
   * number at a time; emits `read-repair` once done.
   */
  readRepair(sessionId: string, stale: readonly Store[]): void {
    if (this.#readRepairs >= MAX_READ_REPAIRS) return
    this.#readRepairs++
    const started = this.#work.background(async () => {
      try {
        const { failed } = await repairSessions(this.#context, [sessionId], { dropExtras: false })
        if (failed.length === 0) {
          this.#emit('read-repair', { sessionId, storeIds: stale.map((store) => store.id) })
        }
      } finally {
        this.#readRepairs--
      }
    })
    if (!started) this.#readRepairs--
  }

  /**
   * Removes the copies of `version` or older that `stores` hold of the session (a hedged
   * write's, handed off: the session's first stores, `keepers`, took it too), a bounded number
   * at a time; past the bound the next full repair removes them. Live copies only, and only as
   * new as `version`: a newer write or a tombstone there stays. A store that fails to remove
   * its copy gets a hint, kept by the keepers: its replay, before it serves reads again,
   * removes the copy (left there, the copy would outlive a newer one with a shorter life).
   */
  handOff(
    sessionId: string,
    stores: readonly Store[],
    keepers: readonly Store[],
    version: number,
  ): void {
    if (this.#handOffs >= MAX_HAND_OFFS) return
    this.#handOffs++
    const started = this.#work.background(async () => {
      try {
        const removed = await Promise.allSettled(
          stores.map((store) => store.removeCopy(sessionId, version)),
        )
        const failed = stores.filter((_, index) => removed[index]?.status === 'rejected')
        if (failed.length > 0) await this.#hints.record(sessionId, failed, keepers, version)
      } finally {
        this.#handOffs--
      }
    })
    if (!started) this.#handOffs--
  }

  /**
   * Moves a session found under the old placement to its new stores, removing the old copies
   * (read-through during a change of the store list), a bounded number at a time and each
   * session once at a time; emits `session-moved` once done. Past the bound, or if the move
   * fails, a later read that finds the session there moves it, or repair() does.
   */
  move(sessionId: string): void {
    if (this.#moving.size >= MAX_MOVES || this.#moving.has(sessionId)) return
    this.#moving.add(sessionId)
    const started = this.#work.background(async () => {
      try {
        const { failed } = await repairSessions(this.#context, [sessionId], { dropExtras: true })
        if (failed.length === 0) this.#emit('session-moved', { sessionId })
      } finally {
        this.#moving.delete(sessionId)
      }
    })
    if (!started) this.#moving.delete(sessionId)
  }
}
