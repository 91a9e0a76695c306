/** The demo's scenario: a workload, one store killed and brought back, then the verdict. */
import type { RepairResult } from '../../maintenance/repair-scan.js'
import { createSessionManager, type SessionManager } from '../../session-manager.js'
import type { LocalCluster } from '../../local-cluster/index.js'
import type { Violation } from './consistency-model.js'
import type { DemoSample } from './demo-html.js'
import { SessionWorkload, type WorkloadProgress } from './session-workload.js'
import { sleep, waitUntilServing } from './waits.js'

/** Options of {@link runFailoverDemo}. */
export interface FailoverDemoOptions {
  /** A running cluster the demo may crash; all its stores are used. */
  cluster: LocalCluster
  /** How long the workload runs. The store is killed at 30 % of it and restarted at 60 %. */
  seconds: number
  /** Sessions created before the workload starts. @default 5000 */
  sessions?: number
  /** Operations in flight. @default 64 */
  inFlight?: number
  /** Managers (app servers) sharing the stores. @default 2 */
  appServers?: number
  /** @default 2 */
  copies?: number
  /** Id of the store to SIGKILL. @default the cluster's second store */
  victim?: string
  /** Called for each step of the scenario, as it happens. */
  onEvent?: (event: DemoEvent) => void
  /** Called about once a second while the workload runs. */
  onProgress?: (progress: FailoverDemoProgress) => void
}

/** One line of the demo's timeline. */
export interface DemoEvent {
  /** Milliseconds since {@link runFailoverDemo} was called. */
  atMillis: number
  text: string
}

/** Where the workload stands, with each store's state as the first app server sees it. */
export interface FailoverDemoProgress extends WorkloadProgress {
  seconds: number
  stores: { id: string; state: 'up' | 'down' | 'behind' }[]
}

/** What {@link runFailoverDemo} measured. */
export interface FailoverDemoReport {
  stores: string[]
  copies: number
  appServers: number
  killedStore: string
  /** Seconds the workload ran. */
  seconds: number
  operations: number
  opsPerSecond: number
  /** Operations that rejected; a rejected write was never acknowledged. */
  failedRequests: number
  acknowledgedWrites: number
  /** Acknowledged writes a later read did not see. Must be 0. */
  lostWrites: number
  /** Reads that returned an older value than the last acknowledged one. Must be 0. */
  staleReads: number
  /** Destroyed sessions that came back. Must be 0. */
  resurrections: number
  /** `store-down` events, over all app servers. */
  failovers: number
  /** `store-up` events, over all app servers. */
  storeUpEvents: number
  /** `degraded-write` events: writes acknowledged with fewer than `copies` copies. */
  degradedWrites: number
  /** `read-repair` events. */
  readRepairs: number
  /** From the SIGKILL to the first `store-down` event for that store; null if none came. */
  detectionMillis: number | null
  /** From the SIGKILL until every app server used the store again, missed writes replayed. */
  outageMillis: number | null
  /** The repair run after the workload, with every store back. */
  repair: RepairResult
  /** Sessions read back after the repair through an app server started afterwards. */
  sessionsVerified: number
  /** No lost write, no stale read, no resurrection. */
  clean: boolean
  /** The first reads that disagreed with what was acknowledged, for diagnosis. */
  violations: Violation[]
  timeline: DemoEvent[]
  /** The workload once a second: operations and failures so far, p99, each store's state. */
  samples: DemoSample[]
}

/**
 * The product's main job in one run: several app servers read and write sessions on a local
 * cluster while one store is SIGKILLed and later restarted; then a repair, then every session
 * is read back through a new app server and checked against what was acknowledged.
 * The managers use the library's default options.
 */
