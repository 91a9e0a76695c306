/** The repair of one session's copies: a plan (pure) from what every reachable store holds, then its actions. */
import type { Clock } from '../clock.js'
import { newestCopy, supersedes } from '../copy-rules.js'
import type { StoredCopy } from '../store/rows.js'
import type { Store } from '../store/store.js'

/** What one store of a session's order holds for it (null: no row; undefined: not read). */
export interface StoreHolding {
  store: Store
  copy: StoredCopy | null | undefined
  /** Its copy does not decode, while another of its version does (see {@link markUnreadable}). */
  unreadable?: boolean
}

/** One change that brings a session's copies to where they belong. */
export type RepairAction =
  /**
   * Write the newest copy to a store that should hold it (an expired one: over an older copy);
   * with `overUnreadable`, over the bytes of a copy of its version that do not decode.
   */
  | { kind: 'copy'; store: Store; source: StoredCopy; overUnreadable?: Buffer }
  /** Put a tombstone where a destroyed session's copy is (or should be). */
  | { kind: 'bury'; store: Store; source: StoredCopy }
  /**
   * Delete a copy that is stale or sits outside the session's first `copies` stores: one older
   * than `version`, or at it expiring by `expiresAtMillis` when given (a touch since the plan
   * read it leaves it, for the next repair to carry its later expiry over first).
   */
  | { kind: 'remove'; store: Store; version: number; expiresAtMillis?: number }
  /** Delete a tombstone whose time is up, once no store that may hold an old copy is down. */
  | { kind: 'clear'; store: Store }

/** Options of {@link planRepair}. */
export interface RepairPlanOptions {
  /** How many stores should hold each session. */
  copies: number
  now: number
  /**
   * How far behind `now` other app servers' clocks may run: a session expired less than this
   * long ago may still be live for them, and is repaired (moved) as a live one.
   */
  clockToleranceMillis: number
  /**
   * Full repair: outside the first `copies` stores, delete the rows of a destroyed or expired
   * session rather than bury or supersede them (hint replay and read repair keep them
   * covered). Live copies there go in every mode once the targets hold the newest.
   */
  dropExtras: boolean
  /**
   * Every store of the session's order is reachable: only then may tombstones be cleared, or
   * a full repair delete an expired session's newest copy outside the targets.
   */
  allStoresUp: boolean
  /**
   * A change of the store list is under way: copies outside the targets may be the old
   * placement's, which a full repair moves (see {@link planRepair}).
   */
  moving?: boolean
}

/**
 * Decides how to repair one session from what each store of its order holds (`order`: every
 * store, those that could not be read included). Target actions (`copy`, `bury`) come first;
 * removals assume the targets succeeded and are applied only if they did (see
 * {@link applyRepair}). The targets are the first `copies` stores of the whole order: a live
 * copy never goes to a store past them because one of them could not be read (no hint would
 * hand it off, and it would outlive a newer write there). While one of them is unread, nothing
 * is removed or cleared either: it may hold what the removal assumes the targets hold.
 *
 * - A tombstone anywhere wins: the session was destroyed, ids are never reused, and no later
 *   write can undo a destroy. The first `copies` stores get a tombstone, live copies
 *   elsewhere are buried too, and once the tombstone's time is up (and no store is down) every
 *   row of the session is deleted.
 * - Otherwise the copy with the highest version is the session. If not expired, the first
 *   `copies` stores get it (one that decodes: a target whose copy of that version does not
 *   gets its bytes), and copies elsewhere are removed once they have; so does one expired
 *   less than `clockToleranceMillis` ago (an app server whose clock runs behind may still
 *   count it live: during a change of the store list, removing its copies outside the targets
 *   would end it for that server). If expired longer, the session is over, but only while
 *   no store holds an older live copy: a write with a short TTL (or a shortened timeout)
 *   expires before the copy it replaced, which a store that missed it still holds. Those
 *   stores get the expired copy (outside the targets a full repair deletes every copy
 *   instead); the sweeper removes the rest.
 */
