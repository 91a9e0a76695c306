import { locateSession } from '../manager.js'
import type { Command } from '../command.js'
import { singlePositional } from '../command.js'
import { allStores, loadCommandConfig } from '../config.js'
import { EXIT_OK, EXIT_PROBLEM, formatCount } from '../output.js'
import { StoreInspector, type CopyOnStore } from '../store-inspector.js'

/** One store in `show --json`. */
export interface CopyReport {
  position: number
  storeId: string
  /** Among the first `copies` stores of the session's order. */
  holdsCopy: boolean
  /** Only in `previousStores`: not in the order; a rebalance moves its copy away. */
  retiring: boolean
  /** The store's row, null when it has none (or could not be asked). */
  copy: CopyOnStore | null
  /** Why the store could not be asked, or null. */
  error: string | null
}

export const showCommand: Command = {
  name: 'show',
  summary: 'show <id>: every copy of a session on every store',
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
    const order = await locateSession(config, id)
    const copies = config.resolved.copies
    // Stores only in previousStores may still hold copies: they are asked too, last.
    const retiring = allStores(config.resolved)
      .map((store) => store.id)
      .filter((storeId) => !order.includes(storeId))
    const inspector = new StoreInspector(config.resolved)
    let stores: CopyReport[]
    try {
      stores = await Promise.all(
        [...order, ...retiring].map(async (storeId, index) => {
          const answer = await inspector.copy(storeId, id)
          return {
            position: index + 1,
            storeId,
            holdsCopy: index < copies,
            retiring: index >= order.length,
            copy: answer.ok ? answer.value : null,
            error: answer.ok ? null : answer.error,
          }
        }),
      )
    } finally {
      await inspector.close()
    }
    const verdict = judge(stores)
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
        s.copy === null ? '' : s.copy.expiresAt,
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

/** What the copies say, by the manager's read rule (see docs/design.md, "Read path"). */
function judge(stores: readonly CopyReport[]): Verdict {
  const rows = stores.flatMap((s) =>
    s.copy === null ? [] : [{ storeId: s.storeId, copy: s.copy }],
  )
  const unreachable = stores.filter((s) => s.error !== null).length
  const caveat = unreachable > 0 ? ` (${unreachable} store(s) could not be asked)` : ''
  const tombstone = rows.find((row) => row.copy.deleted)
  if (tombstone !== undefined) {
    return {
      state: 'destroyed',
      version: tombstone.copy.version,
      text: `Destroyed: ${tombstone.storeId} holds a tombstone${caveat}.`,
    }
  }
  if (rows.length === 0)
    return { state: 'none', version: null, text: `No copy on any store${caveat}.` }
  const newest = Math.max(...rows.map((row) => row.copy.version))
  const holders = rows.filter((row) => row.copy.version === newest)
  const expiresAt = Math.max(...holders.map((row) => Date.parse(row.copy.expiresAt)))
  if (expiresAt <= Date.now()) {
    return {
      state: 'expired',
      version: newest,
      text: `Expired: the newest copy (version ${newest}) is past its expiry${caveat}.`,
    }
  }
  const stale = rows.length - holders.length
  return {
    state: 'live',
    version: newest,
    text:
      `Live: version ${newest} on ${holders.map((row) => row.storeId).join(', ')}` +
      (stale > 0 ? `; ${stale} stale copy(ies)` : '') +
      `${caveat}.`,
  }
}

function describeRow(copy: CopyOnStore | null, newest: number | null): string {
  if (copy === null) return 'none'
  if (copy.deleted) return 'tombstone'
  if (Date.parse(copy.expiresAt) <= Date.now()) return 'expired'
  return newest !== null && copy.version < newest ? 'live (stale)' : 'live'
}
