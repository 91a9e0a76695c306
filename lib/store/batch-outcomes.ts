/** What writes did, from what they left when read back: a batch's, a compare-and-set's that matched no row. */
import { createHash } from 'node:crypto'
import type { RowDataPacket } from 'mysql2'
import { WriteOutcomeUnknownError } from '../errors.js'
import type { CopyDigest, SessionWrite, WriteOutcome } from './rows.js'
import { RESENT_FOUND_OWN_VERSION, ROW_GONE, storedVersion } from './rows.js'

/**
 * Writes in the order a batch sends them: by id, then version, so that concurrent batches lock
 * rows in one order (no deadlock) and two writes of one session apply oldest first.
 */
export function inBatchOrder(writes: readonly SessionWrite[]): SessionWrite[] {
  return [...writes].sort((a, b) =>
    a.sessionId < b.sessionId
      ? -1
      : a.sessionId > b.sessionId
        ? 1
        : a.fields.version - b.fields.version,
  )
}

/**
 * Each write's outcome from the rows a batch left. A write whose own version and data (its
 * SHA-256) the row holds was written. Several writes of one session in a batch apply oldest
 * first: one older than the newest, whose version and data the row holds, applied before it or
 * lost to it in the same batch, and counts as written too (superseded at once). Any other
 * write, one at the very version another write of the session took first included (the data
 * tells them apart), did not land. A session with no row left is {@link ROW_GONE}.
 */
export function batchOutcomes(
  rows: RowDataPacket[],
  writes: readonly SessionWrite[],
): (WriteOutcome | typeof ROW_GONE)[] {
  const stored = new Map(rows.map((row) => [String(row.id), row]))
  const newestInBatch = new Map<string, SessionWrite>()
  for (const write of writes) {
    const newest = newestInBatch.get(write.sessionId)
    if (newest === undefined || write.fields.version > newest.fields.version) {
      newestInBatch.set(write.sessionId, write)
    }
  }
  const holds = (row: RowDataPacket, write: SessionWrite): boolean =>
    storedVersion(row.version) === write.fields.version &&
    row.data_sha256 === createHash('sha256').update(write.data).digest('hex')
  return writes.map((write): WriteOutcome | typeof ROW_GONE => {
    const row = stored.get(write.sessionId)
    if (row === undefined) return ROW_GONE
    if (row.deleted === 1) return { kind: 'tombstone' }
    const newest = newestInBatch.get(write.sessionId) as SessionWrite
    const superseded = write.fields.version < newest.fields.version && holds(row, newest)
    return superseded || holds(row, write)
      ? { kind: 'written' }
      : { kind: 'outdated', storedVersion: storedVersion(row.version) ?? 0 }
  })
}

/**
 * The outcome of a compare-and-set above version 0 that matched no row, from the row's digest
 * read right after (null: no row). A missing or expired row is no session, version 0, as reads
 * answer: the session the caller based its update on is gone, a conflict. Sent again after a
 * broken connection, the statement may have matched nothing because its first send applied:
 * when the row holds its own version, the data tells (Store reads it back); anything else
 * cannot tell a conflict from that send applied and then written over.
 */
export function unmatchedCompareAndSet(
  digest: CopyDigest | null,
  write: SessionWrite,
  resent: boolean,
): WriteOutcome | typeof RESENT_FOUND_OWN_VERSION {
  if (digest?.deleted === true) return { kind: 'tombstone' }
  if (resent) {
    if (digest?.version === write.fields.version) return RESENT_FOUND_OWN_VERSION
    throw new WriteOutcomeUnknownError()
  }
  const live = digest !== null && digest.expiresAtMillis > write.fields.now
  return { kind: 'outdated', storedVersion: live ? digest.version : 0 }
}
