/** Sweeps: expired copies and spent tombstones deleted in small batches, on demand or on a timer. */
import { randomUUID } from 'node:crypto'
import type { Clock } from '../clock.js'
import { errorSummary } from '../errors.js'
import { JitteredTimer } from '../jittered-timer.js'
import { batchSizeOption, dutyCycleOption } from '../call-arguments.js'
import type { Store } from '../store/store.js'

/** Options of {@link SessionManager.sweep}. */
export interface SweepOptions {
  /**
   * Rows deleted per statement. Small batches keep each statement's locks short.
   * @default 500
   */
  batchSize?: number
  /** Called after each batch with the store's running count. */
  onProgress?: (progress: { storeId: string; deleted: number }) => void
  /**
   * The share of time the sweep may keep a store busy, above 0 and at most 1: after each batch
   * it pauses so that its statements take at most this share of its time on the store (a batch
   * that took 40 ms at 0.2 is followed by a 160 ms pause). A store slowed by other work makes
   * the sweep slow down with it instead of taking the store from requests. 1: no pauses.
   * @default 1 for a sweep called directly, 0.2 for the background sweep
   */
  dutyCycle?: number
  /**
   * Aborting it stops the sweep after each store's batch in progress (what it left, the next
   * sweep deletes); the result then says `stopped`.
   */
  signal?: AbortSignal
}

/** How a sweep runs: its clock, its grace, and whether to stop early (the manager is closing). */
export interface SweepContext {
  clock: Clock
  /** How long ago a row must have expired to go (`sweepGraceSeconds`). */
  graceMillis: number
  stopping(): boolean
  /**
   * Store ids beyond `stores` whose hints hold rows back too: those other app servers configure
   * (during a change of the store list, the stores the new list added, which an app server still
   * on the old one does not know).
   */
  otherHintTargets?: Iterable<string>
  /**
   * A store no live app server lists still counts as listed until it has gone unlisted a whole
   * `hintWindowMillis` (`unlistedMillis`: config-guard.ts; an app server that restarts during
   * a change is briefly unlisted); then the hints for it that were recorded that long ago go,
   * since nothing replays them. Without it, only the stores listed now count, and hints stay.
   */
  retiredHints?: {
    hintWindowMillis: number
    unlistedMillis(storeId: string): number
    /** Whether the manager has seen the store listed: if not, its hints' age decides. */
    everListed(storeId: string): boolean
  }
}

/** What {@link SessionManager.sweep} deleted, per store. */
export interface SweepResult {
  deleted: number
  stores: {
    storeId: string
    deleted: number
    error?: string
    /** True when another sweep (this manager's or another app server's) was sweeping the store. */
    sweptElsewhere?: boolean
  }[]
  /** True when `signal` (or `close()`) stopped the sweep before a store was swept to the end. */
  stopped?: boolean
}

/**
 * The lease a sweep holds on a store, a row of its locks table: no session id contains `~`, so
 * it never meets a session's lock.
 */
export const SWEEP_LEASE_ID = '~sweep'
/** How long a sweep's lease lasts without renewal (a sweeper that died frees the store then). */
const SWEEP_LEASE_MILLIS = 60_000
/** The longest step of a pause between batches: how long a closing manager may wait for it. */
const PAUSE_STEP_MILLIS = 100

/**
 * Deletes expired copies and tombstones whose time was up `graceMillis` ago (a write's copies
 * may expire before its hints are stored) on every reachable store, through
 * the expiry index, `batchSize` rows per statement, stores in parallel; then the store's expired
 * read-lease announcements (not counted in `deleted`). Rows of sessions that another store has
 * missed writes of stay until hint replay (or, past the hint window, a repair) has caught it
 * up: an expired copy must supersede the older copy that store holds before it goes. One sweep
 * at a time per store: a sweep holds a lease on each store it sweeps and skips a store whose
 * lease another holds, so that app servers sweeping on the same schedule do not scan and lock
 * the same rows side by side.
 */
