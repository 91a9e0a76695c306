/** `session-shards demo`: a local cluster, a workload, a store killed and back, and the report. */
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { startLocalCluster, ServerBinaryNotFoundError } from '../../local-cluster/index.js'
import type { LocalCluster } from '../../local-cluster/index.js'
import { BASE_DIR_PREFIX } from '../../local-cluster/leftovers.js'
import { describeServerBinary, type ServerBinary } from '../../local-cluster/server-binary.js'
import { ensureServerBinary } from '../../local-cluster/server-install.js'
import { demoReportHtml } from '../workload/demo-html.js'
import { runFailoverDemo, type FailoverDemoReport } from '../workload/failover-demo.js'
import type { Command } from '../command.js'
import { integerArgument, noPositionals, UsageError } from '../command.js'
import { EXIT_OK, EXIT_PROBLEM, formatCount, type Output } from '../output.js'
import { createProgressBar, progressWanted } from '../progress.js'

const STORES = 3
const SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const
const SIGNAL_EXIT_CODES: Record<(typeof SIGNALS)[number], number> = {
  SIGINT: 130,
  SIGTERM: 143,
  SIGHUP: 129,
}
/** How long a signal waits for stores still starting before the process exits anyway. */
const START_SETTLE_MILLIS = 35_000

/** `demo --json`: the scenario's report, and where it ran. */
export interface DemoJson extends FailoverDemoReport {
  ok: boolean
  server: string
  /** The temporary directory the stores ran in; removed before the process exits. */
  baseDir: string
  /** The HTML page written (absolute path), or null if it could not be written. */
  htmlPath: string | null
}