export function planRepair(
  order: readonly StoreHolding[],
  options: RepairPlanOptions,
): RepairAction[] {
  const firstStores = order.slice(0, options.copies)
  const targets = new Set(firstStores.map((entry) => entry.store))
  const read = order.filter((entry): entry is ReadHolding => entry.copy !== undefined)
  const actions = planFromRead(read, targets, options)
  if (firstStores.every((entry) => entry.copy !== undefined)) return actions
  return actions.filter((action) => action.kind === 'copy' || action.kind === 'bury')
}

/** A store that was read: its copy, or null for no row. */
type ReadHolding = StoreHolding & { copy: StoredCopy | null }

/** {@link planRepair} over the stores that were read, the targets given. */
function planFromRead(
  stores: readonly ReadHolding[],
  targets: ReadonlySet<Store>,
  options: RepairPlanOptions,
): RepairAction[] {
  const present = stores.filter(
    (entry): entry is ReadHolding & { copy: StoredCopy } => entry.copy !== null,
  )
  if (present.length === 0) return []
  const tombstones = present.filter((entry) => entry.copy.deleted)
  if (tombstones.length > 0) {
    const newest = newestCopy(tombstones.map((entry) => entry.copy)) as StoredCopy
    if (options.allStoresUp && newest.expiresAtMillis <= options.now) {
      return present.map(({ store, copy }) =>
        copy.deleted ? { kind: 'clear', store } : { kind: 'remove', store, version: copy.version },
      )
    }
    // Outside the targets a full repair deletes a live copy outright (burying it there would
    // leave a tombstone for the next repair to clear); hint replay and read repair bury it.
    const actions: RepairAction[] = stores.flatMap(({ store, copy }): RepairAction[] => {
      if (copy?.deleted === true) return []
      if (targets.has(store)) return [{ kind: 'bury', store, source: newest }]
      if (copy === null) return []
      return options.dropExtras
        ? [{ kind: 'remove', store, version: copy.version }]
        : [{ kind: 'bury', store, source: newest }]
    })
    if (options.dropExtras) {
      for (const { store, copy } of tombstones) {
        if (!targets.has(store) && copy.expiresAtMillis <= newest.expiresAtMillis) {
          actions.push({ kind: 'clear', store })
        }
      }
    }
    return actions
  }
  const newestOfAll = newestCopy(present.map((entry) => entry.copy)) as StoredCopy
  if (newestOfAll.expiresAtMillis <= options.now - options.clockToleranceMillis)
    return supersedeOlder(present, newestOfAll, targets, options)
  const readable = present.filter((entry) => entry.unreadable !== true)
  const newest = newestCopy(readable.map((entry) => entry.copy)) ?? newestOfAll
  const extras = present.filter(({ store }) => !targets.has(store))
  // A copy that goes may carry a later expiry than the targets' of its version (a touch they
  // missed, or one that landed on it while the session moved): the targets take it first.
  const laterExpiryGoes = extras.some(({ copy }) => copy === newest)
  const actions: RepairAction[] = stores
    .filter(
      ({ store, copy, unreadable }) =>
        targets.has(store) &&
        (copy === null ||
          unreadable === true ||
          supersedes(newest, copy) ||
          (laterExpiryGoes && copy.expiresAtMillis < newest.expiresAtMillis)),
    )
    .map(({ store, copy, unreadable }) =>
      unreadable === true && copy?.data
        ? { kind: 'copy', store, source: newest, overUnreadable: copy.data }
        : { kind: 'copy', store, source: newest },
    )
  // Once the targets hold the newest copy, one elsewhere (left by a write that failed over or
  // hedged past a target) has been handed off, and goes: left there, it would outlive a newer
  // copy with a shorter life, and be the session again once a sweep deleted that one. Hint
  // replay and read repair remove it too (version-checked: a newer write there stays, and so
  // does one a touch extended since it was read: checked against its own expiry as read, which
  // may be later than the newest copy's, for a copy without the session's timeout).
  // A move (a full repair during a change of the store list) keeps them while a store could not
  // be read: it may have missed the newest write and hold an older copy, and the hints for it,
  // which spare rows from sweeps, are kept only where that write landed (the old placement),
  // not on the new targets. Removed, the targets' copies (a short life) could be swept before
  // its replay, which would then find its older copy alone and bring it back. Outside a change
  // the targets took that write and keep those hints, and extras go as ever.
  const keep = options.dropExtras && options.moving === true && !options.allStoresUp
  for (const { store, copy } of extras) {
    // An older copy kept, or one of a session expired within the clock tolerance (it ends for
    // this app server), must not outlive the newest: it gets it, whether or not a removal runs.
    if ((keep || newest.expiresAtMillis <= options.now) && supersedes(newest, copy)) {
      actions.push({ kind: 'copy', store, source: newest })
    }
    if (keep) continue
    actions.push({
      kind: 'remove',
      store,
      version: newest.version,
      expiresAtMillis: copy.expiresAtMillis,
    })
  }
  return actions
}