export async function sweepStores(
  stores: readonly Store[],
  options: SweepOptions,
  { clock, graceMillis, stopping, otherHintTargets = [], retiredHints }: SweepContext,
): Promise<SweepResult> {
  const batchSize = batchSizeOption(options.batchSize)
  const dutyCycle = dutyCycleOption(options.dutyCycle, 1)
  const token = randomUUID()
  // Rows a hint for one of these stores holds back stay (lock-and-hint-statements.ts), and so
  // do those of a store listed within the hint window (see hintTargets); hints for a store no
  // app server has listed for longer hold nothing back, since no replay will delete them.
  const listed = [...new Set([...stores.map((store) => store.id), ...otherHintTargets])]
  const signal = options.signal
  let stopped = false
  const stop = (): boolean => {
    stopped ||= stopping() || signal?.aborted === true
    return stopped
  }
  const perStore = await Promise.all(
    stores.map(async (store) => {
      let deleted = 0
      if (!store.standing.up) return { storeId: store.id, deleted, error: 'store is down' }
      // Stopped before it began: no statement, which a hung store would hold up.
      if (stop()) return { storeId: store.id, deleted }
      let leaseEnds = 0
      // Renewed once half of it has passed: one extra statement per half lease, not per batch.
      const holdLease = async (): Promise<boolean> => {
        const now = clock.now()
        if (now < leaseEnds - SWEEP_LEASE_MILLIS / 2) return true
        const held = await store.lock(SWEEP_LEASE_ID, token, now + SWEEP_LEASE_MILLIS)
        if (held) leaseEnds = now + SWEEP_LEASE_MILLIS
        return held
      }
      try {
        if (!(await holdLease())) return { storeId: store.id, deleted, sweptElsewhere: true }
        const { targets, retired } = await hintTargets(store, listed, retiredHints, clock.now())
        while (!stop()) {
          const started = performance.now()
          const count = await store.sweepExpired(batchSize, targets, graceMillis)
          deleted += count
          options.onProgress?.({ storeId: store.id, deleted })
          if (count < batchSize || stop()) break
          await pause(pauseAfterBatch(performance.now() - started, dutyCycle), stop)
          if (stop()) break
          // The lease lapsed (this process stalled past it) and another sweep took the store.
          if (!(await holdLease())) return { storeId: store.id, deleted, sweptElsewhere: true }
        }
        // Expired read-lease announcements and lease locks go too: few, but nothing else
        // deletes them. (A store without the announcements' table, schema not applied since an
        // upgrade, has none to delete.) Not after a stop: the next sweep deletes them.
        if (!stopped) {
          await store.sweepStale().catch(() => 0)
          await store.sweepLocks().catch(() => 0)
          if (retired.length > 0 && retiredHints !== undefined) {
            const createdBy = clock.now() - retiredHints.hintWindowMillis
            await store.sweepHints(retired, createdBy).catch(() => 0)
          }
        }
        return { storeId: store.id, deleted }
      } catch (error) {
        return { storeId: store.id, deleted, error: errorSummary(error) }
      } finally {
        if (leaseEnds > 0) await store.unlock(SWEEP_LEASE_ID, token).catch(() => {})
      }
    }),
  )
  const deleted = perStore.reduce((sum, store) => sum + store.deleted, 0)
  return stopped ? { deleted, stores: perStore, stopped } : { deleted, stores: perStore }
}

/** The pause after a batch that took `batchMillis`, for the sweep to keep to `dutyCycle`. */
export function pauseAfterBatch(batchMillis: number, dutyCycle: number): number {
  return Math.max(0, batchMillis) * (1 / dutyCycle - 1)
}

/** Waits `millis`, in steps short enough that a manager closing meanwhile is not held up. */
async function pause(millis: number, stopping: () => boolean): Promise<void> {
  const until = performance.now() + millis
  while (!stopping()) {
    const left = until - performance.now()
    if (left <= 0) return
    await new Promise((resolve) => setTimeout(resolve, Math.min(left, PAUSE_STEP_MILLIS)))
  }
}

/** Runs a sweep every `intervalSeconds` (±20%), one at a time; 0 runs none. */
export class BackgroundSweeper {
  readonly #timer: JitteredTimer

  constructor(intervalSeconds: number, sweep: () => Promise<unknown>) {
    this.#timer = new JitteredTimer(intervalSeconds * 1000, sweep)
  }

  start(): void {
    this.#timer.start()
  }

  /** Stops the timer; resolves once a sweep in progress has finished. */
  stop(): Promise<void> {
    return this.#timer.stop()
  }
}

/**
 * The stores whose hints (and repair markers) kept on `store` hold its expired rows back
 * (`targets`: those `listed`, and those some app server listed within the hint window, as
 * `retiredHints` tells), and those whose hints and markers go (`retired`). A store this manager
 * never saw listed (a sweep run alone has watched for no time) is retired once its newest hint
 * is a hint window old. Without `retiredHints`, the stores listed alone, and none retired.
 */
async function hintTargets(
  store: Store,
  listed: readonly string[],
  retiredHints: SweepContext['retiredHints'],
  now: number,
): Promise<{ targets: readonly string[]; retired: string[] }> {
  if (retiredHints === undefined) return { targets: listed, retired: [] }
  const { hintWindowMillis, unlistedMillis, everListed } = retiredHints
  const others = (await store.hintTargetAges()).filter(({ id }) => !listed.includes(id))
  const retired = others
    .filter(
      ({ id, newestMillis }) =>
        unlistedMillis(id) >= hintWindowMillis ||
        (!everListed(id) && newestMillis <= now - hintWindowMillis),
    )
    .map(({ id }) => id)
  const recent = others.map(({ id }) => id).filter((id) => !retired.includes(id))
  return { targets: [...listed, ...recent], retired }
}
