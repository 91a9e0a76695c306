import type { StoreFailure } from './errors.js'
import { NoStoreAvailableError } from './errors.js'
import { batchSizeOption } from './options.js'
import type { ListedRow, StorePool } from './store-pool.js'

/** Options of {@link SessionManager.list}. */
export interface ListOptions {
  /**
   * Rows read per statement from each store; memory stays at one page per store.
   * @default 500
   */
  batchSize?: number
}

interface Cursor {
  store: StorePool
  page: ListedRow[]
  index: number
  after: string
  done: boolean
}

/**
 * Yields every live session once, in id order (with its newest copy's data if `withData`): each reachable store is read page by
 * page in key order and the pages are merged, so copies of one session meet and count once. A
 * session is live when no store holds a tombstone for it and at least one holds an unexpired
 * copy. Stores that are down or fail are left out; while fewer than `copies` are, every
 * session still has a copy on a store that is read; with more, the listing rejects with
 * {@link NoStoreAvailableError} rather than silently skip sessions.
 */
export async function* listLiveSessions(
  stores: readonly StorePool[],
  copies: number,
  options: ListOptions & { withData?: boolean } = {},
): AsyncGenerator<{ id: string; data: Buffer | null }> {
  const batchSize = batchSizeOption(options.batchSize)
  let cursors: Cursor[] = stores
    .filter((store) => store.circuit.state === 'up')
    .map((store) => ({ store, page: [], index: 0, after: '', done: false }))
  const failures: StoreFailure[] = []
  const refill = async (cursor: Cursor): Promise<void> => {
    if (cursor.done || cursor.index < cursor.page.length) return
    try {
      cursor.page = await cursor.store.listPage(cursor.after, batchSize, options.withData)
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
      if (stores.length - cursors.length >= copies) {
        // As many stores as hold a session are missing: the listing could skip sessions.
        throw new NoStoreAvailableError('list every session', failures)
      }
    }
    let smallest: string | undefined
    for (const cursor of cursors) {
      const row = cursor.page[cursor.index]
      if (row !== undefined && (smallest === undefined || row.id < smallest)) smallest = row.id
    }
    if (smallest === undefined) return
    let tombstone = false
    let newest: ListedRow | undefined
    for (const cursor of cursors) {
      const row = cursor.page[cursor.index]
      if (row?.id !== smallest) continue
      cursor.index++
      if (row.deleted) tombstone = true
      else if (newest === undefined || row.version > newest.version) newest = row
    }
    // As for reads: a tombstone wins, then the newest copy, which must not have expired.
    if (!tombstone && newest !== undefined && newest.expiresAtMillis > Date.now()) {
      yield { id: smallest, data: newest.data }
    }
  }
}
