/**
 * The chaos run: a workload through two managers while stores crash, hang and restart; with
 * `gray`, also faults that one app server sees and the other does not, and CPU starvation.
 */
import { randomBytes } from 'node:crypto'
import type { LocalCluster } from '../../local-cluster/index.js'
import { FaultProxy } from '../../local-cluster/index.js'
import { resolveOptions } from '../../options.js'
import type { SessionManagerOptions } from '../../options.js'
import { createSessionManager } from '../../session-manager.js'
import type { SessionManager } from '../../session-manager.js'
import {
  CRASH_ROTATION,
  FAULT_KINDS,
  faultPlacement,
  GRAY_ROTATION,
  injectFault,
  isProxyFault,
  type ActiveFault,
  type FaultKind,
} from './chaos-faults.js'
import { describeError, diagnose } from './chaos-diagnosis.js'
import type { Finding } from './consistency-model.js'
import { appServerName, SessionWorkload } from './session-workload.js'
import { retryFor, sleep, waitForService } from './waits.js'

export type { FaultKind } from './chaos-faults.js'
import type {
  ChaosFinding,
  ChaosProgress,
  ChaosReport,
  FaultKindFigures,
  FaultRecord,
} from './chaos-report.js'

/** Options of {@link runChaos}. */
export interface ChaosOptions {
  /** A running cluster; the run crashes, hangs and restarts its stores one at a time. */
  cluster: LocalCluster
  /** How long the workload runs. */
  seconds: number
  copies: number
  /**
   * The managers' `readQuorum`. 1 is the single-store read, with its documented staleness
   * window for an app server that did not see a failure.
   * @default the library's default (`copies`)
   */
  readQuorum?: number
  /**
   * The managers' `readLeaseMillis`; 0 makes every read compare `readQuorum` copies, and no
   * write wait for an announcement.
   * @default the library's default
   */
  readLeaseMillis?: number
  /**
   * Gray failures: app server 1 reaches every store through its own fault proxy, app server 2
   * directly, and the faults rotate through blackholes, latency, resets, stalls and hung data
   * statements between app server 1 and one store, SIGKILL and SIGSTOP of a store, and CPU
   * starvation. Without it: SIGKILL and SIGSTOP only.
   */
  gray?: boolean
  /**
   * The faults to rotate through, in this order (one at a time, each on the next store); none
   * for a healthy run to compare latencies with.
   * @default every kind with `gray`, else `['kill', 'stop']`
   */
  faultKinds?: readonly FaultKind[]
  /**
   * How long each fault lasts before it is healed.
   * @default 1500; with `gray`, a 15th of the run, between 1.5 and 6 s
   */
  faultMillis?: number
  /**
   * Faults the run injects at least: it goes on past `seconds` until it has (a loaded machine
   * recovers slowly from each), up to `maxSeconds`.
   * @default 0
   */
  minFaults?: number
  /** @default four times `seconds` */
  maxSeconds?: number
  /**
   * Every manager stores its rows compressed (deflate, every row) and encrypted (AES-256-GCM
   * under a key made for the run), so that handoff, repair and moves carry sealed rows.
   * @default false
   */
  atRest?: boolean
  /** @default 64 */
  inFlight?: number
  /** App servers: managers sharing the stores. @default 2 (at least 2 with `gray`) */
  managers?: number
  /** Sessions created before the run. @default 1000 */
  sessions?: number
  /** Called about once a second. */
  onProgress?: (progress: ChaosProgress) => void
  /** Called for each fault injected and each store back in service. */
  onEvent?: (line: string) => void
}

const MANAGER_OPTIONS = {
  connectTimeoutMillis: 1000,
  queryTimeoutMillis: 1000,
  healthCheckIntervalMillis: 250,
}

/**
 * Besides reads, writes, creates and destroys: compare-and-set updates, and sessions with
 * lifetimes of seconds (and their timeouts set), whose expired values must not come back.
 */
const WORKLOAD_OPTIONS = { updates: true, shortLivedShare: 0.1 }

/** How long the schedule waits for every store to be back in service after a heal, at least. */
const SERVICE_WAIT_MILLIS = 30_000
/** How long setup steps and the wait before verification are retried on a starved machine. */
const SETUP_MILLIS = 120_000
/** How many findings of each kind the report lists. */
const KEPT = 50

/** Compression of every row and encryption under a key that lives as long as the run. */
function sealedRows(): Pick<SessionManagerOptions, 'compression' | 'encryption'> {
  return {
    compression: { algorithm: 'deflate', thresholdBytes: 0 },
    encryption: { keys: [{ id: 'chaos', key: randomBytes(32) }] },
  }
}

