/** Hinted handoff: remembers which stores missed which writes, and replays them before those stores serve reads. */
import type { Clock } from '../clock.js'
import { debug } from '../debug.js'
import { errorSummary } from '../errors.js'
import type { Emit } from '../events.js'
import type { HandOver, RepairContext } from '../maintenance/repair-plan.js'
import { repairSessions } from '../maintenance/repair-plan.js'
import type { Store } from '../store/store.js'

/** Hinted ids remembered in memory per store; past this, only the durable hints remain. */
const MEMORY_HINTS_PER_STORE = 100_000
/** Ids replayed per statement batch. */
const REPLAY_BATCH = 200

/** A repair marker as a holder keeps it: the store it marks, and its count when read. */
export interface RepairMarker {
  holder: Store
  target: Store
  seen: number
}

/** What hinted handoff needs besides the stores and the repair context. */
export interface HandoffSettings {
  /** How long a store may miss writes before hints for it stop (`hintWindowMillis`). */
  windowMillis: number
  clock: Clock
  emit: Emit
}

/**
 * Hinted handoff: when a write or destroy cannot reach a store among a session's first
 * `copies`, the stores that took it instead keep a hint (a row in `<table>_hints`, and this
 * manager keeps the id in memory too). The missing store is marked `behind` at once, so this
 * manager does not read from it; before it is read from again, every hint for it is replayed
 * (the newest copy or tombstone is written to it), then the hints are deleted.
 *
 * Hints are bounded in time, as Cassandra's `max_hint_window`: once a store has been missing
 * this manager's writes for longer than the window, the writes it misses leave one repair
 * marker per store that took them instead of a hint per session, `repair-needed` is emitted,
 * and no replay can bring the store back into service until a finished `repair()` has put
 * every session where it belongs and cleared the markers it saw: this manager's own, or one
 * another process ran (`session-shards repair`), which the replay learns of from the stores.
 */
export class HintedHandoff {
  readonly #context: RepairContext
  readonly #settings: HandoffSettings
  /**
   * Per store, the ids it missed, each with how many misses were recorded for it: a replay
   * forgets an id only if no miss was recorded while it ran (the copy it replayed may be older
   * than that miss).
   */
  readonly #memory = new Map<Store, Map<string, number>>()
  readonly #recording = new Map<Store, number>()
  readonly #replays = new Map<Store, Promise<boolean>>()
  /** When each store began missing this manager's writes (cleared once it caught up). */
  readonly #missingSince = new Map<Store, number>()
  /** Stores past the hint window: their missed writes leave repair markers. */
  readonly #pastWindow = new Set<Store>()
  /** Repair markers this manager began to write per store, a count that only grows. */
  readonly #markings = new Map<Store, number>()
  readonly #stores: readonly Store[]

  constructor(stores: readonly Store[], context: RepairContext, settings: HandoffSettings) {
    this.#stores = stores
    this.#context = context
    this.#settings = settings
  }

  /** Sessions this manager knows `store` missed and has not replayed to it yet (bounded per store). */
  hintsWaiting(store: Store): number {
    return this.#memory.get(store)?.size ?? 0
  }

  /**
   * Records that `targets` missed a write of `sessionId` at `version` that `holders` took. The
   * targets stop answering this manager's reads at once; the durable hints (one per holder, so
   * that any of them can tell other managers) are written before the write is acknowledged.
   * Resolves how many targets got no durable hint at all: the write is then acknowledged as
   * degraded, since other managers cannot learn that those stores missed it.
   */
  async record(
    sessionId: string,
    targets: readonly Store[],
    holders: readonly Store[],
    version: number,
  ): Promise<number> {
    for (const target of targets) {
      target.standing.missedWrites()
      this.#checkWindow(target)
      const ids = this.#memory.get(target) ?? new Map<string, number>()
      this.#memory.set(target, ids)
      const misses = ids.get(sessionId)
      if (this.#pastWindow.has(target)) {
        this.#markings.set(target, (this.#markings.get(target) ?? 0) + 1)
      } else if (misses !== undefined || ids.size < MEMORY_HINTS_PER_STORE) {
        ids.set(sessionId, (misses ?? 0) + 1)
      }
      this.#recording.set(target, (this.#recording.get(target) ?? 0) + 1)
    }
    try {
      const perTarget = await Promise.all(
        targets.map(async (target) => {
          const pastWindow = this.#pastWindow.has(target)
          const stored = await Promise.allSettled(
            holders.map((holder) =>
              pastWindow
                ? holder.markRepairNeeded(target.id)
                : holder.addHint(target.id, sessionId, version),
            ),
          )
          return stored.some((result) => result.status === 'fulfilled')
        }),
      )
      return perTarget.filter((hinted) => !hinted).length
    } finally {
      for (const target of targets)
        this.#recording.set(target, (this.#recording.get(target) ?? 1) - 1)
    }
  }

  /** Starts the clock of a store's first missed write; past the window, stops its hints. */
  #checkWindow(target: Store): void {
    const now = this.#settings.clock.now()
    const since = this.#missingSince.get(target)
    if (since === undefined) {
      this.#missingSince.set(target, now)
      return
    }
    if (this.#pastWindow.has(target) || now - since <= this.#settings.windowMillis) return
    this.#pastWindow.add(target)
    this.#memory.delete(target)
    this.#settings.emit('repair-needed', { storeId: target.id, missingForMillis: now - since })
  }

