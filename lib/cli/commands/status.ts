/** `session-shards status`: each store's standing, probe latency and rows. */
import type { Command } from '../command.js'
import { noPositionals } from '../command.js'
import { allStores, isRetiring, loadCommandConfig, storeAddress } from '../config.js'
import type { RowCounts } from '../../maintenance/inspection.js'
import type { ConfigMismatch, PlacementConfig } from '../../events.js'
import { openManager } from '../manager.js'
import { EXIT_OK, EXIT_PROBLEM, formatCount, formatMillis } from '../output.js'

/** One store in `status --json`. */
export interface StoreStatus {
  id: string
  /** Only in `previousStores`: leaving the cluster, still holding copies until a rebalance. */
  retiring: boolean
  /** `host:port/database`; never the user or password. */
  address: string
  /** A probe connected and got an answer. */
  reachable: boolean
  /** Round trip of a probe on an open connection; null when unreachable. */
  probeMillis: number | null
  /** Null when unreachable, not counted (`--no-counts`) or the count failed. */
  rows: RowCounts | null
  /** The circuit as a manager sees it after its first health round. */
  circuit: 'up' | 'down' | 'behind'
  /** Why the store is a problem, or null. */
  error: string | null
}

export const statusCommand: Command = {
  help: `Usage: session-shards status [--no-counts] [--config <file>] [--json]

For each configured store: whether it answers, the round trip of a probe on an open
connection, its rows (live sessions, expired rows waiting for a sweep, tombstones) and the
circuit state a session manager gives it after one health round (up, down, or behind: up but
still replaying writes it missed). Addresses are shown as host:port/database, never with the
user or password. During a change of the store list, stores only in previousStores are listed
too, marked (retiring).

  --no-counts  skip the row counts (each is a full scan of the session table)

It also lists the managers running on these stores whose configuration places sessions
differently (another store list, placement or copy count; see the config-mismatch event).

Exit code: 0 every store answers and every manager agrees, 1 a store is down, its table
cannot be read or a manager's configuration conflicts, 2 usage or configuration error.`,
  options: { 'no-counts': { type: 'boolean' } },
  async run(context) {
    noPositionals(context, 'status')
    const config = await loadCommandConfig(context)
    const counts = context.values['no-counts'] !== true
    const manager = await openManager(config)
    let stores: StoreStatus[]
    let mismatches: ConfigMismatch[]
    try {
      await manager.ready()
      mismatches = manager.stats().configMismatches
      const reports = await manager.storeReports({ counts })
      const byId = new Map(reports.map((report) => [report.storeId, report]))
      stores = allStores(config.resolved).map((store) => {
        const report = byId.get(store.id)!
        return {
          id: store.id,
          retiring: isRetiring(config.resolved, store.id),
          address: storeAddress(store),
          reachable: report.probeMillis !== null,
          probeMillis: report.probeMillis,
          rows: report.rows,
          circuit: report.state,
          error: report.error,
        }
      })
    } finally {
      await manager.close()
    }
    const ok = stores.every((store) => store.error === null) && mismatches.length === 0
    const { out } = context
    out.result({
      ok,
      table: config.resolved.table,
      copies: config.resolved.copies,
      stores,
      configMismatches: mismatches,
    })
    const cell = (value: number | undefined): string =>
      value === undefined ? '-' : formatCount(value)
    out.table(
      [
        { header: 'store' },
        { header: 'address' },
        { header: 'status' },
        { header: 'probe ms', align: 'right' },
        { header: 'live', align: 'right' },
        { header: 'expired', align: 'right' },
        { header: 'tombstones', align: 'right' },
        { header: 'circuit' },
      ],
      stores.map((s) => [
        s.retiring ? `${s.id} (retiring)` : s.id,
        s.address,
        s.reachable ? 'up' : 'down',
        s.probeMillis === null ? '-' : formatMillis(s.probeMillis),
        cell(s.rows?.live),
        cell(s.rows?.expired),
        cell(s.rows?.tombstones),
        s.circuit,
      ]),
    )
    out.line()
    for (const store of stores) if (store.error !== null) out.line(`${store.id}: ${store.error}`)
    for (const { ours, theirs } of mismatches) {
      out.line(
        `config mismatch: a live manager places sessions with ${describeConfig(theirs)}; this configuration has ${describeConfig(ours)}.`,
      )
    }
    const up = stores.filter((store) => store.reachable).length
    out.line(
      `${up} of ${stores.length} store(s) up; copies = ${config.resolved.copies}, table ${config.resolved.table}.`,
    )
    return ok ? EXIT_OK : EXIT_PROBLEM
  },
}

function describeConfig(config: PlacementConfig): string {
  const previous =
    config.previousStores === null ? '' : `, moving from stores ${config.previousStores.join(',')}`
  return `stores ${config.stores.join(',')}, copies ${config.copies}, placement ${config.placement}${previous}`
}
