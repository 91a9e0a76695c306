/** Whether a store's copy at a write's very version is that write: its data tells. */
import type { StoreAnswer } from './ask-in-order.js'
import type { WriteOutcome } from './store/rows.js'
import type { Store } from './store/store.js'

/**
 * The answers, each `outdated` at the write's very version that holds this write's data turned
 * to `written`. Such a copy may be another write's, one that proposed the same version
 * (version-clock.ts), or this write's own, copied there by a read repair or a hint replay while
 * it was under way (common while a store catches up): the same data at the same version is
 * the same session either way. A copy that cannot be read stays outdated (made again above).
 */
export async function ownCopies(
  answers: StoreAnswer<Store, WriteOutcome>[],
  sessionId: string,
  version: number,
  data: Buffer,
): Promise<StoreAnswer<Store, WriteOutcome>[]> {
  // A loop first: this runs for every write, and almost never finds anything.
  if (!answers.some((answer) => atVersion(answer.value, version))) return answers
  return Promise.all(
    answers.map(async (answer) =>
      atVersion(answer.value, version) &&
      (await holdsThisWrite(answer.store, sessionId, version, data))
        ? { ...answer, value: { kind: 'written' } }
        : answer,
    ),
  )
}

/** Whether `store` holds `version` of the session with `data`: false if it cannot say. */
export async function holdsThisWrite(
  store: Store,
  sessionId: string,
  version: number,
  data: Buffer,
): Promise<boolean> {
  const copy = await store.read(sessionId).catch(() => null)
  return copy?.version === version && copy.data?.equals(data) === true
}

function atVersion(outcome: WriteOutcome, version: number): boolean {
  return outcome.kind === 'outdated' && outcome.storedVersion === version
}