  /**
   * The repair markers of every store, as each holder keeps them: read before a full repair,
   * so that afterwards exactly these can be cleared ({@link clearRepairMarkers}).
   */
  async repairMarkers(): Promise<RepairMarker[]> {
    const found = await Promise.all(
      this.#stores.flatMap((holder) =>
        this.#stores
          .filter((target) => target !== holder && holder.standing.up)
          .map(async (target) => {
            const seen = await holder.repairMarker(target.id).catch(() => null)
            return seen === null ? [] : [{ holder, target, seen }]
          }),
      ),
    )
    return found.flat()
  }

  /**
   * After a finished repair (every session on its stores): clears the markers it saw before
   * it began (a marker set again meanwhile stays), and lets the stores past the window be
   * hinted again. Their remaining hints are replayed by the health check as usual.
   */
  async clearRepairMarkers(markers: readonly RepairMarker[]): Promise<void> {
    await Promise.all(
      markers.map(({ holder, target, seen }) =>
        holder.clearRepairMarker(target.id, seen).catch((error: unknown) => {
          debug(
            'clearing the repair marker of %s on %s: %s',
            target.id,
            holder.id,
            errorSummary(error),
          )
        }),
      ),
    )
    for (const target of this.#pastWindow) this.#missingSince.delete(target)
    this.#pastWindow.clear()
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
    const marked = this.#pastWindow.has(target)
      ? !(await this.#leaveWindow(target))
      : await this.#markedForRepair(target)
    if (marked) return false
    for (let round = 0; round < 5; round++) {
      if (!target.standing.up) return false
      if (!(await this.#replayMemory(target))) return false
      for (const holder of this.#stores) {
        if (holder === target || !holder.standing.up) continue
        if (!(await this.#replayDurable(target, holder))) return false
      }
      if (
        (this.#memory.get(target)?.size ?? 0) === 0 &&
        (this.#recording.get(target) ?? 0) === 0 &&
        // Past the window again meanwhile (a miss left a marker): only a repair catches it up.
        !this.#pastWindow.has(target)
      ) {
        target.standing.caughtUp()
        this.#missingSince.delete(target)
        return true
      }
    }
    return false
  }

  /**
   * Whether `target`, past the hint window for this manager, may be hinted again: every other
   * store is up and none keeps a repair marker for it, since a finished repair cleared them
   * (this manager's, or one another process ran, such as `session-shards repair`). A marker
   * this manager was writing meanwhile, which the stores may not have shown, keeps it past the
   * window. If it may, the window starts afresh and the replay goes on as usual.
   */
  async #leaveWindow(target: Store): Promise<boolean> {
    // A store that is down may keep a marker; a repair finishes only with every store up.
    if (this.#stores.some((store) => store !== target && !store.standing.up)) return false
    if ((this.#recording.get(target) ?? 0) > 0) return false
    const markings = this.#markings.get(target)
    if (await this.#markedForRepair(target)) return false
    if (this.#markings.get(target) !== markings) return false
    this.#pastWindow.delete(target)
    this.#missingSince.delete(target)
    return true
  }

  /**
   * Whether some reachable store keeps a repair marker for `target` (it missed writes past the
   * window, maybe another manager's): then no replay can catch it up, only a repair. A holder
   * that cannot tell counts as marking it.
   */
  async #markedForRepair(target: Store): Promise<boolean> {
    const holders = this.#stores.filter((holder) => holder !== target && holder.standing.up)
    const markers = await Promise.all(
      holders.map((holder) => holder.repairMarker(target.id).catch(() => 0)),
    )
    return markers.some((marker) => marker !== null)
  }

  async #replayMemory(target: Store): Promise<boolean> {
    const ids = this.#memory.get(target)
    while (ids !== undefined && ids.size > 0) {
      // The first ids and their miss counts as the batch starts (not a copy of every id).
      const batch: [string, number][] = []
      for (const entry of ids) {
        batch.push(entry)
        if (batch.length === REPLAY_BATCH) break
      }
      const { failed, handOver } = await repairSessions(
        this.#context,
        batch.map(([id]) => id),
        { dropExtras: false, mustReach: target },
      )
      if (failed.length > 0 || !(await this.#handOver(handOver))) return false
      // A miss recorded meanwhile may be newer than the copy replayed: that id goes round again.
      for (const [id, misses] of batch) if (ids.get(id) === misses) ids.delete(id)
    }
    return true
  }

  /**
   * Sessions a replay brought to its store while another of their first stores could not be
   * read: that store gets a hint, so that it is caught up (and the copies past the targets go)
   * once it answers, rather than holding the replayed store out of service until then. False
   * if some hint could not be stored anywhere.
   */
  async #handOver(entries: readonly HandOver[]): Promise<boolean> {
    const unhinted = await Promise.all(
      entries.map(({ sessionId, unread, version }) => {
        const holders = this.#stores.filter((store) => store.standing.up && !unread.includes(store))
        return this.record(sessionId, unread, holders, version)
      }),
    )
    return unhinted.every((count) => count === 0)
  }

  async #replayDurable(target: Store, holder: Store): Promise<boolean> {
    let after = ''
    try {
      for (;;) {
        const hints = await holder.hintedIds(target.id, after, REPLAY_BATCH)
        if (hints.length === 0) return true
        const ids = hints.map((hint) => hint.id)
        const { failed, handOver } = await repairSessions(this.#context, ids, {
          dropExtras: false,
          mustReach: target,
        })
        if (failed.length > 0 || !(await this.#handOver(handOver))) return false
        // A hint is deleted only up to the version replayed: a newer one, recorded while this
        // replay ran, stays for the next.
        await Promise.all(hints.map(({ id, version }) => holder.deleteHint(target.id, id, version)))
        after = ids[ids.length - 1] as string
      }
    } catch (error) {
      // A holder that fails now is skipped; its hints are also on the other holders.
      debug('hint replay for %s from %s: %s', target.id, holder.id, errorSummary(error))
      return !holder.standing.up
    }
  }
}
