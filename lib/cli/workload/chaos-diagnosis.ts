/** What a chaos run's violation met: the reader's view of the stores, and what each store held. */
import type { LocalCluster } from '../../local-cluster/index.js'
import type { SessionManager } from '../../session-manager.js'
import type { ChaosFinding, Diagnosis } from './chaos-report.js'

/**
 * Adds to a violation what the reading manager made of the stores right after the read, and
 * what each store holds (read directly, so a fault between the reader and a store does not
 * hide it). Never rejects: a diagnosis is best effort.
 */
export async function diagnose(
  finding: ChaosFinding,
  reader: SessionManager,
  cluster: LocalCluster,
): Promise<void> {
  const order = reader.locate(finding.id)
  const standings = reader
    .stats()
    .stores.map((s) => `${s.id} ${s.state}${s.behind ? ' behind' : ''}`)
  const diagnosis: Diagnosis = { order, standings, rows: {} }
  finding.diagnosis = diagnosis
  await Promise.all(
    cluster.stores.map(async (store) => {
      diagnosis.rows[store.id] = await store
        .query<{ version: string | number; deleted: number; data: Buffer | null }>(
          'SELECT version, deleted, data FROM sessions WHERE id = ?',
          [finding.id],
          { timeoutMillis: 5000 },
        )
        .then(
          ([row]) => {
            if (row === undefined) return 'none'
            const value = row.deleted ? 'tombstone' : (row.data?.toString() ?? 'no data')
            return `${value} v${row.version}`
          },
          (error: unknown) => `unreadable (${describeError(error)})`,
        )
    }),
  )
}

/** An error's message, for a report line. */
export function describeError(error: unknown): string {
  return error instanceof Error ? error.message : String(error)
}
