/** What a batch of writes did, per write: from its OK packet, and from what it left when read back. */
import { createHash } from 'node:crypto'
import type { ResultSetHeader, RowDataPacket } from 'mysql2'
import type { SessionWrite, WriteManyInput, WriteOutcome } from './rows.js'
import { storedVersion } from './rows.js'

/**
 * How many rows of a multi-row upsert did not apply, from its OK packet alone: a row counts 1
 * when inserted, 2 when an existing row changed, and 0 (1 with the FOUND_ROWS flag mysql2
 * sets) when it was left as it was; the info text counts the rows that met an existing one
 * ("Duplicates"). An applied row always changes (its version grows), so rows + duplicates -
 * affected rows did not. Undefined when the info text is not there, or the count means
 * nothing (the statement was resent).
 */
export function refusedRows(
  result: ResultSetHeader,
  input: WriteManyInput,
  resent = false,
): number | undefined {
  const duplicates = /Duplicates: (\d+)/.exec(result.info ?? '')?.[1]
  // Sent again, the batch finds its first send's rows: left as they were, and yet its own.
  if (duplicates === undefined || resent) return undefined
  return input.writes.length + Number(duplicates) - result.affectedRows
}

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
