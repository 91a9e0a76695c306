/** What a write attempt's outcomes mean (write again, give up, or acknowledge): pure decisions. */
import { VERSION_CEILING } from './version-clock.js'

/** What one store answered to a write (see the write statement). */
export type AttemptOutcome =
  { kind: 'written' } | { kind: 'tombstone' } | { kind: 'outdated'; storedVersion: number }

/** The facts about one attempt of a write. */
export interface WriteAttempt {
  /** 1 for the first attempt. */
  attempt: number
  maxAttempts: number
  /** The version this attempt proposed. */
  version: number
  /** A compare-and-set, decided by its primary: never made again. */
  compareAndSet: boolean
  /** What each store asked answered, in order. */
  outcomes: readonly AttemptOutcome[]
}

/** What to do after an attempt. */
export type AttemptDecision =
  /** A tombstone: the session was destroyed, the write is dropped (and says so). */
  | { kind: 'dropped' }
  /** Write again, above `newest` (the highest version found), for this session only. */
  | { kind: 'again'; newest: number }
  /** Refuse: it kept losing to concurrent writes (`VersionConflictError`). */
  | { kind: 'conflict'; newest: number }
  /** Refuse: no version is left above `newest` (`VersionOverflowError`). */
  | { kind: 'overflow'; newest: number }
  /**
   * Done: `held` are the outcomes that now hold this write or a concurrent one that
   * supersedes it; the other outdated ones refused it.
   */
  | { kind: 'done'; held: readonly number[] }

/**
 * After a store reports a version at least as high as the one proposed:
 * - On the first attempt that may be a write made before ours by an app server whose clock
 *   runs ahead: ours must still win, so it is made again above that version.
 * - On a later attempt, a version above the one just proposed (itself above everything seen
 *   before) landed while this write was under way: a concurrent write that supersedes ours
 *   there, and the store counts as holding it.
 * - An equal version is another writer's twin proposal: that copy holds other data at our
 *   version, so the write is made again.
 * A compare-and-set is never made again: its primary decided, and its outdated followers
 * simply did not take it.
 */
export function decideAttempt(facts: WriteAttempt): AttemptDecision {
  const { attempt, maxAttempts, version, compareAndSet, outcomes } = facts
  if (outcomes.some((outcome) => outcome.kind === 'tombstone')) return { kind: 'dropped' }
  const stored = outcomes.flatMap((outcome) =>
    outcome.kind === 'outdated' ? [outcome.storedVersion] : [],
  )
  const superseded = !compareAndSet && attempt > 1
  const again = !compareAndSet && stored.length > 0 && (attempt === 1 || stored.includes(version))
  if (again) {
    const newest = Math.max(...stored)
    if (attempt >= maxAttempts) return { kind: 'conflict', newest }
    if (newest + 1 >= VERSION_CEILING) return { kind: 'overflow', newest }
    return { kind: 'again', newest }
  }
  const held = outcomes.flatMap((outcome, index) =>
    outcome.kind === 'written' || (superseded && outcome.kind === 'outdated') ? [index] : [],
  )
  return { kind: 'done', held }
}

/** Whether a write (or destroy) held by `held` stores may be acknowledged. */
export type Acknowledgement = 'full' | 'degraded' | 'refused'

/** `copies` held: acknowledged; at least `minCopies`: acknowledged, degraded; fewer: refused. */
export function acknowledgement(held: number, copies: number, minCopies: number): Acknowledgement {
  if (held >= copies) return 'full'
  return held >= minCopies ? 'degraded' : 'refused'
}
