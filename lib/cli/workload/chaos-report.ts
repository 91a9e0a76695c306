/** What a chaos run reports: counts, faults, findings and their diagnoses. */
import type { FaultKind } from './chaos-faults.js'
import type { ConsistencyCounts, Finding } from './consistency-model.js'
import type { AppServerFigures } from './session-workload.js'

/** Snapshot passed to `ChaosOptions.onProgress` (chaos.ts). */
export interface ChaosProgress extends ConsistencyCounts {
  elapsedSeconds: number
  operations: number
  /** updateSession calls that wrote (compare-and-set on the version their change was given). */
  updates: number
  /** setSessionTimeout calls that found the session and gave it a new lifetime. */
  timeoutsSet: number
  failedRequests: number
  /** The failed requests by error code (`other` for an error without one). */
  failuresByCode: Record<string, number>
  faults: number
}

/** One fault of the run. */
export interface FaultRecord {
  kind: FaultKind
  /** What was done, e.g. "SIGKILL store-b". */
  label: string
  /** 'app server 1' for a fault on its proxy, else 'every app server'. */
  seenBy: string
  /** When it started, in seconds since the workload started. */
  atSeconds: number
  /** Per app server, ms from the fault to its first store-down event for the target. */
  detectedMillis: Record<string, number>
  /**
   * ms from the heal until every store was in service on every app server; undefined when the
   * wait gave up (see {@link ChaosReport.notBackInService}).
   */
  recoveryMillis: number | undefined
  /** From the fault's start to the next fault's (or the run's end): recovery included. */
  failedRequests: number
  transientNullReads: number
  /** Lost writes, stale reads and resurrections whose read happened in that window. */
  violations: number
}

/** Per fault kind: how often it was injected and what happened from each start to the next. */
export interface FaultKindFigures {
  injected: number
  /** Faults of this kind that some app server detected (a store-down event for the target). */
  detected: number
  failedRequests: number
  transientNullReads: number
  lostWrites: number
  staleReads: number
  resurrections: number
}

/** A finding of the consistency model, placed in the fault schedule. */
export interface ChaosFinding extends Finding {
  /** When the read happened, in seconds since the workload started. */
  atSeconds: number
  /** The fault last started before the read, or 'none'. */
  fault: string
  /**
   * Where the read fell: during the fault, after its heal but before every store was back in
   * service, after that, or in the final verification.
   */
  phase: 'no fault yet' | 'during the fault' | 'recovering' | 'after recovery' | 'verification'
  /** Violations only: what the reading app server saw, and what the stores held just after. */
  diagnosis?: Diagnosis
}

/** Where a violating read stood, for the library's maintainers. */
export interface Diagnosis {
  /** The session's order of stores. */
  order: string[]
  /** How the reading app server saw each store right after the read, e.g. "store-c up behind". */
  standings: string[]
  /**
   * Each store's row for the session, read directly right after the read: '{"n":1} v1234',
   * 'tombstone v1234', 'none', or why it could not be read.
   */
  rows: Record<string, string>
}

/** What `runChaos` (chaos.ts) found. */
export interface ChaosReport extends ChaosProgress {
  /** The managers' resolved `readQuorum`. */
  readQuorum: number
  /** The option given; undefined for the library default. */
  readQuorumOption: number | undefined
  /** The managers' resolved `readLeaseMillis`: 0 when every read asks `readQuorum` stores. */
  readLeaseMillis: number
  gray: boolean
  /** Whether rows were compressed and encrypted at rest. */
  atRest: boolean
  faultMillis: number
  opsPerSecond: number
  /** Faults injected, e.g. "kill store-b", "blackhole store-c". */
  faultLog: string[]
  faultRecords: FaultRecord[]
  /**
   * Per fault kind; findings of reads before the first fault come under 'none', those of the
   * final verification under 'verification'.
   */
  faultsByKind: Record<string, FaultKindFigures>
  /** Sessions read back after the run through a manager started afterwards. */
  sessionsVerified: number
  /** Sessions that verification could not read at all within its time. */
  unverifiedSessions: number
  /** Stores an app server did not have back in service when the run stopped waiting, and when. */
  notBackInService: string[]
  /**
   * Faults that could not be injected or ended (the schedule stopped there), and stores that
   * could not be restarted before the verification.
   */
  faultErrors: string[]
  /** Time from a fault to the first store-down event for its target, in ms. */
  detectionMillis: number[]
  /** Per app server: p99 and max latency of reads and writes, failed requests. */
  appServers: AppServerFigures[]
  /**
   * True when no acknowledged write was lost, no read was stale, nothing was resurrected and
   * every session was verified.
   */
  clean: boolean
  /** The first reads that disagreed with what was acknowledged, for diagnosis. */
  violations: ChaosFinding[]
  /** The first transient null reads. */
  transientNulls: ChaosFinding[]
}
