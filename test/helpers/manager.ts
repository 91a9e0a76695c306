import type { Test } from 'tap'
import type { SessionManagerOptions } from '../../lib/index.js'
import { createSessionManager, type SessionManager } from '../../lib/index.js'
import type { Store } from '../../lib/store/store.js'
import type { TestCluster } from './cluster.js'
import { closeAtEnd } from './teardown.js'
import { waitFor } from './wait.js'

/**
 * A manager over the cluster's stores, with the schema applied and closed at teardown.
 * Short timeouts keep failure tests quick.
 */
export async function startManager(
  t: Test,
  cluster: TestCluster,
  options: Partial<SessionManagerOptions> = {},
): Promise<SessionManager> {
  const manager = createManager(t, cluster, options)
  await manager.applySchema()
  // Hints left by an earlier test are replayed in the background; start from a settled state.
  // The first health round finds stores with hints; their replay then runs in the background.
  await manager.ready()
  await waitFor('every store to be in service', () =>
    manager.stats().stores.every((store) => store.state === 'up' && !store.behind),
  ).catch((error: Error) => {
    throw new Error(`${error.message}: ${JSON.stringify(manager.stats().stores)}`)
  })
  return manager
}

/** A manager over the cluster's stores (schema not applied), closed at teardown. */
export function createManager(
  t: Test,
  cluster: TestCluster,
  options: Partial<SessionManagerOptions> = {},
): SessionManager {
  const manager = createSessionManager({
    stores: cluster.storeConfigs(),
    connectTimeoutMillis: 1000,
    queryTimeoutMillis: 1000,
    ...options,
  })
  closeAtEnd(t, 'a session manager', () => manager.close())
  return manager
}

/** One row of the session table as a store holds it. */
export interface RawRow {
  version: number
  expires_at: number
  deleted: number
  data: Buffer | null
  ttl_seconds: number | null
}

/** The row each store holds for `sessionId` (or null), keyed by store id; queries the stores directly. */
export async function rowsOnStores(
  cluster: TestCluster,
  sessionId: string,
  table = 'sessions',
): Promise<Map<string, RawRow | null>> {
  const rows = new Map<string, RawRow | null>()
  for (const store of cluster.stores.filter((s) => s.running !== false)) {
    const found = await store.query<RawRow>(
      `SELECT version, expires_at, deleted, data, ttl_seconds FROM \`${table}\` WHERE id = ?`,
      [sessionId],
    )
    rows.set(store.id, found[0] ?? null)
  }
  return rows
}

/** Ids of the stores that hold a live (non-tombstone) copy of `sessionId`. */
export async function storesWithLiveCopy(
  cluster: TestCluster,
  sessionId: string,
  table = 'sessions',
): Promise<string[]> {
  const rows = await rowsOnStores(cluster, sessionId, table)
  return [...rows]
    .filter(([, row]) => row !== null && row.deleted === 0)
    .map(([id]) => id)
    .sort()
}

/** Ids handed out by {@link idWithOrderPrefix} so far: two calls in one millisecond differ. */
let idsHandedOut = 0

/** A fresh session id whose order starts with the given store ids. */
export function idWithOrderPrefix(manager: SessionManager, prefix: readonly string[]): string {
  const call = idsHandedOut++
  for (let i = 0; ; i++) {
    const id = `test-session-${prefix.join('-')}-${process.pid}-${Date.now()}-${call}-${i}`
    const order = manager.locate(id)
    if (prefix.every((storeId, index) => order[index] === storeId)) return id
  }
}

/** A store's standing in a manager: `down`, `behind` (up, catching up on missed writes) or `up` (serving). */
export function storeState(manager: SessionManager, storeId: string): string | undefined {
  const store = manager.stats().stores.find((s) => s.id === storeId)
  return store?.state === 'up' && store.behind ? 'behind' : store?.state
}

/**
 * Statements of `kind` the manager sent `storeId` and got answered (or that ended with another
 * `outcome`: `unreachable` counts timeouts), from its metrics: counts this manager's statements
 * only (the servers' own counters also see health probes and the configuration guard, which
 * may land in between).
 */
export function statementsSent(
  manager: SessionManager,
  storeId: string,
  kind: string,
  outcome = 'ok',
): number {
  const series = `session_shards_store_requests_total{store="${storeId}",statement="${kind}",outcome="${outcome}"}`
  const line = manager
    .prometheusMetrics()
    .split('\n')
    .find((text) => text.startsWith(series))
  return line === undefined ? 0 : Number(line.split(' ').pop())
}

/** How many statements `manager` sent to any store, of any kind and outcome. */
export function allStatementsSent(manager: SessionManager): number {
  return manager
    .prometheusMetrics()
    .split('\n')
    .filter((line) => line.startsWith('session_shards_store_requests_total{'))
    .reduce((sum, line) => sum + Number(line.split(' ').pop()), 0)
}

/** The manager's own stores (a protected field): to make one statement fail, as a reset would. */
export function storesOf(manager: SessionManager): readonly Store[] {
  return (manager as unknown as { cluster: { stores: readonly Store[] } }).cluster.stores
}
