/** Listing, counting and finding sessions: every store read page by page in key order, the pages merged. */
import { isDeepStrictEqual } from 'node:util'
import type { Clock } from '../clock.js'
import type { RowCodec, SessionData } from '../codec.js'
import { judgeCopies } from '../copy-rules.js'
import type { StoreFailure } from '../errors.js'
import { NoStoreAvailableError } from '../errors.js'
import { batchSizeOption } from '../call-arguments.js'
import type { ListedRow } from '../store/rows.js'
import type { Store } from '../store/store.js'

/** Options of {@link SessionManager.list}. */
export interface ListOptions {
  /**
   * Rows read per statement from each store; memory stays at one page per store.
   * @default 500
   */
  batchSize?: number
}

interface Cursor {
  store: Store
  page: ListedRow[]
  index: number
  after: string
  done: boolean
}

/** What listing and finding need from the manager. */
export interface ListingContext {
  stores: readonly Store[]
  copies: number
  codec: RowCodec
  clock: Clock
  /** A copy that did not decode: reported, then skipped. */
  unreadable(sessionId: string, error: unknown): void
}

/**
 * Yields every live session once, in id order (with its newest copy's data if `withData`):
 * each reachable store is read page by page in key order and the pages are merged, so copies
 * of one session meet and count once, judged by the one copy rule (copy-rules.ts) that reads
 * follow too. Stores that are down or fail are left out; while fewer than `copies` are, every
 * session still has a copy on a store that is read; with more, the listing rejects with
 * {@link NoStoreAvailableError} rather than silently skip sessions.
 */
export async function* listLiveSessions(
  context: ListingContext,
  options: ListOptions & { withData?: boolean } = {},
): AsyncGenerator<{ id: string; data: Buffer | null }> {
  const { stores, copies, clock } = context
  const batchSize = batchSizeOption(options.batchSize)
  const withData = options.withData === true
  let cursors: Cursor[] = stores
    .filter((store) => store.standing.up)
    .map((store) => ({ store, page: [], index: 0, after: '', done: false }))
  const failures: StoreFailure[] = []
  const refill = async (cursor: Cursor): Promise<void> => {
    if (cursor.done || cursor.index < cursor.page.length) return
    try {
      cursor.page = await cursor.store.listPage(cursor.after, batchSize, withData)
    } catch (error) {
      // A store that fails mid-listing is left out, like a store that is down.
      failures.push({ storeId: cursor.store.id, error: error as Error })
      cursor.page = []
      cursor.done = true
      return
    }
    cursor.index = 0
    if (cursor.page.length < batchSize) cursor.done = true
    const last = cursor.page[cursor.page.length - 1]
    if (last !== undefined) cursor.after = last.id
  }
  for (;;) {
    await Promise.all(cursors.map(refill))
    if (failures.length > 0) {
      cursors = cursors.filter((cursor) => !failures.some((f) => f.storeId === cursor.store.id))
    }
    // Down from the start or failed since: as many stores as hold a session are missing, and
    // the listing could skip sessions.
    if (stores.length - cursors.length >= copies) {
      throw new NoStoreAvailableError('list every session', failures)
    }
    let smallest: string | undefined
    for (const cursor of cursors) {
      const row = cursor.page[cursor.index]
      if (row !== undefined && (smallest === undefined || row.id < smallest)) smallest = row.id
    }
    if (smallest === undefined) return
    const rows: ListedRow[] = []
    for (const cursor of cursors) {
      const row = cursor.page[cursor.index]
      if (row?.id !== smallest) continue
      cursor.index++
      rows.push(row)
    }
    const verdict = judgeCopies(rows, clock.now())
    if (verdict.state === 'live') yield { id: smallest, data: verdict.copy.data }
  }
}

/** Every live session's id, once each, in id order. */
export async function* listIds(
  context: ListingContext,
  options: ListOptions,
): AsyncGenerator<string> {
  for await (const { id } of listLiveSessions(context, options)) yield id
}

/** Ids of the live sessions whose data passes `matches` (a full scan, decoded). */
export async function* findSessions(
  context: ListingContext,
  options: ListOptions,
  matches: (data: SessionData) => boolean,
): AsyncGenerator<string> {
  for await (const { id, data } of listLiveSessions(context, { ...options, withData: true })) {
    let decoded: SessionData
    try {
      decoded = context.codec.decode(data as Buffer, id)
    } catch (error) {
      context.unreadable(id, error)
      continue
    }
    if (matches(decoded)) yield id
  }
}

/** Whether `data` has `key` equal to `value` (deep equality). */
export function hasValue(data: SessionData, key: string, value: unknown): boolean {
  return Object.hasOwn(data, key) && isDeepStrictEqual(data[key], value)
}

/**
 * Candidate ids of an owner from the owner index of every reachable store (no scan). Rejects
 * when as many stores as hold a session could not be asked: the answer could miss sessions.
 */
export async function ownerCandidates(context: ListingContext, owner: string): Promise<string[]> {
  const { stores, copies } = context
  const reachable = stores.filter((store) => store.standing.up)
  const failures: StoreFailure[] = []
  const candidates = new Set<string>()
  await Promise.all(
    reachable.map(async (store) => {
      try {
        for (const id of await store.idsByOwner(owner)) candidates.add(id)
      } catch (error) {
        failures.push({ storeId: store.id, error: error as Error })
      }
    }),
  )
  if (stores.length - reachable.length + failures.length >= copies) {
    throw new NoStoreAvailableError('find every session of the owner', failures)
  }
  return [...candidates].sort()
}
