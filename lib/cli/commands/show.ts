/** `session-shards show <id>`: every copy of a session on every store. */
import type { InspectedCopy } from '../../maintenance/inspection.js'
import type { Command } from '../command.js'
import { singlePositional } from '../command.js'
import { loadCommandConfig } from '../config.js'
import { openManager } from '../manager.js'
import { EXIT_OK, EXIT_PROBLEM, formatCount } from '../output.js'
import { checkConfiguredId } from '../session-order.js'

/** One store's row in `show --json`. */
export interface ShownCopy extends Omit<InspectedCopy, 'expiresAt'> {
  /**
   * An ISO date; the stored milliseconds when no Date can hold them (a row written by other
   * software: the column holds what a Date cannot).
   */
  expiresAt: string | number
}

/** One store in `show --json`. */
export interface CopyReport {
  position: number
  storeId: string
  /** Among the first `copies` stores of the session's order. */
  holdsCopy: boolean
  /** Only in `previousStores`: not in the order; a rebalance moves its copy away. */
  retiring: boolean
  /** The store's row, null when it has none (or could not be asked). */
  copy: ShownCopy | null
  /** Why the store could not be asked, or null. */
  error: string | null
}

export const showCommand: Command = {
  help: `Usage: session-shards show <session-id> [--config <file>] [--json]

Asks every store, in the session's order (then stores only in previousStores), for its row
of the session and prints version, expiry, whether it is a tombstone (destroyed), and the size
of the data. The data itself is
never printed. Read-only: unlike a read through the session manager, it repairs nothing.

The last line tells what the copies say: a tombstone anywhere means destroyed; otherwise the
highest version wins, unless it has expired. Copies below that version are stale; a read
repairs them when it meets them, and \`session-shards repair\` repairs all.

Exit code: 0 every store answered, 1 a store could not be asked, 2 a malformed id or a
configuration error.`,
  options: {},
  async run(context) {
    const id = singlePositional(context, 'show', 'session-id')
    const config = await loadCommandConfig(context)
    // Before any store is asked: the manager checks it too, but only once it is open.
    checkConfiguredId(config.resolved, id)
    const copies = config.resolved.copies
    const manager = await openManager(config)
    let inspection: Awaited<ReturnType<typeof manager.inspectSession>>
    try {
      inspection = await manager.inspectSession(id)
    } finally {
      await manager.close()
    }
    const stores: CopyReport[] = inspection.stores.map((store, index) => ({
      position: index + 1,
      storeId: store.storeId,
      holdsCopy: store.holdsCopy,
      retiring: store.retiring,
      copy:
        store.copy === null
          ? null
          : { ...store.copy, expiresAt: shownExpiry(store.copy.expiresAt) },
      error: store.error,
    }))
    const verdict = judge(inspection, stores)
    const ok = stores.every((store) => store.error === null)
    const { out } = context
    out.result({ id, copies, ok, verdict, stores })
    out.line(`Session ${id} (copies = ${copies}):`)
    out.table(
      [
        { header: '#', align: 'right' },
        { header: 'store' },
        { header: 'role' },
        { header: 'row' },
        { header: 'version', align: 'right' },
        { header: 'expires (UTC)' },
        { header: 'data bytes', align: 'right' },
      ],
      stores.map((s) => [
        String(s.position),
        s.storeId,
        s.holdsCopy ? 'copy' : s.retiring ? 'retiring' : '',
        s.error !== null ? `error: ${s.error}` : describeRow(s.copy, verdict.version),
        s.copy === null ? '' : String(s.copy.version),
        s.copy === null
          ? ''
          : typeof s.copy.expiresAt === 'number'
            ? `${s.copy.expiresAt} ms`
            : s.copy.expiresAt,
        s.copy?.dataBytes == null ? '' : formatCount(s.copy.dataBytes),
      ]),
    )
    out.line()
    out.line(verdict.text)
    return ok ? EXIT_OK : EXIT_PROBLEM
  },
}

interface Verdict {
  state: 'live' | 'expired' | 'destroyed' | 'none'
  /** The winning version; null when there is none. */
  version: number | null
  text: string
}

/** The manager's verdict (the rule reads follow), in words. */
function judge(
  inspection: { state: Verdict['state']; version: number | null },
  stores: readonly CopyReport[],
): Verdict {
  const { state, version } = inspection
  const unreachable = stores.filter((s) => s.error !== null).length
  const caveat = unreachable > 0 ? ` (${unreachable} store(s) could not be asked)` : ''
  const holders = stores.filter(
    (s) =>
      s.copy !== null && s.copy.deleted === (state === 'destroyed') && s.copy.version === version,
  )
  const names = holders.map((s) => s.storeId).join(', ')
  switch (state) {
    case 'destroyed':
      return { state, version, text: `Destroyed: ${names} hold(s) a tombstone${caveat}.` }
    case 'none':
      return { state, version, text: `No copy on any store${caveat}.` }
    case 'expired':
      return {
        state,
        version,
        text: `Expired: the newest copy (version ${version}) is past its expiry${caveat}.`,
      }
    case 'live': {
      const stale = stores.filter((s) => s.copy !== null && !s.copy.deleted).length - holders.length
      return {
        state,
        version,
        text:
          `Live: version ${version} on ${names}` +
          (stale > 0 ? `; ${stale} stale copy(ies)` : '') +
          `${caveat}.`,
      }
    }
  }
}

/** An expiry as `show` gives it: an ISO date, or the milliseconds when no Date can hold them. */
function shownExpiry(millis: number): string | number {
  const date = new Date(millis)
  return Number.isNaN(date.getTime()) ? millis : date.toISOString()
}

function describeRow(copy: ShownCopy | null, newest: number | null): string {
  if (copy === null) return 'none'
  if (copy.deleted) return 'tombstone'
  const expiresAt = typeof copy.expiresAt === 'number' ? copy.expiresAt : Date.parse(copy.expiresAt)
  if (expiresAt <= Date.now()) return 'expired'
  return newest !== null && copy.version < newest ? 'live (stale)' : 'live'
}
