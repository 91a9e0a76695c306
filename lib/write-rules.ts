/** What a write attempt's outcomes mean (write again, give up, or acknowledge): pure decisions. */
import type { CopyFacts } from './copy-rules.js'
import { newestCopy } from './copy-rules.js'
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
 * What to do after an attempt. A write is made at most twice (but see {@link MAX_ATTEMPTS}): the
 * second attempt's version is above everything the first found, so whatever it finds then
 * holds it or supersedes it.
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
 * A write is made at most this many times: the third attempt only after the second met the
 * very version it proposed too (two coincidences of versions in a row).
 */
export const MAX_ATTEMPTS = 3

/**
 * After a store reports a version at least as high as the one proposed:
 * - The very version proposed, with other data (a copy with this write's data, or a statement
 *   resent after a broken connection that finds its own version, reports `written`:
 *   own-copies.ts): versions are rarely shared (each process offsets its microseconds at random
 *   and steps above a stored version by a random amount), but rarely is not never, and that
 *   copy is another write's (a concurrent one, or one refused after reaching that store). It
 *   never counts as this write: the write is made again above it, so that no two copies of one
 *   version hold different data. For a compare-and-set already decided (its follower met it),
 *   that is another compare-and-set on the decided version (write-path.ts).
 * - A higher version, on the first attempt: maybe a write made before this one by an app
 *   server whose clock runs ahead (one refused after reaching that store, too); this write must
 *   still win, so it is made again (a compare-and-set already decided moves on above it: a
 *   compare-and-set on the decided version, which finds it gone if a later write based on it
 *   superseded it).
 * - A higher version on a later attempt (above everything seen before): a write that landed
 *   while this one was under way, which supersedes it there.
 */
export function decideAttempt(facts: WriteAttempt): AttemptDecision {
  const { attempt, version, compareAndSet, outcomes } = facts
  // Plain loops: this runs once per write.
  let newest = -1
  let sameVersion = false
  for (const outcome of outcomes) {
    if (outcome.kind === 'tombstone') return { kind: 'dropped' }
    if (outcome.kind === 'outdated') {
      newest = Math.max(newest, outcome.storedVersion)
      if (outcome.storedVersion === version) sameVersion = true
    }
  }
  // A compare-and-set's followers never hold a version below its own: only a higher one there
  // makes it move on.
  const aboveOnFirst = attempt === 1 && (compareAndSet ? newest > version : newest >= 0)
  if ((sameVersion && attempt < MAX_ATTEMPTS) || aboveOnFirst) {
    if (newest + 1 >= VERSION_CEILING) return { kind: 'overflow', newest }
    return { kind: 'again', newest }
  }
  // No tombstone got this far: a store holds this write, or a newer one that supersedes it,
  // unless it refused it at or below its version (a statement that meant to write only over a
  // version the store did not have, or a copy of this very version that may be another
  // write's): that copy is not this write, and must not count as one.
  const held: number[] = []
  for (let index = 0; index < outcomes.length; index++) {
    const outcome = outcomes[index] as AttemptOutcome
    if (
      outcome.kind === 'written' ||
      (outcome.kind === 'outdated' && outcome.storedVersion > version)
    ) {
      held.push(index)
    }
  }
  return { kind: 'done', held }
}

/** Whether a write (or destroy) held by `held` stores may be acknowledged. */
export type Acknowledgement = 'full' | 'degraded' | 'refused'

/** `copies` held: acknowledged; at least `minCopies`: acknowledged, degraded; fewer: refused. */
export function acknowledgement(held: number, copies: number, minCopies: number): Acknowledgement {
  if (held >= copies) return 'full'
  return held >= minCopies ? 'degraded' : 'refused'
}

/** What a compare-and-set's check found: a conflict, or the stores that may decide it, in order. */
export type CheckVerdict<S> =
  { kind: 'conflict'; storedVersion: number } | { kind: 'decide'; deciders: S[] }

/**
 * Who decides a compare-and-set, from the copies a quorum read found (as `readSession` compares
 * them; null: no row). A store that missed writes still holds the old version, and would let
 * an update based on it through; so the check looks where a read looks, and only a store
 * holding the newest copy decides:
 * - a tombstone anywhere: the stores holding one (the write is dropped there, as destroyed);
 * - the newest live version is not `expected`: a conflict, before anything is written;
 * - otherwise the stores holding `expected` live (another copy of that version may have
 *   expired: a touch missed it). An expired newest copy is no session (reads answer null
 *   for it), nor is no row at all: for `expected` 0 every store that answered may decide (its
 *   statement creates the session, taking an expired row as absent); for any other version it
 *   is a conflict at version 0, unless `createsAbsent` (a change of the store list, when the
 *   session may not have been moved yet: then, with no row anywhere, every store may decide,
 *   and an expired newest copy at `expected` is written over as before the change).
 */
export function judgeCheck<S>(
  expected: number,
  found: readonly { store: S; copy: CopyFacts | null }[],
  now: number,
  createsAbsent: boolean,
): CheckVerdict<S> {
  const holding = (keep: (copy: CopyFacts) => boolean): S[] =>
    found.flatMap(({ store, copy }) => (copy !== null && keep(copy) ? [store] : []))
  const tombstones = holding((copy) => copy.deleted)
  if (tombstones.length > 0) return { kind: 'decide', deciders: tombstones }
  const newest = newestCopy(found.flatMap(({ copy }) => (copy === null ? [] : [copy])))
  const everyStore = (): CheckVerdict<S> => ({
    kind: 'decide',
    deciders: found.map(({ store }) => store),
  })
  const noSession: CheckVerdict<S> = { kind: 'conflict', storedVersion: 0 }
  if (newest === undefined) return expected === 0 || createsAbsent ? everyStore() : noSession
  if (newest.expiresAtMillis <= now) {
    if (expected === 0) return everyStore()
    if (!createsAbsent) return noSession
  }
  if (newest.version !== expected) return { kind: 'conflict', storedVersion: newest.version }
  // Copies of one version can differ in expiry (a touch that missed one): only a live one can
  // take a compare-and-set, whose statement finds no session in an expired row.
  return {
    kind: 'decide',
    deciders: holding(
      (copy) => copy.version === expected && (createsAbsent || copy.expiresAtMillis > now),
    ),
  }
}

/**
 * A decided compare-and-set moving on (write-path.ts), when the copies compared disagree with
 * its decided version `expected`: the store that decided it tells. Still holding that version,
 * it decides again (a concurrent write landed elsewhere first); holding a higher one, a later
 * write superseded the decision there; anything else (not asked, no row, an older version)
 * cannot tell, since the version seen elsewhere may be a write refused before this one began.
 */
export function moveOnCheck<S>(
  decider: S,
  expected: number,
  found: readonly { store: S; copy: CopyFacts | null }[],
): 'decide' | 'superseded' | 'unknown' {
  const version = found.find((entry) => entry.store === decider)?.copy?.version
  if (version === expected) return 'decide'
  return version !== undefined && version > expected ? 'superseded' : 'unknown'
}
