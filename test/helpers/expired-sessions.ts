/** Managers whose table holds sessions already expired, for the sweep's tests. */
import type { Test } from 'tap'
import type { SessionManager } from '../../lib/index.js'
import type { TestCluster } from './cluster.js'
import { startManager } from './manager.js'

/**
 * A manager over `table` (no background sweep, no sweep grace) and `count` sessions of
 * `copies` copies each, expired an hour ago on every store (their rows moved back, so that no
 * test waits for a clock).
 */
export async function withExpiredSessions(
  t: Test,
  cluster: TestCluster,
  { table, count, copies = 2 }: { table: string; count: number; copies?: number },
): Promise<{ manager: SessionManager; ids: string[] }> {
  const manager = await startManager(t, cluster, {
    copies,
    table,
    sweepIntervalSeconds: 0,
    sweepGraceSeconds: 0,
  })
  const ids = await Promise.all(
    Array.from({ length: count }, (_, i) => manager.createSession({ i }, { ttlSeconds: 1 })),
  )
  for (const store of cluster.stores) {
    await store.query(`UPDATE ${table} SET expires_at = ?`, [Date.now() - 3_600_000])
  }
  return { manager, ids }
}

/** Rows left in `table` over every store. */
export async function rowsLeft(cluster: TestCluster, table: string): Promise<number> {
  let rows = 0
  for (const store of cluster.stores) {
    const [counted] = await store.query<{ n: number }>(`SELECT COUNT(*) AS n FROM ${table}`)
    rows += Number(counted!.n)
  }
  return rows
}
