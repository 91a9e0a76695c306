/** A change of the store list under way (`previousStores`): where reads look too, what writes clear. */
import { askInOrder } from './ask-in-order.js'
import type { StoreAnswer } from './ask-in-order.js'
import { NoStoreAvailableError, StoreDownError } from './errors.js'
import type { StoreFailure } from './errors.js'
import type { Clock } from './clock.js'
import type { OrderCache } from './placement.js'
import type { StoredCopy } from './store/rows.js'
import type { Store } from './store/store.js'

/**
 * While `previousStores` is set, sessions may still sit where the old list put them. This
 * wraps the read and write paths' routing rather than branching inside them:
 * - a read that finds nothing under the new placement asks the old one, and the session found
 *   there is moved (read-through);
 * - a write first checks the old placement for a tombstone (a destroy from before the change
 *   must still win), and is refused when too few of the stores that would hold it answer
 *   ({@link tombstoneCheck}); it clears the old placement's copies afterwards;
 * - repair and rebalance see the retiring stores last, never as targets, so they empty them.
 * Without a change of the store list every step is a no-op ({@link NO_STORE_LIST_CHANGE}).
 */
export interface StoreListChange {
  /**
   * Whether a change is under way. A read whose look at the old placement then finds nothing
   * looks at the new one once more: a move (rebalance, a read-through, a write) copies to the
   * new placement before it removes from the old, so one that ran between the read's two looks
   * left the session where the second look finds it.
   */
  readonly underWay: boolean
  /**
   * The session's copies under the old placement, from the stores not asked yet (`asked`
   * answered already), and whether enough of its first `copies` stores answered to tell that
   * it holds no copy: as for a tombstone ({@link tombstoneCheck}), a session written before
   * the change is on at least `minCopies` of them, so `copies - minCopies + 1` caught-up ones
   * include one that holds it.
   */
  lookUpOld(
    sessionId: string,
    asked: ReadonlySet<Store>,
  ): Promise<{ answers: StoreAnswer<Store, StoredCopy | null>[]; tellsAbsence: boolean }>
  /**
   * What the old placement holds of the session, for a write: whether a tombstone, and the
   * highest versions of its live copies (which a write must go above to win, even one that
   * expired) and of those not expired (which a compare-and-set must expect). Rejects with
   * {@link NoStoreAvailableError} when too few of the stores that would hold a tombstone
   * answered to tell (see {@link tombstoneCheck}): the write must then not be made.
   */
  underOld(sessionId: string): Promise<OldPlacement>
  /**
   * After a write or destroy reached `reached`: the old placement's first `copies` stores it did
   * not reach get `clear` (a delete of copies older than the write). Resolves those it could not
   * clear (down, or failing): they may still hold an older copy, which must get a hint.
   */
  clearOld(
    sessionId: string,
    reached: readonly Store[],
    clear: (store: Store) => Promise<unknown>,
  ): Promise<Store[]>
  /**
   * A metadata update (a touch) of the session's copies under the old placement, on its first
   * `copies` stores not in `targets` (the new placement's, updated apart): the session may not
   * have been moved yet. Resolves whether any held a live copy (a store that fails counts as
   * none).
   */
  updateOld(
    sessionId: string,
    targets: readonly Store[],
    update: (store: Store) => Promise<boolean>,
  ): Promise<boolean>
  /** The order repair walks for a session: the current order, then the retiring stores. */
  repairOrder(order: readonly Store[]): readonly Store[]
}

/** What the old placement holds of a session (see {@link StoreListChange.underOld}); 0: none. */
export interface OldPlacement {
  destroyed: boolean
  newestVersion: number
  newestLiveVersion: number
}

/** No change of the store list under way. */
export const NO_STORE_LIST_CHANGE: StoreListChange = {
  underWay: false,
  lookUpOld: async () => ({ answers: [], tellsAbsence: true }),
  underOld: async () => ({ destroyed: false, newestVersion: 0, newestLiveVersion: 0 }),
  clearOld: async () => [],
  updateOld: async () => false,
  repairOrder: (order) => order,
}

