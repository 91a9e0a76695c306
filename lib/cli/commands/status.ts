import type { Command } from '../command.js'
import { noPositionals } from '../command.js'
import { isRetiring, loadCommandConfig, storeAddress } from '../config.js'
import { circuitState, openManager } from '../manager.js'
import { EXIT_OK, EXIT_PROBLEM, formatCount, formatMillis } from '../output.js'
import { StoreInspector, type RowCounts } from '../store-inspector.js'

/** One store in `status --json`. */
export interface StoreStatus {
  id: string
  /** Only in `previousStores`: leaving the cluster, still holding copies until a rebalance. */
  retiring: boolean
  /** `host:port/database`; never the user or password. */
  address: string
  /** A probe connected and got an answer. */
  reachable: boolean
  /** Round trip of `SELECT 1` on an open connection; null when unreachable. */
  probeMillis: number | null
  /** Null when unreachable, not counted (`--no-counts`) or the count failed. */
  rows: RowCounts | null
  /** The circuit as a manager sees it after its first health round. */
  circuit: 'up' | 'down' | 'behind'
  /** Why the store is a problem, or null. */
  error: string | null
}

export const statusCommand: Command = {
  name: 'status',
  summary: 'each store: up/down, probe latency, rows (live, expired, tombstones), circuit state',
  help: `Usage: session-shards status [--no-counts] [--config <file>] [--json]

For each configured store: whether it answers, the round trip of a probe (SELECT 1 on an open
connection), its rows (live sessions, expired rows waiting for a sweep, tombstones) and the
circuit state a session manager gives it after one health round (up, down, or behind: up but
still replaying writes it missed). Addresses are shown as host:port/database, never with the
user or password. During a change of the store list, stores only in previousStores are listed
too, marked (retiring).

  --no-counts  skip the row counts (each is a full scan of the session table)

Exit code: 0 every store answers, 1 a store is down or its table cannot be read,
2 usage or configuration error.`,
  options: { 'no-counts': { type: 'boolean' } },
  async run(context) {
    noPositionals(context, 'status')
    const config = await loadCommandConfig(context)
    const counts = context.values['no-counts'] !== true
    const inspector = new StoreInspector(config.resolved)
    const managerOpening = openManager(config)
    let stores: StoreStatus[]
    try {
      const answers = await Promise.all(
        inspector.stores.map(async (store) => {
          const probe = await inspector.probe(store.id)
          const rows = probe.ok && counts ? await inspector.rowCounts(store.id) : null
          return { store, probe, rows }
        }),
      )
      const manager = await managerOpening
      stores = answers.map(({ store, probe, rows }) => ({
        id: store.id,
        retiring: isRetiring(config.resolved, store.id),
        address: storeAddress(store),
        reachable: probe.ok,
        probeMillis: probe.ok ? Math.round(probe.value.millis * 100) / 100 : null,
        rows: rows?.ok === true ? rows.value : null,
        circuit: circuitState(manager, store.id),
        error: !probe.ok ? probe.error : rows?.ok === false ? rows.error : null,
      }))
    } finally {
      await Promise.all([
        inspector.close(),
        managerOpening.then((manager) => manager.close()).catch(() => {}),
      ])
    }
    const ok = stores.every((store) => store.error === null)
    const { out } = context
    out.result({ ok, table: config.resolved.table, copies: config.resolved.copies, stores })
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
    const up = stores.filter((store) => store.reachable).length
    out.line(
      `${up} of ${stores.length} store(s) up; copies = ${config.resolved.copies}, table ${config.resolved.table}.`,
    )
    return ok ? EXIT_OK : EXIT_PROBLEM
  },
}
