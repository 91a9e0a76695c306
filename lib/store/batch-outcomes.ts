/** What a batch of writes did, per write, from what it left when read back. */
import { createHash } from 'node:crypto'
import type { RowDataPacket } from 'mysql2'
import type { SessionWrite, WriteOutcome } from './rows.js'
import { storedVersion } from './rows.js'

/**
 * Each write's outcome from the rows a batch left. Several writes of one session in a batch
 * apply oldest first: the newest one's version is what a successful batch leaves; the others
 * applied before it or lost to it, in the same batch. The newest one's version can also be
 * another write's, which proposed the same version and landed first: the data (its SHA-256)
 * tells (the same data is the same session either way).
 */
export function batchOutcomes(
  rows: RowDataPacket[],
  writes: readonly SessionWrite[],
): WriteOutcome[] {
  const stored = new Map(rows.map((row) => [String(row.id), row]))
  const newestInBatch = new Map<string, SessionWrite>()
  for (const write of writes) {
    const newest = newestInBatch.get(write.sessionId)
    if (newest === undefined || write.fields.version > newest.fields.version) {
      newestInBatch.set(write.sessionId, write)
    }
  }
  return writes.map(({ sessionId }): WriteOutcome => {
    const row = stored.get(sessionId)
    if (row === undefined) return { kind: 'written' } // swept since: it had expired anyway
    if (row.deleted === 1) return { kind: 'tombstone' }
    const version = storedVersion(row.version) ?? 0
    const newest = newestInBatch.get(sessionId) as SessionWrite
    return version === newest.fields.version &&
      row.data_sha256 === createHash('sha256').update(newest.data).digest('hex')
      ? { kind: 'written' }
      : { kind: 'outdated', storedVersion: version }
  })
}