export const demoCommand: Command = {
  help: `Usage: session-shards demo [--seconds N] [--sessions N] [--server-binary <path>]
                          [--html <file>] [--json]

The product's main job in one command. Starts ${STORES} throwaway MariaDB (or MySQL) stores on
127.0.0.1, applies the schema, creates sessions, then two app servers (session managers with the
default options, copies = 2) read and write them concurrently. At 30 % of the run one store is
killed with SIGKILL; at 60 % it is restarted; then a repair runs and every session is read back
through a new app server. Every read is checked against what was acknowledged.

The report: operations and ops/s, failovers (store-down events), acknowledged writes, lost
writes and stale reads (both must be 0), time from the kill to the first store-down event,
and the repair's counts. Live progress on a terminal; plain lines in a pipe. The same report
as a page to look at: a self-contained HTML file (charts in inline SVG, nothing fetched) with
operations per second, p99 latency, failed requests and each store's state over time, the
kill and the recovery marked; its path is printed at the end.

Everything it starts is removed when it ends, also on Ctrl-C: the server processes and the
temporary directory. A template data directory is kept in $TMPDIR/session-shards-templates
so that later runs start faster.

  --seconds N             length of the workload (default 20, 3 to 86,400)
  --sessions N            sessions created before it starts (default 5000, 100 to 1,000,000)
  --server-binary <path>  the mariadbd or mysqld to run (default: the first found on PATH,
                          /usr/sbin, /usr/libexec, /usr/local/mysql/bin)
  --html <file>           where to write the HTML page (default session-shards-demo.html)

Exit code: 0 nothing lost or stale, 1 a write was lost, a read was stale or a repair failed,
2 usage error or no server binary installed, 130 interrupted.`,
  options: {
    seconds: { type: 'string' },
    sessions: { type: 'string' },
    'server-binary': { type: 'string' },
    html: { type: 'string' },
  },
  async run(context) {
    noPositionals(context, 'demo')
    // Bounded: the workload keeps every session's id and the newest write it acknowledged.
    const seconds = integerArgument('seconds', context.values['seconds'], 3, MAX_SECONDS) ?? 20
    const sessions =
      integerArgument('sessions', context.values['sessions'], 100, MAX_SESSIONS) ?? 5000
    const serverBinary = context.values['server-binary']
    const htmlFile = path.resolve(String(context.values['html'] ?? 'session-shards-demo.html'))
    const { out } = context
    const started = Date.now()
    const stamp = (): string => `[${((Date.now() - started) / 1000).toFixed(1).padStart(5)} s]`
    const bar = createProgressBar({
      enabled: progressWanted(out.json),
      total: seconds,
      format:
        'traffic {bar} {value}/{total} s | {operations} ops {rate}/s | acked {acked} | lost {lost} stale {stale} | {stores}',
      payload: { operations: 0, rate: 0, acked: 0, lost: 0, stale: 0, stores: '' },
      fallback: (line) => out.note(line),
    })
    const note = (text: string): void => bar.log(`${stamp()} ${text}`)

    // Checked before anything is created; startLocalCluster checks again. Without a server
    // binary, Debian's mariadb-server is installed when this runs as root with apt-get.
    let binary: ServerBinary | null
    try {
      binary =
        typeof serverBinary === 'string'
          ? describeServerBinary(serverBinary)
          : await ensureServerBinary({ log: (line) => out.note(line) })
    } catch (error) {
      if (!(error instanceof ServerBinaryNotFoundError)) throw error
      throw new UsageError(error.message)
    }
    if (binary === null) throw new UsageError(NO_SERVER_MESSAGE)

    // The demo makes the base directory itself (where the launcher looks for leftovers), so a
    // signal can remove it even while the stores are still starting.
    const baseDir = await mkdtemp(path.join(os.tmpdir(), BASE_DIR_PREFIX))
    let starting: Promise<LocalCluster> | undefined
    let stopping: Promise<void> | undefined
    const stopEverything = (): Promise<void> =>
      (stopping ??= (async () => {
        const cluster = await settleWithin(starting, START_SETTLE_MILLIS)
        await cluster?.stop()
        await rm(baseDir, { recursive: true, force: true })
      })())
    let signalled = false
    const onSignal = (signal: NodeJS.Signals): void => {
      const code = SIGNAL_EXIT_CODES[signal as (typeof SIGNALS)[number]] ?? EXIT_PROBLEM
      // A second signal exits at once; the launcher's exit guard still SIGKILLs the servers.
      if (signalled) process.exit(code)
      signalled = true
      bar.stop()
      out.error(`${signal}: stopping the local stores and removing ${baseDir}`)
      void stopEverything().finally(() => process.exit(code))
    }
    for (const signal of SIGNALS) process.on(signal, onSignal)

    try {
      note(`starting ${STORES} local stores in ${baseDir}`)
      starting = startLocalCluster({
        stores: STORES,
        baseDir,
        serverBinary: binary.path,
      })
      let cluster: LocalCluster
      try {
        cluster = await starting
      } catch (error) {
        if (!(error instanceof ServerBinaryNotFoundError)) throw error
        bar.stop()
        // The binary was checked above: the error names it, and an option's value is not shown.
        throw new UsageError(NO_SERVER_MESSAGE)
      }
      const [versionRow] = await cluster.stores[0]!.query<{ version: string }>(
        'SELECT VERSION() AS version',
      )
      const server = versionRow?.version ?? 'unknown'
      note(
        `${STORES} stores up (${server}): ` +
          cluster.stores.map((store) => `${store.id} on port ${store.port}`).join(', '),
      )
      const report = await runFailoverDemo({
        cluster,
        seconds,
        sessions,
        onEvent: (event) => note(event.text),
        onProgress: (p) =>
          bar.update(Math.min(seconds, Math.round(p.elapsedSeconds)), {
            operations: formatCount(p.operations),
            rate: formatCount(Math.round(p.operations / Math.max(p.elapsedSeconds, 0.001))),
            acked: formatCount(p.acknowledgedWrites),
            lost: p.lostWrites,
            stale: p.staleReads,
            stores: p.stores.map((store) => `${store.id} ${store.state}`).join(', '),
          }),
      })
      bar.stop()
      const ok = report.clean && report.repair.failed === 0
      const htmlPath = await writePage(out, htmlFile, report, ok)
      out.result({ ok, server, baseDir, htmlPath, ...report } satisfies DemoJson)
      printReport(out, report, ok)
      if (htmlPath !== null) out.line(`HTML report: ${htmlPath}`)
      return ok ? EXIT_OK : EXIT_PROBLEM
    } finally {
      bar.stop()
      await stopEverything()
      for (const signal of SIGNALS) process.off(signal, onSignal)
    }
  },
}

