/** A change of the store list under way (`previousStores`): where reads look too, what writes clear. */
import { askInOrder } from './ask-in-order.js'
import type { StoreAnswer } from './ask-in-order.js'
import type { OrderCache } from './placement.js'
import type { StoredCopy } from './store/rows.js'
import type { Store } from './store/store.js'

/**
 * While `previousStores` is set, sessions may still sit where the old list put them. This
 * wraps the read and write paths' routing rather than branching inside them:
 * - a read that finds nothing under the new placement asks the old one, and the session found
 *   there is moved (read-through);
 * - a write first checks the old placement for a tombstone (a destroy from before the change
 *   must still win), and clears the old placement's copies afterwards;
 * - repair and rebalance see the retiring stores last, never as targets, so they empty them.
 * Without a change of the store list every step is a no-op ({@link NO_STORE_LIST_CHANGE}).
 */
export interface StoreListChange {
  /**
   * Whether a change is under way. A read that then finds a session under neither placement
   * looks at the new one once more: a move (rebalance, a read-through, a write) copies to the
   * new placement before it removes from the old, so one that ran between the read's two looks
   * left the session where the second look finds it.
   */
  readonly underWay: boolean
  /** The session's copies under the old placement, from the stores not asked yet. */
  lookUpOld(
    sessionId: string,
    asked: ReadonlySet<Store>,
  ): Promise<StoreAnswer<Store, StoredCopy | null>[]>
  /** Whether the old placement holds a tombstone for the session. */
  destroyedUnderOld(sessionId: string): Promise<boolean>
  /**
   * After a write or destroy reached `reached`: the old placement's first `copies` stores it did
   * not reach get `clear` (a delete of copies older than the write).
   */
  clearOld(
    sessionId: string,
    reached: readonly Store[],
    clear: (store: Store) => Promise<unknown>,
  ): Promise<void>
  /** The order repair walks for a session: the current order, then the retiring stores. */
  repairOrder(order: readonly Store[]): readonly Store[]
}

/** No change of the store list under way. */
export const NO_STORE_LIST_CHANGE: StoreListChange = {
  underWay: false,
  lookUpOld: async () => [],
  destroyedUnderOld: async () => false,
  clearOld: async () => {},
  repairOrder: (order) => order,
}

/** A change from `previous` (the old placement's orders) to the current store list. */
export function storeListChange(
  previous: OrderCache<Store>,
  retiring: readonly Store[],
  copies: number,
): StoreListChange {
  const oldCopies = (sessionId: string): Store[] =>
    previous
      .order(sessionId)
      .slice(0, copies)
      .filter((store) => store.standing.up)
  return {
    underWay: true,
    async lookUpOld(sessionId, asked) {
      const old = oldCopies(sessionId).filter((store) => !asked.has(store))
      const found = await askInOrder(old, 0, old.length, (store) => store.read(sessionId))
      return found.answers
    },
    async destroyedUnderOld(sessionId) {
      const reads = await Promise.allSettled(
        oldCopies(sessionId).map((store) => store.read(sessionId)),
      )
      return reads.some((read) => read.status === 'fulfilled' && read.value?.deleted === true)
    },
    async clearOld(sessionId, reached, clear) {
      const left = oldCopies(sessionId).filter((store) => !reached.includes(store))
      await Promise.allSettled(left.map(clear))
    },
    repairOrder: (order) => (retiring.length === 0 ? order : [...order, ...retiring]),
  }
}