/**
 * The actions that leave no copy older than the expired `newest`: where one is, the expired copy
 * is written over it (which the store applies, being a higher version), so that no read,
 * alone or by quorum, finds the older copy once the newer has expired, nor after a sweep has
 * deleted it.
 */
function supersedeOlder(
  present: readonly { store: Store; copy: StoredCopy }[],
  newest: StoredCopy,
  targets: ReadonlySet<Store>,
  options: RepairPlanOptions,
): RepairAction[] {
  return present.flatMap(({ store, copy }): RepairAction[] => {
    // A full repair leaves no copy of an expired session outside the targets, the expired one
    // included: the sweeper only reaches the configured stores, not one being retired. Not
    // while a store is down: it may hold an older live copy, which only the expired one can
    // supersede once it is back (the targets get no expired copy where they hold none).
    if (options.dropExtras && options.allStoresUp && !targets.has(store)) {
      return [{ kind: 'remove', store, version: newest.version }]
    }
    return supersedes(newest, copy) ? [{ kind: 'copy', store, source: newest }] : []
  })
}

/** Counts of what a repair changed. */
export interface RepairCounts {
  copied: number
  removed: number
}

/**
 * Applies a plan for one session: target actions in parallel, then removals only if every
 * target action succeeded (so no copy is removed before the right stores hold the session),
 * live copies before tombstones: a tombstone cleared while a removal of a live copy it
 * supersedes failed would leave that copy to be the session again. Rejects with the first
 * failure after counting what succeeded.
 */
export async function applyRepair(
  sessionId: string,
  actions: readonly RepairAction[],
): Promise<RepairCounts> {
  const counts: RepairCounts = { copied: 0, removed: 0 }
  const additions = actions.filter((action) => action.kind === 'copy' || action.kind === 'bury')
  const removals = actions.filter((action) => action.kind === 'remove')
  const clears = actions.filter((action) => action.kind === 'clear')
  const results = await Promise.allSettled(additions.map((action) => runAction(sessionId, action)))
  counts.copied = results.filter((result) => result.status === 'fulfilled').length
  const failed = results.find((result) => result.status === 'rejected')
  if (failed !== undefined) throw failed.reason
  await Promise.all(removals.map((action) => runAction(sessionId, action)))
  await Promise.all(clears.map((action) => runAction(sessionId, action)))
  counts.removed = removals.length + clears.length
  return counts
}

function runAction(sessionId: string, action: RepairAction): Promise<void> {
  switch (action.kind) {
    case 'copy':
      return action.store.copy(sessionId, action.source, action.overUnreadable)
    case 'bury':
      return action.store.destroy(sessionId, action.source.version, action.source.expiresAtMillis)
    case 'remove':
      return action.store.removeCopy(sessionId, action.version, action.expiresAtMillis)
    case 'clear':
      return action.store.clearTombstone(sessionId)
  }
}