/** The longest workload: a day. */
const MAX_SECONDS = 86_400
/** The most sessions the demo creates (and keeps the ids and newest writes of). */
const MAX_SESSIONS = 1_000_000

/** Not naming the path: the values of bad options are never shown. */
const NO_SERVER_MESSAGE =
  '--server-binary does not run: give the path of a mariadbd or mysqld binary.'

/** The promise's value once it settles within `millis`; undefined if it rejects or takes longer. */
async function settleWithin<T>(
  promise: Promise<T> | undefined,
  millis: number,
): Promise<T | undefined> {
  if (promise === undefined) return undefined
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<undefined>((resolve) => {
    timer = setTimeout(() => resolve(undefined), millis)
  })
  try {
    return await Promise.race([promise.catch(() => undefined), timeout])
  } finally {
    clearTimeout(timer)
  }
}

/** Writes the report as an HTML page; the absolute path, or null (said on stderr) if it failed. */
async function writePage(
  out: Output,
  file: string,
  report: FailoverDemoReport,
  ok: boolean,
): Promise<string | null> {
  const page = demoReportHtml({
    title: 'session-shards demo',
    summary: reportRows(report),
    verdict: { ok, text: verdictText(report, ok) },
    samples: report.samples,
    timeline: report.timeline,
  })
  try {
    await writeFile(file, page)
    return file
  } catch (error) {
    out.error(`session-shards demo: could not write the HTML report: ${(error as Error).message}`)
    return null
  }
}

function verdictText(report: FailoverDemoReport, ok: boolean): string {
  return ok
    ? 'OK: no acknowledged write was lost, no read was stale, no destroyed session came back.'
    : 'PROBLEM: see the counts above' +
        (report.violations.length > 0 ? ` (first: ${JSON.stringify(report.violations[0])})` : '') +
        '.'
}

function printReport(out: Output, report: FailoverDemoReport, ok: boolean): void {
  const killedAt = report.timeline.find((event) => event.text.startsWith('SIGKILL'))
  const rows = reportRows(report)
  const width = Math.max(...rows.map(([label]) => label.length))
  out.line()
  out.line('session-shards demo report')
  for (const [label, value] of rows) out.line(`  ${label.padEnd(width)}  ${value}`)
  out.line()
  if (killedAt === undefined) out.line('The store was never killed: the run was too short.')
  out.line(verdictText(report, ok))
}

/** The report's figures, label and value, for the text report and the page. */
function reportRows(report: FailoverDemoReport): [string, string][] {
  return [
    [
      'stores',
      `${report.stores.join(', ')} (copies = ${report.copies}, ${report.appServers} app servers)`,
    ],
    [
      'operations',
      `${formatCount(report.operations)} in ${report.seconds} s (${formatCount(report.opsPerSecond)}/s)`,
    ],
    ['failed requests', formatCount(report.failedRequests)],
    ['acknowledged writes', formatCount(report.acknowledgedWrites)],
    ['lost writes', formatCount(report.lostWrites)],
    ['stale reads', formatCount(report.staleReads)],
    ['resurrections', formatCount(report.resurrections)],
    [
      'store killed',
      `${report.killedStore} (SIGKILL), back in service after ` +
        (report.outageMillis === null ? 'n/a' : `${(report.outageMillis / 1000).toFixed(1)} s`),
    ],
    [
      'time to detect',
      report.detectionMillis === null
        ? 'no store-down event'
        : `${formatCount(report.detectionMillis)} ms (kill to first store-down event)`,
    ],
    ['failovers', `${report.failovers} store-down event(s), ${report.storeUpEvents} store-up`],
    ['degraded writes', formatCount(report.degradedWrites)],
    ['read repairs', formatCount(report.readRepairs)],
    [
      'repair',
      `${formatCount(report.repair.scanned)} rows scanned, ${formatCount(report.repair.copied)} copied, ` +
        `${formatCount(report.repair.removed)} removed, ${formatCount(report.repair.failed)} failed`,
    ],
    ['sessions verified', `${formatCount(report.sessionsVerified)} (read back after the repair)`],
  ]
}
