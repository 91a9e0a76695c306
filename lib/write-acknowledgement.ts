/** Acknowledging a write: enough copies, hints for the stores it missed, what slow ones said late. */
import type { StoreFailure } from './errors.js'
import { NotEnoughStoresError } from './errors.js'
import type { PassedOver } from './late-answers.js'
import { landedWithin } from './late-answers.js'
import { missedStores, reachesPastSpan } from './routing.js'
import type { Store } from './store/store.js'
import type { Emit } from './events.js'
import type { HintedHandoff } from './failure/hinted-handoff.js'
import type { ResolvedOptions } from './options.js'
import type { AttemptDecision } from './write-rules.js'
import { acknowledgement } from './write-rules.js'

/** What the acknowledgement rule concluded: the stores holding a write, and whether degraded. */
export interface Acknowledged {
  held: readonly Store[]
  degraded: boolean
}

/**
 * Not acknowledged: stores passed over as slow answered, before the acknowledgement, what
 * decides the attempt otherwise (a tombstone; a version above the write's, met by a plain first
 * attempt), as if they had answered in time.
 */
export interface Overruled {
  overruledBy: Exclude<AttemptDecision, { kind: 'done' }>
}

/** What the late answers heard so far decide instead, or null when they change nothing. */
export type LateVerdict<T> = (heard: PassedOver<T>['heard']) => Overruled['overruledBy'] | null

/** What acknowledging needs from the write path (its WriteContext, and the quorum span). */
export interface AcknowledgeContext {
  readonly options: Pick<ResolvedOptions, 'copies' | 'minCopies'>
  readonly handoff: Pick<HintedHandoff, 'record'>
  readonly lease: {
    announce(targets: readonly Store[]): Promise<boolean>
    covers(store: Store): boolean
    readonly millis: number
  } | null
  readonly emit: Emit
  /** How many stores at the head of an order a slow copy may be hedged within (routing.ts). */
  readonly span: number
}

/** A write (or destroy) as its stores answered, to be acknowledged. */
export interface WriteToAcknowledge<T> {
  sessionId: string
  /** The session's order over the configured stores. */
  order: readonly Store[]
  version: number
  /** The stores that took it in time. */
  answered: readonly Store[]
  failures: StoreFailure[]
  /** The stores passed over as slow, with their late answers. */
  passedOver: PassedOver<T>
  lateVerdict: LateVerdict<T>
}

/**
 * The acknowledgement rule: refused below `minCopies` (NotEnoughStoresError); the first
 * `copies` stores the write missed get hints, recorded before the write is acknowledged;
 * degraded (reported with an event) below `copies`, or when a missed store got no durable
 * hint (other managers could not learn that it missed the write). Resolves the stores that
 * hold the write (`answered`, and passed-over ones that took it late) and whether degraded.
 */
export function acknowledgeWrite<T>(
  context: AcknowledgeContext,
  write: WriteToAcknowledge<T>,
): Acknowledged | Promise<Acknowledged | Overruled> {
  // The usual case, decided without a promise: the first `copies` stores took it all (so
  // nothing was missed, nothing passed over, and there is nothing to hint or announce).
  const { order, answered, passedOver } = write
  if (
    passedOver.stores.length === 0 &&
    missedStores(order, context.options.copies, answered).length === 0
  ) {
    return { held: answered, degraded: false }
  }
  return acknowledgeSlowly(context, write)
}

async function acknowledgeSlowly<T>(
  context: AcknowledgeContext,
  write: WriteToAcknowledge<T>,
): Promise<Acknowledged | Overruled> {
  const { sessionId, order, version, answered, failures, passedOver, lateVerdict } = write
  const { copies, minCopies } = context.options
  const { lease } = context
  let held = answered
  if (passedOver.stores.length > 0 && reachesPastSpan(order, held, context.span)) {
    // Failures carried the write past the span: the stores it passed over as slow are what
    // the overlap with a reader's stores rests on now (hedged to the third around a slow
    // first store while the second fails, it lands on the third and the fourth, where a
    // reader of the first two does not look). Their answers are waited for, each within its
    // own deadline; one that fails then counts as failed.
    held = [...held, ...(await landedWithin(passedOver, passedOver.stores))]
  }
  if (lease !== null && passedOver.stores.length > 0) {
    // A write hedged around a store that was only slow usually lands there a moment later:
    // the store then did not miss it. Waited for (a fifth of a lease at most) only where a
    // miss would cost an announcement, which holds the write back a whole lease and steers
    // other app servers' reads away from the store.
    const wanted = missedStores(order, copies, held).filter((store) => !lease.covers(store))
    held = [...held, ...(await landedWithin(passedOver, wanted, lease.millis / 5))]
  }
  // What the slow stores answered by now counts, as it would have in time: a tombstone drops
  // the write, a newer version there makes a first attempt go again above it. Else a read
  // that compares copies would take theirs over this write's.
  const overruledBy = passedOver.heard.length === 0 ? null : lateVerdict(passedOver.heard)
  if (overruledBy !== null) return { overruledBy }
  const verdict = acknowledgement(held.length, copies, minCopies)
  if (verdict === 'refused') throw new NotEnoughStoresError(held.length, minCopies, failures)
  const missing = { sessionId, order, version, held, failures }
  return { held, degraded: await recordMisses(context, missing, verdict === 'degraded') }
}

/**
 * Hints and announces the first `copies` stores of `order` that a write `held` by some stores
 * missed, before it is acknowledged. Resolves whether it is degraded: `degraded` already (too
 * few copies), or a missed store got no durable hint or no announcement; `degraded-write`
 * says so.
 */
export async function recordMisses(
  context: Pick<AcknowledgeContext, 'options' | 'handoff' | 'lease' | 'emit'>,
  write: Pick<WriteToAcknowledge<unknown>, 'sessionId' | 'order' | 'version' | 'failures'> & {
    held: readonly Store[]
  },
  degraded: boolean,
): Promise<boolean> {
  const { sessionId, order, version, held, failures } = write
  const { copies } = context.options
  const { handoff, lease } = context
  const missed = missedStores(order, copies, held)
  const unhinted = missed.length === 0 ? 0 : await handoff.record(sessionId, missed, held, version)
  // Reads that ask one store alone must not pick a store that missed this write: it is
  // announced stale first (failure/read-lease.ts). Not announced, it is degraded like a write
  // whose hint no store took.
  const unannounced = missed.length > 0 && lease !== null && !(await lease.announce(missed))
  if (!(degraded || unhinted > 0 || unannounced)) return false
  context.emit('degraded-write', {
    sessionId,
    copiesWritten: held.length,
    copiesWanted: copies,
    failures,
  })
  return true
}
