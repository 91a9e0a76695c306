/** The chaos run: a workload through two managers while stores crash, hang and restart. */
import { createSessionManager } from '../../session-manager.js'
import type { LocalCluster } from '../../local-cluster/index.js'
import type { LocalStore } from '../../local-cluster/local-store.js'
import type { ConsistencyCounts, Violation } from './consistency-model.js'
import { SessionWorkload, sleep, waitUntilServing } from './session-workload.js'

/** Options of {@link runChaos}. */
export interface ChaosOptions {
  /** A running cluster; the run crashes, hangs and restarts its stores one at a time. */
  cluster: LocalCluster
  /** How long the workload runs. */
  seconds: number
  copies: number
  /** Use `readQuorum = copies`, the strict setting. */
  strict?: boolean
  /** @default 64 */
  inFlight?: number
  /** App servers: managers sharing the stores. @default 2 */
  managers?: number
  /** Sessions created before the run. @default 1000 */
  sessions?: number
  /** Called about once a second. */
  onProgress?: (progress: ChaosProgress) => void
  /** Called for each fault injected and each store back in service. */
  onEvent?: (line: string) => void
}

/** Snapshot passed to {@link ChaosOptions.onProgress}. */
export interface ChaosProgress extends ConsistencyCounts {
  elapsedSeconds: number
  operations: number
  failedRequests: number
  faults: number
}

/** What {@link runChaos} found. */
export interface ChaosReport extends ChaosProgress {
  opsPerSecond: number
  /** Faults injected, e.g. "kill store-b", "hang store-c". */
  faultLog: string[]
  /** Sessions read back after the run through a manager started afterwards. */
  sessionsVerified: number
  /** Time from a store's crash or hang to the first manager's store-down event, in ms. */
  detectionMillis: number[]
  /** True when no acknowledged write was lost, no read was stale and nothing was resurrected. */
  clean: boolean
  /** The first reads that disagreed with what was acknowledged, for diagnosis. */
  violations: Violation[]
}

const MANAGER_OPTIONS = {
  connectTimeoutMillis: 1000,
  queryTimeoutMillis: 1000,
  healthCheckIntervalMillis: 250,
}

/**
 * Drives a concurrent workload (creates, reads, writes, destroys) through several managers
 * while crashing (SIGKILL), hanging (SIGSTOP) and restarting one store at a time, and checks
 * every read against what was acknowledged. Then reads every session back through a fresh
 * manager.
 */
export async function runChaos(options: ChaosOptions): Promise<ChaosReport> {
  const { cluster, copies } = options
  const settings = { ...MANAGER_OPTIONS, copies, readQuorum: options.strict ? copies : 1 }
  const managers = Array.from({ length: options.managers ?? 2 }, () =>
    createSessionManager({ stores: cluster.storeConfigs(), ...settings }),
  )
  const workload = new SessionWorkload(managers)
  const faultLog: string[] = []
  const detectionMillis: number[] = []
  let faultCount = 0
  let faultStarted = 0
  for (const [index, manager] of managers.entries()) {
    manager.on('store-up', ({ storeId }) => options.onEvent?.(`manager ${index}: ${storeId} up`))
    manager.on('store-down', ({ storeId }) => {
      options.onEvent?.(`manager ${index}: ${storeId} down`)
      if (faultStarted > 0) {
        detectionMillis.push(Date.now() - faultStarted)
        faultStarted = 0
      }
    })
  }

  try {
    await managers[0]!.applySchema()
    await workload.populate(options.sessions ?? 1000)

    const faults = async (deadline: number): Promise<void> => {
      let kind = 0
      let index = 0
      await sleep(Math.min(1000, options.seconds * 100))
      while (Date.now() < deadline - 2500) {
        const store = cluster.stores[index++ % cluster.stores.length] as LocalStore
        const hang = kind++ % 2 === 1
        faultLog.push(`${hang ? 'hang' : 'kill'} ${store.id}`)
        options.onEvent?.(`${hang ? 'SIGSTOP' : 'SIGKILL'} ${store.id}`)
        faultCount++
        faultStarted = Date.now()
        if (hang) store.pause()
        else await store.kill()
        await sleep(1500)
        if (hang) store.resume()
        else await store.start()
        await waitUntilServing(managers, store.id, 20_000)
        options.onEvent?.(`${store.id} back in service`)
        await sleep(500)
      }
    }
    const { elapsedSeconds } = await workload.run({
      seconds: options.seconds,
      inFlight: options.inFlight ?? 64,
      alongside: faults,
      onProgress: (progress) => options.onProgress?.({ ...progress, faults: faultCount }),
    })

    for (const store of cluster.stores) if (!store.running) await store.start()
    for (const store of cluster.stores) await waitUntilServing(managers, store.id, 20_000)
    const verifier = createSessionManager({ stores: cluster.storeConfigs(), ...settings })
    managers.push(verifier)
    const sessionsVerified = await workload.verify(verifier)
    const progress: ChaosProgress = { ...workload.progress, elapsedSeconds, faults: faultCount }
    return {
      ...progress,
      opsPerSecond: Math.round(progress.operations / elapsedSeconds),
      faultLog,
      sessionsVerified,
      detectionMillis,
      clean: progress.lostWrites + progress.staleReads + progress.resurrections === 0,
      violations: workload.model.violations,
    }
  } finally {
    await Promise.all(managers.map((manager) => manager.close()))
  }
}
