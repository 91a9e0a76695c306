/** Asks stores of an order in parallel lanes, each lane moving on to the next store when one fails or is slow. */
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
  /**
   * Stores passed over because they were slow (hedged): asked, but not waited for. Their
   * answers may still come (`late`): a read that found nothing waits for them before it says
   * "no session".
   */
  passedOver: S[]
  late: Promise<StoreAnswer<S, T> | StoreFailure>[]
}

/** Options of {@link askInOrder}. */
export interface AskOptions<S> {
  /**
   * How long a store may take before its lane also asks the next store (a hedge): the first of
   * the two to answer serves the lane. Undefined, or no store left to ask: wait for it.
   */
  hedgeAfter?: (store: S) => number | undefined
  /**
   * Whether a store may serve as a hedge (answer in a slow store's place). A store that fails
   * is replaced by the next one whatever this says; a store that is only slow is replaced only
   * by one this allows, else its lane waits for it.
   */
  mayHedgeTo?: (store: S) => boolean
}

type Settled<T> = { ok: true; value: T } | { ok: false; error: Error }

/**
 * Asks `wanted` stores of `order` in parallel lanes, starting at `start`; lane `i` runs
 * `task(store, i)`. A store that fails is replaced by the next unasked one in order, so the
 * answers come from the first `wanted` stores that could answer; with `hedgeAfter`, a store
 * that is slow is raced against the next one; a lane left with no store to ask waits for a
 * store another lane's hedge passed over. Answers are sorted by position.
 */
export async function askInOrder<S extends { id: string }, T>(
  order: readonly S[],
  start: number,
  wanted: number,
  task: (store: S, lane: number) => Promise<T>,
  options: AskOptions<S> = {},
): Promise<AskResult<S, T>> {
  if (options.hedgeAfter === undefined) return askWithoutHedging(order, start, wanted, task)
  let next = start
  const answers: StoreAnswer<S, T>[] = []
  const failures: StoreFailure[] = []
  // Attempts a hedge passed over, still running: a lane left with no store to ask takes one.
  const spares: Promise<Settled<T> & { position: number }>[] = []
  const spareStores: S[] = []
  const ask = (position: number, lane: number): Promise<Settled<T> & { position: number }> => {
    const store = order[position] as S
    return task(store, lane).then(
      (value) => ({ ok: true, value, position }),
      (error: unknown) => ({ ok: false, error: toError(error), position }),
    )
  }
  const settledAnswer = (
    outcome: Settled<T> & { position: number },
  ): StoreAnswer<S, T> | StoreFailure => {
    const store = order[outcome.position] as S
    return outcome.ok
      ? { store, position: outcome.position, value: outcome.value }
      : { storeId: store.id, error: outcome.error }
  }
  const record = (outcome: Settled<T> & { position: number }): boolean => {
    const store = order[outcome.position] as S
    if (outcome.ok) answers.push({ store, position: outcome.position, value: outcome.value })
    else failures.push({ storeId: store.id, error: outcome.error })
    return outcome.ok
  }
  const lane = async (index: number): Promise<void> => {
    while (next < order.length) {
      const position = next++
      const attempt = ask(position, index)
      const canHedge = (): boolean =>
        next < order.length && options.mayHedgeTo?.(order[next] as S) !== false
      const hedgeMillis = canHedge() ? options.hedgeAfter?.(order[position] as S) : undefined
      if (hedgeMillis === undefined) {
        if (record(await attempt)) return
        continue
      }
      const timer = delay(hedgeMillis)
      const first = await Promise.race([attempt, timer.elapsed])
      // Most stores answer in time: a timer left to fire for each of them costs CPU at load.
      timer.cancel()
      if (first !== undefined || !canHedge()) {
        // Answered in time, or another lane took the next store meanwhile: no hedge.
        if (record(first ?? (await attempt))) return
        continue
      }
      // Slow: the next store is asked too, and the first of the two to answer serves the lane.
      const hedgePosition = next++
      const hedge = ask(hedgePosition, index)
      const winner = await firstSuccess([attempt, hedge])
      if (winner === undefined) {
        for (const outcome of await Promise.all([attempt, hedge])) record(outcome)
        continue
      }
      record(winner)
      const slowWon = winner.position === position
      spareStores.push(order[slowWon ? hedgePosition : position] as S)
      spares.push(slowWon ? hedge : attempt)
      return
    }
    // Every store was asked, some by hedges whose lanes were served by another: this lane waits
    // for those instead, since an answer they give is as good as any (a write may land there).
    while (spares.length > 0) {
      spareStores.shift()
      if (record(await (spares.shift() as Promise<Settled<T> & { position: number }>))) return
    }
  }
  const lanes = Math.max(0, Math.min(wanted, order.length - start))
  await Promise.all(Array.from({ length: lanes }, (_, index) => lane(index)))
  answers.sort((a, b) => a.position - b.position)
  return {
    answers,
    failures,
    next,
    passedOver: spareStores,
    late: spares.map((spare) => spare.then(settledAnswer)),
  }
}

/**
 * {@link askInOrder} without hedging: a lane waits for its store and moves on only when it
 * fails. The same answers, with less bookkeeping: most writes and reads come this way.
 */
async function askWithoutHedging<S extends { id: string }, T>(
  order: readonly S[],
  start: number,
  wanted: number,
  task: (store: S, lane: number) => Promise<T>,
): Promise<AskResult<S, T>> {
  let next = start
  const answers: StoreAnswer<S, T>[] = []
  const failures: StoreFailure[] = []
  const lane = async (index: number): Promise<void> => {
    while (next < order.length) {
      const position = next++
      const store = order[position] as S
      try {
        answers.push({ store, position, value: await task(store, index) })
        return
      } catch (error) {
        failures.push({ storeId: store.id, error: toError(error) })
      }
    }
  }
  const lanes = Math.max(0, Math.min(wanted, order.length - start))
  if (lanes === 1) await lane(0)
  else await Promise.all(Array.from({ length: lanes }, (_, index) => lane(index)))
  if (answers.length > 1) answers.sort((a, b) => a.position - b.position)
  return { answers, failures, next, passedOver: [], late: [] }
}

/** The first outcome that succeeded, or undefined once all have failed. */
function firstSuccess<T>(
  outcomes: readonly Promise<Settled<T> & { position: number }>[],
): Promise<(Settled<T> & { position: number }) | undefined> {
  return new Promise((resolve) => {
    let failed = 0
    for (const outcome of outcomes) {
      void outcome.then((settled) => {
        if (settled.ok) resolve(settled)
        else if (++failed === outcomes.length) resolve(undefined)
      })
    }
  })
}

/** A timer whose promise resolves after `millis`, unless cancelled (then it never does). */
function delay(millis: number): { elapsed: Promise<undefined>; cancel(): void } {
  let timer: NodeJS.Timeout | undefined
  const elapsed = new Promise<undefined>((resolve) => {
    timer = setTimeout(() => resolve(undefined), millis).unref()
  })
  return { elapsed, cancel: () => clearTimeout(timer) }
}

/** A rejection reason as an Error (a store statement rejects with one; anything else is wrapped). */
export function toError(value: unknown): Error {
  return value instanceof Error ? value : new Error(String(value))
}
