/** Local MySQL-protocol stores for tests and demos: `session-shards/local-cluster`. @packageDocumentation */
export { startLocalCluster } from './local-cluster.js'
export type { LocalCluster, LocalClusterOptions } from './local-cluster.js'
export type { LocalStore } from './local-store.js'
export type { LocalQueryOptions, LocalStoreConfig } from './query.js'
export { findServerBinary } from './server-binary.js'
export type { ServerBinary, ServerFlavor } from './server-binary.js'
export { LocalStoreStartError, ServerBinaryNotFoundError } from './errors.js'
