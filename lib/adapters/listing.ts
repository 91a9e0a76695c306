/**
 * What the framework stores list (`all`, `ids`, `length`, `clear`): the manager's live sessions,
 * without those under ids it refuses (unsigned, or signed with a secret since dropped), which
 * no request can read.
 */
import type { SessionData } from '../codec.js'
import type { SessionManager } from '../session-manager.js'
import { withoutCookieProto, withStoredExpiry } from './cookie-expiry.js'

/** Sessions read or destroyed at once by `all()` and `clear()`. */
const LISTING_CONCURRENCY = 32

/** Every live session's key (its id, or the key derived from an id) the manager takes, once each. */
export async function listedIds(manager: SessionManager): Promise<string[]> {
  const ids: string[] = []
  for await (const id of manager.list()) if (takes(manager, id)) ids.push(id)
  return ids
}

/** How many sessions {@link listedIds} lists, without keeping them. */
export async function listedCount(manager: SessionManager): Promise<number> {
  let count = 0
  for await (const id of manager.list()) if (takes(manager, id)) count++
  return count
}

/**
 * Every live session with its key, as a framework read shows it (the stored expiry as the
 * cookie's); one that ends while being listed is left out, and so is one the manager refuses.
 */
export async function listedSessions(
  manager: SessionManager,
): Promise<{ id: string; data: SessionData }[]> {
  const sessions: { id: string; data: SessionData }[] = []
  await inChunks(manager.list(), async (ids) => {
    const found = await Promise.all(
      ids.map((id) => refusedAsNull(manager.readSession(id, { withVersion: true }))),
    )
    found.forEach((current, index) => {
      if (current === null) return
      const data = withStoredExpiry(withoutCookieProto(current.data), current.expiresAt)
      sessions.push({ id: ids[index] as string, data })
    })
  })
  return sessions
}

/**
 * Destroys every live session through the manager, so none can come back. Sessions under ids
 * the manager refuses are left to expire: no request can read them.
 */
export async function clearListed(manager: SessionManager): Promise<void> {
  await inChunks(manager.list(), async (ids) => {
    await Promise.all(ids.map((id) => refusedAsNull(manager.destroySession(id))))
  })
}

/** Whether the manager refused a call for its session id (`INVALID_SESSION_ID`). */
export function isMalformedId(error: unknown): boolean {
  return (error as { code?: unknown } | null)?.code === 'INVALID_SESSION_ID'
}

/** Whether the manager takes `id` (its id check, no I/O). */
function takes(manager: SessionManager, id: string): boolean {
  try {
    manager.locate(id)
    return true
  } catch (error) {
    if (isMalformedId(error)) return false
    throw error
  }
}

/** The call's result, or null when the manager refused its id (see {@link isMalformedId}). */
async function refusedAsNull<T>(call: Promise<T>): Promise<T | null> {
  try {
    return await call
  } catch (error) {
    if (isMalformedId(error)) return null
    throw error
  }
}

/** Feeds ids to `work` in chunks of {@link LISTING_CONCURRENCY}, one chunk at a time. */
async function inChunks(
  ids: AsyncIterable<string>,
  work: (chunk: string[]) => Promise<void>,
): Promise<void> {
  let chunk: string[] = []
  for await (const id of ids) {
    chunk.push(id)
    if (chunk.length === LISTING_CONCURRENCY) {
      await work(chunk)
      chunk = []
    }
  }
  if (chunk.length > 0) await work(chunk)
}
