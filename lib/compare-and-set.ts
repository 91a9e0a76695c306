/** A compare-and-set's statements: the check where reads look, the decision, the followers. */
import { askInOrder } from './ask-in-order.js'
import type { AskOptions, AskResult } from './ask-in-order.js'
import type { StoreFailure } from './errors.js'
import { StoreTimeoutError, VersionConflictError, WriteOutcomeUnknownError } from './errors.js'
import { holdsThisWrite } from './own-copies.js'
import { aloneReadable, readOrder } from './routing.js'
import type { WriteOutcome } from './store/rows.js'
import type { Store } from './store/store.js'
import { judgeCheck, moveOnCheck } from './write-rules.js'

/** One compare-and-set of one session. */
export interface CompareAndSet {
  sessionId: string
  /** The session's order over the configured stores. */
  fullOrder: readonly Store[]
  /** The stores a write may use, in order (writeOrder). */
  order: readonly Store[]
  expectedVersion: number
  /** The version this attempt proposes, and the data it writes (as stored). */
  version: number
  data: Buffer
  /** The write's time: an expired copy is no session to a compare-and-set on version 0. */
  now: number
  copies: number
  readQuorum: number
  /**
   * A store with no row for the session takes the write (a change of the store list: the
   * session may not have been moved to the store yet). Otherwise a missing or expired copy
   * matches no expected version above 0.
   */
  createsAbsent: boolean
  /** Whether the read lease trusts a store alone; undefined without a lease. */
  trusts: ((store: Store) => boolean) | undefined
  /** Sends the write to a store: with `expected`, as a compare-and-set; without, a plain write. */
  write(store: Store, expected?: number): Promise<WriteOutcome>
  /** The hedging of the followers (the decision is never hedged: one store decides). */
  hedging: AskOptions<Store>
  /**
   * A decided write moving on (write-path.ts): the store that decided it, `expectedVersion`
   * being its decided version. Only that store's answer then proves that a later write
   * superseded it; another version found elsewhere (another decider, or comparing copies) may
   * be a write refused after it reached that store, which the move-on exists to write over:
   * WriteOutcomeUnknownError, not a conflict.
   */
  movingOn: Store | undefined
}

/**
 * One store decides, atomically; on `written`, the followers take the same version as plain
 * writes. Rejects with VersionConflictError (nothing written) when the session moved on.
 *
 * The decider must hold the newest copy, whichever app server asks: the first store of the
 * order may have missed writes that another app server, which could not reach it, made past
 * it, and would let an update based on the old version through. So it is a store a read would
 * trust: one the lease trusts alone (a store that missed an acknowledged write was announced
 * stale first), else one holding the newest version among the copies a quorum read compares.
 * Two compare-and-sets of one version that run at the same moment while app servers disagree
 * about a store can still both be decided, each by its own store (docs/guarantees.md).
 *
 * The decider takes this write only by answering `written`: a statement whose answer a broken
 * connection lost is sent again and, finding its own version stored, answers so too. Sent once,
 * it finds its own version stored when another compare-and-set proposed the same version and
 * was decided first (a conflict, like any other version found: two updates may compute the
 * same data), or when a decider asked before failed, applied all the same and was copied on.
 */
export async function compareAndSet(cas: CompareAndSet): Promise<AskResult<Store, WriteOutcome>> {
  const { order, expectedVersion } = cas
  // "No session" (version 0) is never decided by one store: a read that finds that store's
  // copy expired or missing goes on to compare copies (one a touch missed expires first), and
  // so must the check, before the statement that would create the session there.
  const absent = expectedVersion === 0
  let check = await deciders(cas, !absent, absent)
  const decide = (store: Store): Promise<WriteOutcome> => cas.write(store, expectedVersion)
  let primary = await askInOrder(check.deciders, 0, 1, decide)
  // A decider whose first send may have applied, and no other decider took the write: not a
  // conflict (updateSession would apply the change twice) where the next decider, or a check
  // by quorum, finds that send's version or a later one.
  const unknown = primary.failures.find(
    (failure) => failure.error instanceof WriteOutcomeUnknownError,
  )
  const took = primary.answers[0]?.value.kind === 'written'
  if (unknown !== undefined && !took) throw unknown.error
  // A decider that failed may have applied the write all the same (a timeout, a lost answer).
  let deciderFailed = primary.failures.length > 0
  let mayHaveApplied = primary.failures.some(sentAndLost)
  if (primary.answers.length === 0 && check.trusted) {
    // Every store the lease trusted failed: the check then looks where a quorum read would.
    check = await checkAgain(cas, false, [...check.failures, ...primary.failures], mayHaveApplied)
    primary = await askInOrder(check.deciders, 0, 1, decide)
    deciderFailed ||= primary.failures.length > 0
    mayHaveApplied ||= primary.failures.some(sentAndLost)
  }
  if (!check.compared && foundNoSession(primary.answers[0]?.value, cas)) {
    // The store chosen without comparing copies holds no live one (it lost its data, say):
    // a read would then compare copies, and so does the check.
    check = await checkAgain(cas, true, [...check.failures, ...primary.failures], mayHaveApplied)
    primary = await askInOrder(check.deciders, 0, 1, decide)
    deciderFailed ||= primary.failures.length > 0
    mayHaveApplied ||= primary.failures.some(sentAndLost)
  }
  let decided = primary.answers[0]
  // Outdated is a conflict even at this attempt's own version: that is another write's, which
  // proposed the same one (a resent statement that found its first send reports `written`)...
  if (decided?.value.kind === 'outdated') {
    const { store, value } = decided
    // ...unless a decider asked before failed: its statement may have applied after all, and
    // been copied here (a read repair). The data tells.
    if (value.storedVersion !== cas.version || !deciderFailed) {
      if (cas.movingOn !== undefined && store !== cas.movingOn) throw new WriteOutcomeUnknownError()
      // A decider asked before may have applied this write and another been written over it
      // (it is copied on from there): updateSession would apply its change twice.
      if (mayHaveApplied) throw new WriteOutcomeUnknownError()
      throw new VersionConflictError(value.storedVersion, expectedVersion)
    }
    if (!(await holdsThisWrite(store, cas.sessionId, cas.version, cas.data))) {
      throw new WriteOutcomeUnknownError()
    }
    decided = { ...decided, value: { kind: 'written' } }
  }
  const failures = [...check.failures, ...primary.failures]
  if (decided === undefined || decided.value.kind !== 'written') {
    return { ...primary, failures }
  }
  // Every other store of the order that has not failed, in order: a store that missed writes
  // (and so could not decide) takes this one as a follower like any other.
  const failed = new Set(failures.map((failure) => failure.storeId))
  const rest = order.filter((store) => store !== decided.store && !failed.has(store.id))
  const followers = await askInOrder(
    rest,
    0,
    cas.copies - 1,
    // Plain writes: a follower that missed writes holds an older version, which a
    // compare-and-set on `expectedVersion` would leave there.
    (store) => cas.write(store),
    cas.hedging,
  )
  return {
    answers: [decided, ...followers.answers],
    failures: [...failures, ...followers.failures],
    next: followers.next,
    passedOver: followers.passedOver,
    late: followers.late,
  }
}

