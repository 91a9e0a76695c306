export { createSessionManager, SessionManager } from './session-manager.js'
export type {
  DegradedWriteEvent,
  StoreStats,
  UpdateOptions,
  WriteOptions,
  WriteResult,
} from './session-manager.js'
export { SessionLock } from './session-lock.js'
export type { LockOptions } from './session-lock.js'
export type { SessionManagerOptions, StoreOptions } from './options.js'
export type { SessionCodec, SessionData } from './codec.js'
export { jsonCodec } from './codec.js'
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
  VersionConflictError,
  VersionOverflowError,
  SessionNotFoundError,
  LockTimeoutError,
  LockExpiredError,
} from './errors.js'
export type { StoreFailure } from './errors.js'
export type { RepairCursor, RepairOptions, RepairProgress, RepairResult } from './repair.js'
export { rendezvousOrder } from './placement.js'
export type { PlacementName } from './placement.js'
export type { StoreState } from './circuit.js'
export type { ListOptions } from './session-listing.js'
export type { SweepOptions, SweepResult } from './sweeper.js'