export async function runFailoverDemo(options: FailoverDemoOptions): Promise<FailoverDemoReport> {
  const started = Date.now()
  const { cluster } = options
  const copies = options.copies ?? 2
  const victim = options.victim === undefined ? cluster.stores[1] : cluster.store(options.victim)
  if (victim === undefined) throw new TypeError('the cluster needs at least two stores')
  const timeline: DemoEvent[] = []
  const samples: DemoSample[] = []
  const event = (text: string): void => {
    const entry = { atMillis: Date.now() - started, text }
    timeline.push(entry)
    options.onEvent?.(entry)
  }
  const newManager = (): SessionManager =>
    createSessionManager({ stores: cluster.storeConfigs(), copies })
  const managers = Array.from({ length: options.appServers ?? 2 }, newManager)
  const counts = { failovers: 0, storeUpEvents: 0, degradedWrites: 0, readRepairs: 0 }
  let killedAt = 0
  let detectionMillis: number | null = null
  let outageMillis: number | null = null
  for (const [index, manager] of managers.entries()) {
    manager.on('store-down', ({ storeId }: { storeId: string }) => {
      counts.failovers++
      if (storeId === victim.id && killedAt > 0 && detectionMillis === null) {
        detectionMillis = Date.now() - killedAt
        event(`app server ${index + 1}: ${storeId} down, ${detectionMillis} ms after the kill`)
      }
    })
    manager.on('store-up', ({ storeId }: { storeId: string }) => {
      counts.storeUpEvents++
      event(`app server ${index + 1}: ${storeId} up (missed writes replayed)`)
    })
    manager.on('degraded-write', () => counts.degradedWrites++)
    manager.on('read-repair', () => counts.readRepairs++)
  }
  const workload = new SessionWorkload(managers)

  try {
    await managers[0]!.applySchema()
    event(`schema applied on ${cluster.stores.length} stores`)
    const sessions = options.sessions ?? 5000
    await workload.populate(sessions)
    event(`${count(sessions)} sessions created`)

    const crash = async (deadline: number): Promise<void> => {
      const workloadStart = deadline - options.seconds * 1000
      await sleep(Math.max(0, workloadStart + options.seconds * 300 - Date.now()))
      event(`SIGKILL ${victim.id}`)
      killedAt = Date.now()
      await victim.kill()
      await sleep(Math.max(1000, workloadStart + options.seconds * 600 - Date.now()))
      event(`restarting ${victim.id}`)
      await victim.start()
      await waitUntilServing(managers, victim.id, 30_000)
      outageMillis = Date.now() - killedAt
      event(`${victim.id} back in service on every app server, ${outageMillis} ms after the kill`)
    }
    event(`workload: ${options.seconds} s, ${options.inFlight ?? 64} operations in flight`)
    const { elapsedSeconds } = await workload.run({
      seconds: options.seconds,
      inFlight: options.inFlight ?? 64,
      alongside: crash,
      onProgress: (progress) => {
        const stores = managers[0]!.stats().stores.map((store) => ({
          id: store.id,
          state: store.state === 'up' && store.behind ? ('behind' as const) : store.state,
        }))
        samples.push({
          atMillis: Date.now() - started,
          operations: progress.operations,
          failedRequests: progress.failedRequests,
          p99Millis: progress.recentP99Millis,
          stores,
        })
        options.onProgress?.({ ...progress, seconds: options.seconds, stores })
      },
    })
    const done = workload.progress
    event(`workload done: ${count(done.operations)} operations`)

    const repair = await managers[0]!.repair()
    event(
      `repair: ${count(repair.scanned)} rows scanned, ${count(repair.copied)} copied, ` +
        `${count(repair.removed)} removed, ${count(repair.failed)} failed`,
    )
    const verifier = newManager()
    managers.push(verifier)
    const sessionsVerified = await workload.verify(verifier)
    event(`${count(sessionsVerified)} sessions read back through a new app server`)

    const final = workload.progress
    return {
      stores: cluster.stores.map((store) => store.id),
      copies,
      appServers: options.appServers ?? 2,
      killedStore: victim.id,
      seconds: Math.round(elapsedSeconds * 10) / 10,
      operations: done.operations,
      opsPerSecond: Math.round(done.operations / elapsedSeconds),
      failedRequests: done.failedRequests,
      acknowledgedWrites: final.acknowledgedWrites,
      lostWrites: final.lostWrites,
      staleReads: final.staleReads,
      resurrections: final.resurrections,
      ...counts,
      detectionMillis,
      outageMillis,
      repair,
      sessionsVerified,
      clean: final.lostWrites + final.staleReads + final.resurrections === 0,
      violations: workload.model.violations,
      timeline,
      samples,
    }
  } finally {
    await Promise.all(managers.map((manager) => manager.close()))
  }
}

function count(value: number): string {
  return value.toLocaleString('en-US')
}