/** A fault of the run, with its times (ms since the epoch). */
interface FaultWindow {
  record: FaultRecord
  /** What the fault is on, for the log: a store id, two, or every store. */
  target: string
  /** The stores whose `store-down` counts as the fault detected. */
  detectedBy: readonly string[]
  startedAt: number
  healedAt: number | undefined
  servingAt: number | undefined
  failedAtStart: number
}

/**
 * Drives a concurrent workload (creates, reads, writes, updates, timeouts set, destroys; some
 * sessions short-lived) through several managers while injecting one fault at a time — by
 * default crashing (SIGKILL) and hanging (SIGSTOP) stores, with `gray` also gray failures seen
 * by one app server only and CPU starvation — and checks every read against what was
 * acknowledged. After each fault it waits until every
 * manager has every store back in service. Then reads every session back through a fresh
 * manager.
 */
export async function runChaos(options: ChaosOptions): Promise<ChaosReport> {
  const { cluster, copies } = options
  const gray = options.gray === true
  const kinds = options.faultKinds ?? (gray ? GRAY_ROTATION : CRASH_ROTATION)
  if (!gray && kinds.some(isProxyFault)) {
    throw new TypeError(`proxy faults (${FAULT_KINDS.filter(isProxyFault).join(', ')}) need gray`)
  }
  const faultMillis =
    options.faultMillis ?? (gray ? clamp((options.seconds * 1000) / 15, 1500, 6000) : 1500)
  const settings = {
    ...MANAGER_OPTIONS,
    copies,
    ...(options.readQuorum === undefined ? {} : { readQuorum: options.readQuorum }),
    ...(options.readLeaseMillis === undefined ? {} : { readLeaseMillis: options.readLeaseMillis }),
    ...(options.atRest === true ? sealedRows() : {}),
  }
  const { readQuorum, readLeaseMillis } = resolveOptions({
    stores: cluster.storeConfigs(),
    ...settings,
  })
  const event = (line: string): void => options.onEvent?.(line)

  const proxies = new Map<string, FaultProxy>()
  const managers: SessionManager[] = []
  let active: ActiveFault | undefined
  try {
    if (gray) {
      for (const store of cluster.stores) {
        proxies.set(store.id, await FaultProxy.start({ host: store.host, port: store.port }))
      }
    }
    // App server 1 reaches every store through its proxy: a proxy fault is seen by it alone.
    const proxied = cluster
      .storeConfigs()
      .map((config) => ({ ...config, port: proxies.get(config.id)?.port ?? config.port }))
    const count = Math.max(options.managers ?? 2, gray ? 2 : 1)
    for (let index = 0; index < count; index++) {
      const stores = gray && index === 0 ? proxied : cluster.storeConfigs()
      managers.push(createSessionManager({ stores, ...settings }))
    }
    const workload = new SessionWorkload(managers, WORKLOAD_OPTIONS)
    const runStart = { at: 0 }

    const windows: FaultWindow[] = []
    const detectionMillis: number[] = []
    const notBackInService: string[] = []
    const faultErrors: string[] = []
    const current = (): FaultWindow | undefined => windows[windows.length - 1]
    for (const [index, manager] of managers.entries()) {
      const name = appServerName(index)
      manager.on('store-up', ({ storeId }) => event(`${name}: ${storeId} up`))
      manager.on('store-down', ({ storeId }) => {
        event(`${name}: ${storeId} down`)
        const window = current()
        if (window === undefined || window.servingAt !== undefined) return
        if (!window.detectedBy.includes(storeId)) return
        if (window.record.detectedMillis[name] !== undefined) return
        const millis = Date.now() - window.startedAt
        if (Object.keys(window.record.detectedMillis).length === 0) detectionMillis.push(millis)
        window.record.detectedMillis[name] = millis
      })
    }

    const findings: ChaosFinding[] = []
    const transientNulls: ChaosFinding[] = []
    /** Diagnoses of violations under way: they read the stores directly. */
    const diagnoses: Promise<void>[] = []
    /** Every finding, by the fault window its read fell in (undefined: before the first). */
    const findingsByWindow = new Map<FaultWindow | 'verification' | undefined, Finding[]>()
    let verificationStart = Infinity
    workload.model.onFinding = (finding) => {
      const window =
        finding.at >= verificationStart ? 'verification' : windowAt(windows, finding.at)
      const list = findingsByWindow.get(window) ?? []
      list.push(finding)
      findingsByWindow.set(window, list)
      const placed = place(finding, window, runStart.at)
      if (finding.verdict === 'transient') {
        if (transientNulls.length < KEPT) transientNulls.push(placed)
      } else if (findings.length < KEPT) {
        findings.push(placed)
        const reader =
          finding.reader === 'verification'
            ? managers[managers.length - 1]
            : managers.find((_, index) => isReader(finding.reader, index))
        if (reader !== undefined) diagnoses.push(diagnose(placed, reader, cluster))
      }
    }

    await retryFor(
      SETUP_MILLIS,
      () => (managers[0] as SessionManager).applySchema(),
      (error) => event(`applying the schema failed, retrying: ${describeError(error)}`),
    )
    await workload.populate(options.sessions ?? 1000, undefined, SETUP_MILLIS)

    const storeIds = cluster.stores.map((store) => store.id)
    const faults = async (
      initialDeadline: number,
      extendTo: (deadline: number) => void,
    ): Promise<void> => {
      runStart.at = Date.now()
      let deadline = initialDeadline
      const latest = runStart.at + (options.maxSeconds ?? options.seconds * 4) * 1000
      await sleep(Math.min(1000, options.seconds * 100))
      for (let n = 0; kinds.length > 0; n++) {
        // A fault starts only if it ends (and has a second to show) before the workers stop;
        // the run goes on for one more while it has fewer than minFaults.
        if (Date.now() + faultMillis + 1000 >= deadline) {
          if (n >= (options.minFaults ?? 0) || Date.now() + faultMillis + 2000 > latest) break
          deadline = Date.now() + faultMillis + 2000
          extendTo(deadline)
        }
        const kind = kinds[n % kinds.length] as FaultKind
        // Each round of the rotation starts one store further, so that every kind meets
        // every store.
        const round = Math.floor(n / kinds.length)
        const position = (n % kinds.length) + round
        const store = cluster.stores[position % cluster.stores.length]!
        const next = cluster.stores[(position + 1) % cluster.stores.length]!
        const window: FaultWindow = {
          record: {
            kind,
            label: kind,
            seenBy: isProxyFault(kind) ? appServerName(0) : 'every app server',
            atSeconds: seconds(Date.now() - runStart.at),
            detectedMillis: {},
            recoveryMillis: undefined,
            failedRequests: 0,
            transientNullReads: 0,
            violations: 0,
          },
          ...faultPlacement(kind, store.id, next.id, storeIds),
          startedAt: Date.now(),
          healedAt: undefined,
          servingAt: undefined,
          failedAtStart: workload.progress.failedRequests,
        }
        windows.push(window)
        try {
          active = await injectFault(kind, {
            store,
            proxy: proxies.get(store.id),
            next: { store: next, proxy: proxies.get(next.id) },
            stores: cluster.stores,
            // Busy loops outlive a schedule stuck past its fault by at most this much.
            maxMillis: faultMillis + 60_000,
          })
          window.record.label = active.label
          event(active.label)
          await sleep(faultMillis)
          const ending = active
          active = undefined
          await ending.end()
        } catch (error) {
          faultErrors.push(`${window.record.label}: ${describeError(error)}`)
          event(`fault ${window.record.label} failed: ${describeError(error)}`)
          return
        } finally {
          window.healedAt = Date.now()
        }
        // On a starved machine recovery can take long: wait, at least until the run ends,
        // before giving up on it; report it then rather than end the run.
        const out = await waitForService(
          managers,
          storeIds,
          Math.max(SERVICE_WAIT_MILLIS, deadline - Date.now()),
        )
        if (out.length > 0) {
          const waited = seconds(Date.now() - window.healedAt)
          notBackInService.push(
            `${out.join(', ')} after ${window.record.label} (waited ${waited} s)`,
          )
          event(`${out.join(', ')} not back in service after ${waited} s: no more faults`)
          return
        }
        window.servingAt = Date.now()
        window.record.recoveryMillis = window.servingAt - window.healedAt
        event(`every store in service again, ${window.record.recoveryMillis} ms after the heal`)
        await sleep(500)
      }
    }
    const { elapsedSeconds } = await workload.run({
      seconds: options.seconds,
      inFlight: options.inFlight ?? 64,
      alongside: faults,
      onProgress: (progress) => options.onProgress?.({ ...progress, faults: windows.length }),
    })
    const done = workload.progress
    windows.forEach((window, index) => {
      const next = windows[index + 1]
      window.record.failedRequests =
        (next?.failedAtStart ?? done.failedRequests) - window.failedAtStart
    })

    // Every store back before the verification: a store left down would make its sessions'
    // other copies the only ones read, and one left behind (missed writes not replayed) is the
    // staleness the run is there to catch, not to cause.
    for (const store of cluster.stores) {
      if (store.paused) store.resume()
      if (store.running) continue
      // Verify anyway: the other copies of its sessions are still there to read.
      await retryFor(SETUP_MILLIS, () => store.start()).catch((error: unknown) =>
        faultErrors.push(`${store.id} could not be restarted: ${describeError(error)}`),
      )
    }
    const out = await waitForService(managers, storeIds, SETUP_MILLIS)
    if (out.length > 0) {
      notBackInService.push(
        `${out.join(', ')} before the verification (waited ${SETUP_MILLIS / 1000} s)`,
      )
    }
    const verifier = createSessionManager({ stores: cluster.storeConfigs(), ...settings })
    managers.push(verifier)
    verificationStart = Date.now()
    const sessionsVerified = await workload.verify(verifier, { timeoutMillis: SETUP_MILLIS })
    const progress: ChaosProgress = { ...workload.progress, elapsedSeconds, faults: windows.length }
    await Promise.all(diagnoses)

    const faultsByKind: Record<string, FaultKindFigures> = {}
    const figures = (kind: string): FaultKindFigures =>
      (faultsByKind[kind] ??= {
        injected: 0,
        detected: 0,
        failedRequests: 0,
        transientNullReads: 0,
        lostWrites: 0,
        staleReads: 0,
        resurrections: 0,
      })
    for (const window of windows) {
      const kind = figures(window.record.kind)
      kind.injected++
      if (Object.keys(window.record.detectedMillis).length > 0) kind.detected++
      kind.failedRequests += window.record.failedRequests
    }
    for (const [window, list] of findingsByWindow) {
      const record = typeof window === 'object' ? window.record : undefined
      const kind = figures(record?.kind ?? (window === 'verification' ? window : 'none'))
      for (const finding of list) {
        if (finding.verdict === 'transient') {
          kind.transientNullReads++
          if (record !== undefined) record.transientNullReads++
          continue
        }
        if (record !== undefined) record.violations++
        if (finding.verdict === 'lost') kind.lostWrites++
        else if (finding.verdict === 'stale') kind.staleReads++
        else kind.resurrections++
      }
    }

    const unverifiedSessions = workload.unverifiedSessions
    return {
      ...progress,
      readQuorum,
      readQuorumOption: options.readQuorum,
      readLeaseMillis,
      gray,
      atRest: options.atRest === true,
      faultMillis,
      opsPerSecond: Math.round(progress.operations / elapsedSeconds),
      faultLog: windows.map((window) => `${window.record.kind} ${window.target}`),
      faultRecords: windows.map((window) => window.record),
      faultsByKind,
      sessionsVerified,
      unverifiedSessions,
      notBackInService,
      faultErrors,
      detectionMillis,
      appServers: workload.appServers(),
      clean:
        progress.lostWrites + progress.staleReads + progress.resurrections === 0 &&
        unverifiedSessions === 0,
      violations: findings,
      transientNulls,
    }
  } finally {
    // Whatever failed: no fault left in place, no store left down, hung or starved for the
    // next run on this cluster.
    await active?.end().catch(() => {})
    for (const proxy of proxies.values()) proxy.heal()
    for (const store of cluster.stores) {
      if (store.paused) store.resume()
      if (!store.running) await store.start().catch(() => {})
    }
    await Promise.all(managers.map((manager) => manager.close()))
    await Promise.all([...proxies.values()].map((proxy) => proxy.close()))
  }
}

