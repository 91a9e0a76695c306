/** Asks stores of an order in parallel lanes, each lane moving on to the next store when one fails. */
import type { StoreFailure } from './errors.js'

/** A store's answer, with its position in the session's order. */
export interface StoreAnswer<S, T> {
  store: S
  position: number
  value: T
}

/** The outcome of {@link askInOrder}. */
export interface AskResult<S, T> {
  answers: StoreAnswer<S, T>[]
  failures: StoreFailure[]
  /** Position of the first store not asked; a later call resumes from it. */
  next: number
}

/**
 * Asks `wanted` stores of `order` in parallel, starting at `start`. A store that fails is
 * replaced by the next unasked one in order, so the answers come from the first `wanted`
 * stores that could answer. Answers are sorted by position.
 */
export async function askInOrder<S extends { id: string }, T>(
  order: readonly S[],
  start: number,
  wanted: number,
  task: (store: S) => Promise<T>,
): Promise<AskResult<S, T>> {
  let next = start
  const answers: StoreAnswer<S, T>[] = []
  const failures: StoreFailure[] = []
  const lane = async (): Promise<void> => {
    while (next < order.length) {
      const position = next++
      const store = order[position] as S
      try {
        answers.push({ store, position, value: await task(store) })
        return
      } catch (error) {
        failures.push({ storeId: store.id, error: toError(error) })
      }
    }
  }
  const lanes = Math.max(0, Math.min(wanted, order.length - start))
  await Promise.all(Array.from({ length: lanes }, lane))
  answers.sort((a, b) => a.position - b.position)
  return { answers, failures, next }
}

function toError(value: unknown): Error {
  return value instanceof Error ? value : new Error(String(value))
}
