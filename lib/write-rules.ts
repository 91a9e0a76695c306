/** What a write attempt's outcomes mean (write again, give up, or acknowledge): pure decisions. */
import { VERSION_CEILING } from './version-clock.js'

/** What one store answered to a write (see the write statement). */
export type AttemptOutcome =
  { kind: 'written' } | { kind: 'tombstone' } | { kind: 'outdated'; storedVersion: number }

/** The facts about one attempt of a write. */
export interface WriteAttempt {
  /** 1 for the first attempt. */
  attempt: number
  /** The version this attempt proposed. */
  version: number
  /** A compare-and-set, decided by its primary: never made again. */
  compareAndSet: boolean
  /** What each store asked answered, in order. */
  outcomes: readonly AttemptOutcome[]
}

/**
 * What to do after an attempt. A write is made at most twice: the second attempt's version is
 * above everything the first found, so whatever it finds then holds it or supersedes it.
 */
export type AttemptDecision =
  /** A tombstone: the session was destroyed, the write is dropped (and says so). */
  | { kind: 'dropped' }
  /** Write again, above `newest` (the highest version found), for this session only. */
  | { kind: 'again'; newest: number }
  /** Refuse: no version is left above `newest` (`VersionOverflowError`). */
  | { kind: 'overflow'; newest: number }
  /**
   * Done: `held` are the outcomes that now hold this write or a concurrent one that
   * supersedes it; the other outdated ones refused it.
   */
  | { kind: 'done'; held: readonly number[] }

/**
 * After a store reports a version at least as high as the one proposed:
 * - The very version proposed: the store holds this write already (a read repair or a hint
 *   replay copied it there from a store that took it first). Versions are unique to a write —
 *   each process offsets its microseconds at random and steps above a stored version by a
 *   random amount — so it is this write's data.
 * - A higher version, on the first attempt: maybe a write made before this one by an app
 *   server whose clock runs ahead; this write must still win, so it is made again above it.
 * - A higher version on a later attempt (above the one just proposed, itself above everything
 *   seen before): a write that landed while this one was under way, which supersedes it there.
 * A compare-and-set is never made again: its primary decided, and a follower found above its
 * version was superseded there by a later write.
 */
export function decideAttempt(facts: WriteAttempt): AttemptDecision {
  const { attempt, version, compareAndSet, outcomes } = facts
  // Plain loops: this runs once per write.
  let newest = -1
  for (const outcome of outcomes) {
    if (outcome.kind === 'tombstone') return { kind: 'dropped' }
    if (outcome.kind === 'outdated' && outcome.storedVersion !== version) {
      newest = Math.max(newest, outcome.storedVersion)
    }
  }
  if (!compareAndSet && attempt === 1 && newest >= 0) {
    if (newest + 1 >= VERSION_CEILING) return { kind: 'overflow', newest }
    return { kind: 'again', newest }
  }
  // No tombstone got this far: each store holds this write, or a newer one that supersedes it.
  return { kind: 'done', held: outcomes.map((_, index) => index) }
}

/** Whether a write (or destroy) held by `held` stores may be acknowledged. */
export type Acknowledgement = 'full' | 'degraded' | 'refused'

/** `copies` held: acknowledged; at least `minCopies`: acknowledged, degraded; fewer: refused. */
export function acknowledgement(held: number, copies: number, minCopies: number): Acknowledgement {
  if (held >= copies) return 'full'
  return held >= minCopies ? 'degraded' : 'refused'
}