/** Whether `reader` (a finding's) names the manager at `index`, re-reads included. */
function isReader(reader: string, index: number): boolean {
  const name = appServerName(index)
  return reader === name || reader.startsWith(`${name} `)
}

/** The fault window a read at `at` fell in: the last fault started before it. */
function windowAt(windows: readonly FaultWindow[], at: number): FaultWindow | undefined {
  for (let i = windows.length - 1; i >= 0; i--) {
    const window = windows[i] as FaultWindow
    if (window.startedAt <= at) return window
  }
  return undefined
}

function place(
  finding: Finding,
  window: FaultWindow | 'verification' | undefined,
  runStart: number,
): ChaosFinding {
  const placed = { ...finding, atSeconds: seconds(finding.at - runStart) }
  if (window === undefined) return { ...placed, fault: 'none', phase: 'no fault yet' }
  if (window === 'verification') return { ...placed, fault: 'none', phase: 'verification' }
  const phase: ChaosFinding['phase'] =
    window.healedAt === undefined || finding.at < window.healedAt
      ? 'during the fault'
      : window.servingAt === undefined || finding.at < window.servingAt
        ? 'recovering'
        : 'after recovery'
  return { ...placed, fault: `${window.record.label} at ${window.record.atSeconds} s`, phase }
}

function seconds(millis: number): number {
  return Math.round(millis / 100) / 10
}

function clamp(value: number, min: number, max: number): number {
  return Math.min(max, Math.max(min, Math.round(value)))
}
