/** The session server: `session-shards/server`. */
/**
 * The session server: the library's sessions for programs in any language, over a line
 * protocol and an HTTP/JSON API (`session-shards/server`). See docs/server.md.
 * @packageDocumentation
 */
export { startSessionServer } from './server.js'
export type { SessionServer, SessionServerOptions, SessionServerStats } from './server.js'
export { RequestError } from './request-error.js'
