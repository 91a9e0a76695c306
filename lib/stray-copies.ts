/** Burying the copies a write created before it met a destroy's tombstone (write-path.ts). */
import { toError } from './ask-in-order.js'
import type { StoreFailure } from './errors.js'
import type { HintedHandoff } from './failure/hinted-handoff.js'
import type { WriteOutcome } from './store/rows.js'
import type { Store } from './store/store.js'

/** What burying needs from the write path. */
export interface BuryContext {
  /** The session's order over the configured stores. */
  order(sessionId: string): readonly Store[]
  readonly handoff: Pick<HintedHandoff, 'record'>
}

/**
 * A write met a tombstone: the stores where it created a live copy get a tombstone too, at
 * `version` (above that copy's) expiring at `expiresAt`. A store it cannot bury now is hinted
 * on the stores that take the same tombstone (the ones that answered with theirs take it as
 * well, and when none of them can, the session's other stores): the copy, newer than every
 * tombstone of the destroy, would otherwise outlive them all and be the session once they
 * were swept. The hints keep the new tombstones from sweeps until their replay buries it.
 * Resolves null when every stray copy was buried or hinted, else the failures that left one
 * without a durable hint.
 */
export async function buryStrayCopies(
  context: BuryContext,
  sessionId: string,
  answers: readonly { store: Store; value: WriteOutcome }[],
  tombstone: { version: number; expiresAt: number },
): Promise<StoreFailure[] | null> {
  const { version, expiresAt } = tombstone
  const failures: StoreFailure[] = []
  /** The stores of `stores` that took the tombstone. */
  const bury = async (stores: readonly Store[]): Promise<Store[]> => {
    const settled = await Promise.allSettled(
      stores.map((store) => store.destroy(sessionId, version, expiresAt)),
    )
    return stores.filter((store, index) => {
      const outcome = settled[index] as PromiseSettledResult<unknown>
      if (outcome.status === 'fulfilled') return true
      failures.push({ storeId: store.id, error: toError(outcome.reason) })
      return false
    })
  }
  const stray = answers.filter((answer) => answer.value.kind === 'written').map((a) => a.store)
  const buried = await bury(stray)
  const unburied = stray.filter((store) => !buried.includes(store))
  if (unburied.length === 0) return null
  const asked = answers.map((answer) => answer.store)
  const holders = [...buried, ...(await bury(asked.filter((store) => !stray.includes(store))))]
  if (holders.length === 0) {
    const rest = context.order(sessionId).filter((store) => !asked.includes(store))
    holders.push(...(await bury(rest)))
  }
  const unhinted = await context.handoff.record(sessionId, unburied, holders, version)
  return unhinted === 0 ? null : failures
}
