/** The events a session manager emits, each name with its payload type. */
import type { StoreFailure } from './errors.js'

/** Payload of `store-down`. */
export interface StoreDownEvent {
  storeId: string
  error: Error
}

/** Payload of `store-up`. */
export interface StoreUpEvent {
  storeId: string
}

/** Payload of `repair-needed`: the store missed writes for longer than `hintWindowMillis`. */
export interface RepairNeededEvent {
  storeId: string
  /** How long the store had been missing writes (this manager's) when hints for it stopped. */
  missingForMillis: number
}

/**
 * Payload of `degraded-write`: acknowledged with fewer than `copies` copies, or with a missed
 * store that got no durable hint or announcement (`copiesWritten` may then equal `copiesWanted`),
 * or a write dropped by a destroy that left a copy it could neither bury nor hint
 * (`copiesWritten` 0, `failures` the tombstones that failed).
 */
export interface DegradedWriteEvent {
  sessionId: string
  copiesWritten: number
  copiesWanted: number
  failures: StoreFailure[]
}

/** Payload of `read-repair`. */
export interface ReadRepairEvent {
  sessionId: string
  storeIds: string[]
}

/** Payload of `write-after-destroy` and `session-moved`. */
export interface SessionEvent {
  sessionId: string
}

/** Payload of `unreadable-copy`: `storeId` is null when a listing met it (no single store). */
export interface UnreadableCopyEvent {
  sessionId: string
  storeId: string | null
  error: unknown
}

/** What decides where a manager puts sessions: no URIs, no credentials. */
export interface PlacementConfig {
  /** The configured store ids, sorted. */
  stores: string[]
  placement: string
  copies: number
  /** During a change of the store list, the store ids before it, sorted; else null. */
  previousStores: string[] | null
  previousPlacement: string | null
  /**
   * The read settings (absent from managers of older versions). Lone reads on the lease stay
   * fresh only when every app server writes with the same: one that reads by quorum or alone
   * does not announce the stores its writes miss, and one with a shorter lease waits less.
   */
  readQuorum?: number
  readLeaseMillis?: number
}

/** A peer whose configuration conflicts with this manager's, as `stats()` and the event report it. */
export interface ConfigMismatch {
  fingerprint: string
  /** This manager's configuration. */
  ours: PlacementConfig
  /** The other manager's configuration. */
  theirs: PlacementConfig
}

/**
 * Every event of {@link SessionManager}, by name: the arguments its listeners get. Documented
 * in docs/errors.md; `test/events.ts` keeps the two in step.
 */
export interface SessionManagerEvents {
  /** A store went down; requests skip it until the health check finds it answering. */
  'store-down': [StoreDownEvent]
  /** A store that was down answers again and has caught up on what it missed. */
  'store-up': [StoreUpEvent]
  /**
   * A store missed writes for longer than `hintWindowMillis`: hints for it stopped, and it
   * serves no reads alone until `repair()` has run.
   */
  'repair-needed': [RepairNeededEvent]
  /** A write or destroy was acknowledged with fewer than `copies` copies. */
  'degraded-write': [DegradedWriteEvent]
  /** A read found stores lacking the newest copy (or the tombstone) and rewrote it there. */
  'read-repair': [ReadRepairEvent]
  /** A write reached a destroyed session and was dropped (its result says `dropped: true`). */
  'write-after-destroy': [SessionEvent]
  /** During a change of the store list, a read moved a session found under the old placement. */
  'session-moved': [SessionEvent]
  /** A copy the codec could not decode; the next copy answered. */
  'unreadable-copy': [UnreadableCopyEvent]
  /**
   * Another live manager on these stores places sessions differently (another store list,
   * placement or copy count, and not an announced change through `previousStores`).
   */
  'config-mismatch': [ConfigMismatch]
}

/** The names of {@link SessionManagerEvents}, for code that checks every one is documented. */
export const SESSION_MANAGER_EVENTS: readonly (keyof SessionManagerEvents)[] = [
  'store-down',
  'store-up',
  'repair-needed',
  'degraded-write',
  'read-repair',
  'write-after-destroy',
  'session-moved',
  'unreadable-copy',
  'config-mismatch',
]

/** Emits one of the manager's events (what the paths are handed instead of the manager). */
export type Emit = <K extends keyof SessionManagerEvents>(
  name: K,
  ...payload: SessionManagerEvents[K]
) => void
