/** The public surface of session-shards: every export by name. */
export { createSessionManager, SessionManager } from './session-manager.js'
export type { WriteOptions } from './session-manager.js'
export type { VersionedSession } from './read-path.js'
export type { StoreStats } from './store/store.js'
export type { ReadLeaseStats } from './failure/read-lease.js'
export type { WriteResult } from './write-path.js'
export type { UpdateOptions } from './session-updates.js'
export type {
  DegradedWriteEvent,
  ReadRepairEvent,
  SessionEvent,
  SessionManagerEvents,
  StoreDownEvent,
  StoreUpEvent,
  RepairNeededEvent,
  UnreadableCopyEvent,
  ConfigMismatch,
  PlacementConfig,
} from './events.js'
export type {
  InspectedCopy,
  InspectedStore,
  SessionInspection,
  StoreReport,
} from './maintenance/inspection.js'
export type { RowCounts } from './maintenance/inspection.js'
export type { Clock } from './clock.js'
export type { MeterProviderLike } from './metrics/open-telemetry.js'
export { SessionLock } from './session-lock.js'
export type { LockOptions } from './session-lock.js'
export type { SessionManagerOptions } from './options.js'
export type { StoreOptions } from './store-options.js'
export type { SessionCodec, SessionData } from './codec.js'
export { jsonCodec } from './codec.js'
export type {
  CompressionAlgorithm,
  CompressionOption,
  EncryptionKey,
  EncryptionOption,
} from './at-rest.js'
export { generateSessionId, isValidSessionId } from './ids.js'
export { classicOrder, placementSeed } from './placement.js'
export { schemaFile, schemaStatements } from './schema.js'
export {
  InvalidOptionError,
  InvalidSessionDataError,
  InvalidSessionIdError,
  ManagerClosedError,
  NoStoreAvailableError,
  NotEnoughStoresError,
  SessionShardsError,
  SessionTooLargeError,
  StoreTimeoutError,
  StoreDownError,
  StoreBusyError,
  VersionConflictError,
  VersionOverflowError,
  WriteOutcomeUnknownError,
  SessionNotFoundError,
  SchemaMismatchError,
  SchemaNotAppliedError,
  LockTimeoutError,
  LockAbortedError,
  LockExpiredError,
  TooManyOperationsError,
  OperationFailedError,
} from './errors.js'
export type { StoreFailure } from './errors.js'
export type {
  RepairCursor,
  RepairOptions,
  RepairProgress,
  RepairResult,
} from './maintenance/repair-scan.js'
export { rendezvousOrder } from './placement.js'
export type { PlacementName } from './placement.js'
export type { StoreState } from './store/standing.js'
export type { ListOptions } from './maintenance/listing.js'
export type { SweepOptions, SweepResult } from './maintenance/sweeper.js'
