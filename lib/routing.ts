/** Which stores an operation asks, in which order: pure functions of a session's order and the stores' standing. */

/** What routing looks at in a store: its id and its standing as this manager sees it. */
export interface Routable {
  readonly id: string
  readonly standing: { readonly up: boolean; readonly behind: boolean }
}

/** Stores a write may use, in order: every store that is up. */
export function writeOrder<S extends Routable>(order: readonly S[]): S[] {
  return order.filter((store) => store.standing.up)
}

/**
 * Stores a read may ask, in order: stores that are down are left out; stores that are behind
 * (missed writes not yet replayed) come last, unless the read asks several stores at once
 * (`readQuorum` > 1), where versions decide anyway.
 */
export function readOrder<S extends Routable>(order: readonly S[], readQuorum: number): S[] {
  const up = writeOrder(order)
  if (readQuorum > 1) return up
  const ready = up.filter((store) => !store.standing.behind)
  return ready.length === up.length ? up : [...ready, ...up.filter((s) => s.standing.behind)]
}

/**
 * How many stores at the head of a session's order a quorum read and a write must stay
 * within: `copies + readQuorum - 1`. A write on `copies` of them and a read of `readQuorum` of
 * them always share one (`copies + readQuorum` exceeds their number), so a read meets every
 * acknowledged write. A store that fails may be replaced by one further along (the fault is
 * then beyond what the overlap covers); a store that is only slow is hedged only within them.
 */
export function quorumSpan(copies: number, readQuorum: number): number {
  return copies + readQuorum - 1
}

/** Whether `store` is among the first `span` stores of `order` (see {@link quorumSpan}). */
export function withinSpan<S>(order: readonly S[], store: S, span: number): boolean {
  const position = order.indexOf(store)
  return position !== -1 && position < span
}

/**
 * The store a read may ask alone (the one-statement fast path): the first store of the order
 * that is up, if it is not behind. Undefined when the read must take the general path.
 */
export function firstReadable<S extends Routable>(order: readonly S[]): S | undefined {
  for (const store of order) {
    if (store.standing.up) return store.standing.behind ? undefined : store
  }
  return undefined
}

/**
 * The stores a read may ask alone, in order, while the read lease runs: those among the
 * session's first `copies` that are up, not behind, and that no manager announced stale
 * (`trusted`). Each holds every acknowledged write of the session: a write that missed one of
 * them announced it stale before it was acknowledged.
 */
export function aloneReadable<S extends Routable>(
  order: readonly S[],
  copies: number,
  trusted: (store: S) => boolean,
): S[] {
  // A loop, not slice and filter: this runs on every read.
  const stores: S[] = []
  for (let i = 0; i < copies && i < order.length; i++) {
    const store = order[i] as S
    if (store.standing.up && !store.standing.behind && trusted(store)) stores.push(store)
  }
  return stores
}

/**
 * Whether any of `stores` lies past the first `span` of `order` (see {@link quorumSpan}). Only
 * failures carry a read or write there, and the overlap then rests on the stores it passed over
 * as slow: such a read or write waits for them rather than count them as failed too (a slow
 * first store hedged to the third while the second fails lands on the third and the fourth,
 * where a reader of the first two does not look).
 */
export function reachesPastSpan<S>(
  order: readonly S[],
  stores: readonly S[],
  span: number,
): boolean {
  return stores.some((store) => order.indexOf(store) >= span)
}

/**
 * How many stores that may hold the session a read did not hear from: those before the last
 * store that answered which gave no answer (down when the read was routed, failed, or passed
 * over as slow), and those after it that failed or were passed over, or that it did not hear
 * from within the first `reach` of the order (as far as reads look: down when routed). Decided
 * from what this read saw, not from the standing when it ends (stores may come back
 * meanwhile). A read that found nothing may answer "no session" only while this is below
 * `copies`.
 */
export function unaskedHolders<S>(
  order: readonly S[],
  answered: readonly S[],
  unanswered: readonly S[],
  reach: number,
): number {
  const lastAnswered = Math.max(-1, ...answered.map((store) => order.indexOf(store)))
  const before = order.slice(0, Math.max(0, lastAnswered)).filter((s) => !answered.includes(s))
  const after = new Set([
    ...unanswered.filter((store) => order.indexOf(store) > lastAnswered),
    ...order.slice(lastAnswered + 1, reach).filter((store) => !answered.includes(store)),
  ])
  return before.length + after.size
}

/**
 * Stores past the session's first `copies` that hold a write which those first stores all hold
 * too (it hedged around one that was slow, and that one took it after all): their copies are
 * handed off, and go, so that they cannot outlive a newer copy with a shorter life. None while
 * a first store misses the write: its hint replay hands them off once it has caught up.
 */
export function handedOffStores<S extends Routable>(
  order: readonly S[],
  copies: number,
  holders: readonly S[],
): S[] {
  if (holders.length <= copies) return []
  const first = order.slice(0, copies)
  if (!first.every((store) => holders.includes(store))) return []
  return holders.filter((store) => !first.includes(store))
}

/**
 * Stores among the session's first `copies` that a write did not reach (they get hints and
 * count as behind until those are replayed).
 */
export function missedStores<S extends Routable>(
  order: readonly S[],
  copies: number,
  holders: readonly S[],
): S[] {
  return order.slice(0, copies).filter((store) => !holders.includes(store))
}

/**
 * Stores past the session's first `copies`, among the first `reach` (as far as reads look),
 * that a destroy did not reach: a live copy a write that failed over or hedged left there
 * would outlive the tombstones, and a read that reaches that store alone would serve it.
 */
export function missedPastCopies<S extends Routable>(
  order: readonly S[],
  copies: number,
  reach: number,
  holders: readonly S[],
): S[] {
  return order.slice(copies, reach).filter((store) => !holders.includes(store))
}
