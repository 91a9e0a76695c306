/** The late answers of stores a hedged request passed over as slow: which took it, and when. */
import type { AskResult } from './ask-in-order.js'
import type { Store } from './store/store.js'

/** Stores a hedged request passed over as slow, and for each whether its late answer took it. */
export interface PassedOver<T = unknown> {
  stores: readonly Store[]
  took: readonly Promise<boolean>[]
  /** The late answers heard so far, each with its store, in the order they came. */
  heard: readonly { store: Store; value: T }[]
}

/** The passed-over stores of `asked`, each with whether its late answer `took` the request. */
export function tookLate<T>(
  asked: AskResult<Store, T>,
  took: (value: T) => boolean,
): PassedOver<T> {
  const heard: { store: Store; value: T }[] = []
  return {
    stores: asked.passedOver,
    took: asked.late.map((late) =>
      late.then((outcome) => {
        if (!('store' in outcome)) return false
        heard.push({ store: outcome.store, value: outcome.value })
        return took(outcome.value)
      }),
    ),
    heard,
  }
}

/**
 * Those of `wanted` among the passed-over stores that took the request within `millis`, or by
 * their own deadlines when `millis` is undefined.
 */
export async function landedWithin(
  passedOver: PassedOver,
  wanted: readonly Store[],
  millis?: number,
): Promise<Store[]> {
  const landed: Store[] = []
  const watched = passedOver.stores.flatMap((store, index) =>
    wanted.includes(store)
      ? [
          (passedOver.took[index] as Promise<boolean>).then(
            (took) => void (took && landed.push(store)),
          ),
        ]
      : [],
  )
  if (watched.length === 0) return []
  if (millis === undefined) {
    await Promise.all(watched)
    return landed
  }
  let timer: NodeJS.Timeout | undefined
  await Promise.race([
    Promise.all(watched),
    new Promise((resolve) => {
      timer = setTimeout(resolve, millis)
    }),
  ])
  clearTimeout(timer)
  return [...landed]
}

/**
 * Calls `landed` for each passed-over store outside `held` once its late answer took the
 * request (after the request was answered: its caller no longer waits).
 */
export function whenLanded(
  passedOver: PassedOver,
  held: readonly Store[],
  landed: (store: Store) => void,
): void {
  passedOver.stores.forEach((store, index) => {
    if (held.includes(store)) return
    void (passedOver.took[index] as Promise<boolean>).then((took) => took && landed(store))
  })
}