/** What the repair of a batch needs from the manager. */
export interface RepairContext {
  /** The session's order over every store, reachable or not. */
  orderOf(sessionId: string): readonly Store[]
  copies: number
  clock: Clock
  /** How far behind other app servers' clocks may run (see {@link RepairPlanOptions}). */
  clockToleranceMillis: number
  /** Whether a copy's bytes decode, as a read decodes them (see {@link markUnreadable}). */
  decodes(sessionId: string, data: Buffer): boolean
  /** Stores being retired (a change of the store list): last in every order, never written. */
  retiring: ReadonlySet<Store>
  /** A change of the store list is under way (`previousStores`). */
  moving: boolean
}

/** Options of {@link repairSessions}. */
export interface RepairBatchOptions {
  /** Remove copies past the first `copies` stores (a rebalance, a full repair, a move). */
  dropExtras: boolean
  /**
   * Repair a session only if this store is the first reachable store of its order that
   * holds a row for it, so that a full scan of every store repairs each session once. A
   * session then counts as repaired only if every store of its order was read.
   */
  onlyFirstHolder?: Store
  /**
   * Count a session as repaired only if this store answered (hint replay for it): a store that
   * could not be read is not known to hold anything, and must not pass for caught up. A
   * session that this store now holds while another of its first `2 * copies - 1` stores
   * could not be read is done for this store, and listed in `handOver` instead of `failed`:
   * what remains (that store's copy, and the copies past the targets that go once it holds
   * the session) is left to a hint for it.
   */
  mustReach?: Store
}

/** A session repaired for `mustReach` while some of its first stores could not be read. */
export interface HandOver {
  sessionId: string
  /** The session's first `2 * copies - 1` stores that could not be read. */
  unread: Store[]
  /** The newest version read (0 when no store held a row). */
  version: number
}

/**
 * Reads `sessionIds` from every reachable store (one statement per store) and repairs each
 * session as {@link planRepair} decides. Per-session failures are counted, not thrown: one
 * store failing mid-batch must not stop the rest.
 */
export async function repairSessions(
  context: RepairContext,
  sessionIds: readonly string[],
  options: RepairBatchOptions,
): Promise<RepairCounts & { failed: string[]; handOver: HandOver[] }> {
  const totals = { copied: 0, removed: 0, failed: [] as string[], handOver: [] as HandOver[] }
  if (sessionIds.length === 0) return totals
  const stores = new Set(sessionIds.flatMap((id) => context.orderOf(id)))
  const reads = await Promise.all(
    [...stores].map(async (store) => {
      if (!store.standing.up) return [store, undefined] as const
      try {
        return [store, await store.readMany(sessionIds)] as const
      } catch {
        return [store, undefined] as const
      }
    }),
  )
  const held = new Map(reads)
  // The store a scan lists (onlyFirstHolder) must be read too: unread, no session would find
  // it as its first holder, and the whole batch would pass for repaired by being skipped.
  const notRead = (store: Store | undefined): boolean =>
    store !== undefined && held.get(store) === undefined
  if (notRead(options.mustReach) || notRead(options.onlyFirstHolder)) {
    return { ...totals, failed: [...sessionIds] }
  }
  const now = context.clock.now()
  await Promise.all(
    sessionIds.map(async (sessionId) => {
      const order = context.orderOf(sessionId)
      const holdings = markUnreadable(
        order.map((store) => {
          const rows = held.get(store)
          return { store, copy: rows === undefined ? undefined : (rows.get(sessionId) ?? null) }
        }),
        (data) => context.decodes(sessionId, data),
      )
      if (options.onlyFirstHolder !== undefined) {
        const firstHolder = holdings.find((entry) => entry.copy != null)?.store
        if (firstHolder !== options.onlyFirstHolder) return
      }
      const plan = planRepair(holdings, {
        copies: context.copies,
        now,
        clockToleranceMillis: context.clockToleranceMillis,
        dropExtras: options.dropExtras,
        moving: context.moving,
        allStoresUp: holdings.every((entry) => entry.copy !== undefined),
      })
      // A store among the first `copies` that could not be read may lack the session, and one
      // past them (storesToRead) may hold an extra copy: what can be done is done, but the
      // session does not count as repaired (see mustReach). In a scan, any store that could
      // not be read may hold a copy past them too (a retiring store, in a rebalance), which its
      // own walk would skip (the session is not its first holder): not repaired either. (A move
      // is done again by a later read, or the scan.)
      const mustHaveRead = storesToRead(order, context, options)
      const unread = mustHaveRead.filter((store) => held.get(store) === undefined)
      try {
        const counts = await applyRepair(sessionId, plan)
        totals.copied += counts.copied
        totals.removed += counts.removed
        if (unread.length === 0) return
        // A retiring store is not hinted (nothing replays to it once it is gone): unread, the
        // session waits for the next replay.
        if (options.mustReach === undefined || unread.some((s) => context.retiring.has(s))) {
          totals.failed.push(sessionId)
          return
        }
        const read = holdings.flatMap((entry) => (entry.copy == null ? [] : [entry.copy]))
        const version = newestCopy(read)?.version ?? 0
        totals.handOver.push({ sessionId, unread, version })
      } catch {
        totals.failed.push(sessionId)
      }
    }),
  )
  return totals
}