/**
 * Who may decide, in order; whether the lease chose them; whether a comparison of copies did;
 * the stores that failed the check.
 */
interface Deciders {
  deciders: Store[]
  trusted: boolean
  compared: boolean
  failures: StoreFailure[]
}

/**
 * Whether a failed statement may have applied: it timed out, or its answer was lost. One a
 * store refused unsent (down, connection refused) did not.
 */
function sentAndLost(failure: StoreFailure): boolean {
  return (
    failure.error instanceof StoreTimeoutError || failure.error instanceof WriteOutcomeUnknownError
  )
}

/** Whether a decider's answer is "no live session" to a compare-and-set above version 0. */
function foundNoSession(outcome: WriteOutcome | undefined, cas: CompareAndSet): boolean {
  return (
    outcome?.kind === 'outdated' &&
    outcome.storedVersion === 0 &&
    cas.expectedVersion > 0 &&
    !cas.createsAbsent
  )
}

/**
 * The deciders found again, after the first ones failed or found no session (`failed`: the
 * stores that failed so far). A conflict is an unknown outcome where a decider's statement
 * may have applied after all (`mayHaveApplied`: it was sent and its answer lost), or this
 * attempt's own version is found.
 */
async function checkAgain(
  cas: CompareAndSet,
  compare: boolean,
  failed: readonly StoreFailure[],
  mayHaveApplied: boolean,
): Promise<Deciders> {
  const check = await deciders(cas, false, compare).catch((error: unknown) => {
    if (
      error instanceof VersionConflictError &&
      (mayHaveApplied || error.actualVersion === cas.version)
    ) {
      throw new WriteOutcomeUnknownError()
    }
    throw error
  })
  check.failures.unshift(...failed)
  return check
}

/**
 * The stores that may decide (see {@link compareAndSet}): the lease's if `mayTrust`; with
 * `compare`, by comparing copies even where a read would ask one store first.
 */
async function deciders(
  cas: CompareAndSet,
  mayTrust: boolean,
  compare: boolean,
): Promise<Deciders> {
  const { fullOrder, order, copies, readQuorum, trusts } = cas
  if (mayTrust && trusts !== undefined) {
    const trusted = aloneReadable(fullOrder, copies, trusts)
    if (trusted.length > 0) {
      return { deciders: trusted, trusted: true, compared: false, failures: [] }
    }
  }
  // A single-store read trusts the first store that is not behind: so does the decision. When
  // it finds nothing, the read compares `copies` copies.
  if (readQuorum === 1 && !compare) {
    return { deciders: readOrder(order, 1), trusted: false, compared: false, failures: [] }
  }
  const quorum = readQuorum === 1 ? copies : readQuorum
  const asked = await askInOrder(order, 0, quorum, (store) => store.readDigest(cas.sessionId))
  const found = asked.answers.map(({ store, value }) => ({ store, copy: value }))
  const verdict = judgeCheck(cas.expectedVersion, found, cas.now, cas.createsAbsent)
  if (verdict.kind === 'conflict') {
    const decider = cas.movingOn
    if (decider !== undefined) {
      const seen = moveOnCheck(decider, cas.expectedVersion, found)
      if (seen === 'decide') {
        return { deciders: [decider], trusted: false, compared: true, failures: asked.failures }
      }
      if (seen === 'unknown') throw new WriteOutcomeUnknownError()
    }
    throw new VersionConflictError(verdict.storedVersion, cas.expectedVersion)
  }
  return { deciders: verdict.deciders, trusted: false, compared: true, failures: asked.failures }
}