/**
 * What the old placement's first `copies` stores answered (`answers`, each with whether the
 * store is behind: it missed writes not replayed to it yet) tells of a tombstone, out of
 * `copies` stores of which `minCopies` took every destroy that was acknowledged:
 * - `destroyed`: an answer holds a tombstone;
 * - `live`: no tombstone, and at least `copies - minCopies + 1` stores that are caught up
 *   answered. A destroy acknowledged without degrading left a tombstone on `minCopies` stores
 *   at least (past the first `copies` if some of them failed), and a durable hint for each of
 *   the first `copies` it missed, which keeps that store behind (for every manager) until the
 *   tombstone is replayed to it; so `copies - minCopies + 1` caught-up stores include one that
 *   would show it. Answers of stores that are behind prove nothing: the destroy may have gone
 *   past them;
 * - `unknown`: too few answered (the others down, failing or hung): the tombstone may be on
 *   those alone, and a write made now would bring the session back under the new placement.
 * A store that is down for good therefore blocks no write on its own with the default
 * `minCopies` (`copies`): the session's other old stores answer for it.
 */
export function tombstoneCheck(
  answers: readonly { deleted: boolean; behind: boolean }[],
  copies: number,
  minCopies: number,
): 'destroyed' | 'live' | 'unknown' {
  if (answers.some((answer) => answer.deleted)) return 'destroyed'
  const caughtUp = answers.filter((answer) => !answer.behind).length
  return caughtUp >= copies - minCopies + 1 ? 'live' : 'unknown'
}

/** A change from `previous` (the old placement's orders) to the current store list. */
export function storeListChange(
  previous: OrderCache<Store>,
  retiring: readonly Store[],
  copies: number,
  minCopies: number,
  clock: Clock,
): StoreListChange {
  const oldCopies = (sessionId: string): Store[] =>
    previous
      .order(sessionId)
      .slice(0, copies)
      .filter((store) => store.standing.up)
  return {
    underWay: true,
    async lookUpOld(sessionId, asked) {
      const holders = previous.order(sessionId).slice(0, copies)
      const old = holders.filter((store) => store.standing.up && !asked.has(store))
      const found = await askInOrder(old, 0, old.length, (store) => store.read(sessionId))
      const answered = new Set([...asked, ...found.answers.map((answer) => answer.store)])
      const caughtUp = holders.filter((store) => answered.has(store) && !store.standing.behind)
      return { answers: found.answers, tellsAbsence: caughtUp.length >= copies - minCopies + 1 }
    },
    async underOld(sessionId) {
      const holders = previous.order(sessionId).slice(0, copies)
      const failures: StoreFailure[] = []
      const answers: { deleted: boolean; behind: boolean }[] = []
      const found = { newestVersion: 0, newestLiveVersion: 0 }
      const now = clock.now()
      await Promise.all(
        holders.map(async (store) => {
          if (!store.standing.up) {
            failures.push({ storeId: store.id, error: new StoreDownError(store.id) })
            return
          }
          try {
            const copy = await store.read(sessionId)
            answers.push({ deleted: copy?.deleted === true, behind: store.standing.behind })
            if (copy === null || copy.deleted) return
            found.newestVersion = Math.max(found.newestVersion, copy.version)
            if (copy.expiresAtMillis > now) {
              found.newestLiveVersion = Math.max(found.newestLiveVersion, copy.version)
            }
          } catch (error) {
            failures.push({ storeId: store.id, error: error as Error })
          }
        }),
      )
      const verdict = tombstoneCheck(answers, copies, minCopies)
      if (verdict === 'unknown') {
        throw new NoStoreAvailableError(
          'tell whether the session was destroyed before the change of the store list',
          failures,
        )
      }
      return { destroyed: verdict === 'destroyed', ...found }
    },
    async clearOld(sessionId, reached, clear) {
      const left = previous
        .order(sessionId)
        .slice(0, copies)
        .filter((store) => !reached.includes(store))
      const cleared = await Promise.allSettled(
        left.map((store) =>
          store.standing.up ? clear(store) : Promise.reject(new StoreDownError(store.id)),
        ),
      )
      return left.filter((_, index) => cleared[index]?.status === 'rejected')
    },
    async updateOld(sessionId, targets, update) {
      const left = oldCopies(sessionId).filter((store) => !targets.includes(store))
      const updated = await Promise.allSettled(left.map(update))
      return updated.some((result) => result.status === 'fulfilled' && result.value)
    },
    repairOrder: (order) => (retiring.length === 0 ? order : [...order, ...retiring]),
  }
}
