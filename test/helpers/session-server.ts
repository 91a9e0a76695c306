import type { Test } from 'tap'
import type { SessionManager } from '../../lib/index.js'
import type { SessionServer, SessionServerOptions } from '../../lib/server/index.js'
import { startSessionServer } from '../../lib/server/index.js'

/** A session server over `manager` on free ports of 127.0.0.1 (HTTP too), closed at teardown. */
export async function startServer(
  t: Test,
  manager: SessionManager,
  options: Partial<SessionServerOptions> = {},
): Promise<SessionServer> {
  const server = await startSessionServer({ manager, port: 0, httpPort: 0, ...options })
  t.teardown(() => server.close())
  return server
}

/** Statements the manager has sent so far, over every store. */
export function statementsSent(manager: SessionManager): number {
  return manager.stats().stores.reduce((sum, store) => sum + store.operations, 0)
}