/**
 * The stores of a session's `order` that a repair must have read for the session to count as
 * repaired: in a scan, every one (each walks only the sessions it holds first); in hint
 * replay, the first `2 * copies - 1` (and the retiring stores), where a write that failed
 * over or hedged past a store may have left an extra copy. Unread, that copy would
 * outlive the replay, which deletes the hints that spare the newer copies from sweeps: once a
 * newer write with a short life had expired and been swept, its replay would bring the older
 * copy back. Otherwise the first `copies`.
 */
function storesToRead(
  order: readonly Store[],
  context: RepairContext,
  options: RepairBatchOptions,
): readonly Store[] {
  if (options.onlyFirstHolder !== undefined) return order
  const { copies, retiring } = context
  if (options.mustReach === undefined) return order.slice(0, copies)
  // A store being retired takes no write during the change, but may hold an extra copy that a
  // write before it left there: read too (never handed a hint: see repairSessions).
  const staying = order.filter((store) => !retiring.has(store)).slice(0, 2 * copies - 1)
  return [...staying, ...order.filter((store) => retiring.has(store))]
}

/**
 * Marks the live copies of the newest version read that do not decode, when another copy of
 * that version does: a repair writes that one's bytes over them (by version, they are as new
 * as it, and would stay unreadable until the session's next write). Copies of one write
 * carry the same bytes, so `decodes` runs only when they differ; with none that decodes,
 * nothing is marked (this manager may lack a key the others have).
 */
export function markUnreadable(
  holdings: readonly StoreHolding[],
  decodes: (data: Buffer) => boolean,
): StoreHolding[] {
  const copies = holdings.flatMap((entry) => (entry.copy == null ? [] : [entry.copy]))
  if (copies.some((copy) => copy.deleted)) return [...holdings]
  const version = Math.max(...copies.map((copy) => copy.version))
  const datas = copies.flatMap((copy) =>
    copy.version === version && copy.data !== null ? [copy.data] : [],
  )
  if (datas.every((data) => data.equals(datas[0] as Buffer))) return [...holdings]
  const verdicts = new Map<Buffer, boolean>(datas.map((data) => [data, decodes(data)]))
  if (![...verdicts.values()].some(Boolean)) return [...holdings]
  return holdings.map((entry) =>
    entry.copy?.data != null && verdicts.get(entry.copy.data) === false
      ? { ...entry, unreadable: true }
      : entry,
  )
}
