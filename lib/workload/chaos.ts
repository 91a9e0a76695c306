import { createSessionManager, type SessionManager } from '../session-manager.js'
import type { LocalCluster } from '../local-cluster/index.js'
import type { LocalStore } from '../local-cluster/local-store.js'
import { ConsistencyModel, type ConsistencyCounts, type Violation } from './consistency-model.js'

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
  const model = new ConsistencyModel()
  const busy = new Set<string>()
  const ids: string[] = []
  const progress: ChaosProgress = {
    elapsedSeconds: 0,
    operations: 0,
    failedRequests: 0,
    faults: 0,
    ...model.counts,
  }
  const faultLog: string[] = []
  const detectionMillis: number[] = []
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
  let sequence = 0
  const pick = <T>(items: readonly T[]): T => items[Math.floor(Math.random() * items.length)] as T

  try {
    await managers[0]!.applySchema()
    const initial = options.sessions ?? 1000
    for (let i = 0; i < initial; i += 100) {
      const created = await Promise.all(
        Array.from({ length: Math.min(100, initial - i) }, async () => {
          const data = { n: ++sequence }
          const id = await managers[0]!.createSession(data)
          model.written(id, data)
          return id
        }),
      )
      ids.push(...created)
    }

    const started = Date.now()
    const deadline = started + options.seconds * 1000
    const operation = async (manager: SessionManager): Promise<void> => {
      const roll = Math.random()
      if (roll < 0.05) {
        const data = { n: ++sequence }
        const id = await manager.createSession(data).catch(() => null)
        if (id === null) progress.failedRequests++
        else {
          model.written(id, data)
          ids.push(id)
        }
        return
      }
      let id = pick(ids)
      for (let tries = 0; busy.has(id) && tries < 10; tries++) id = pick(ids)
      if (busy.has(id)) return
      busy.add(id)
      try {
        if (roll < 0.6) {
          model.read(id, await manager.readSession(id))
        } else if (roll < 0.97) {
          const data = { n: ++sequence }
          try {
            await manager.writeSession(id, data)
            model.written(id, data)
          } catch (error) {
            model.writeFailed(id, data)
            throw error
          }
        } else {
          try {
            await manager.destroySession(id)
            model.destroyed(id)
          } catch (error) {
            model.destroyFailed(id)
            throw error
          }
        }
      } finally {
        busy.delete(id)
      }
    }
    const worker = async (): Promise<void> => {
      while (Date.now() < deadline) {
        try {
          await operation(pick(managers))
        } catch {
          progress.failedRequests++
        }
        progress.operations++
      }
    }
    const faults = async (): Promise<void> => {
      let kind = 0
      let index = 0
      await sleep(Math.min(1000, options.seconds * 100))
      while (Date.now() < deadline - 2500) {
        const store = cluster.stores[index++ % cluster.stores.length] as LocalStore
        const hang = kind++ % 2 === 1
        faultLog.push(`${hang ? 'hang' : 'kill'} ${store.id}`)
        options.onEvent?.(`${hang ? 'SIGSTOP' : 'SIGKILL'} ${store.id}`)
        progress.faults++
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
    const ticker = setInterval(() => {
      Object.assign(progress, model.counts, { elapsedSeconds: (Date.now() - started) / 1000 })
      options.onProgress?.({ ...progress })
    }, 1000)
    try {
      await Promise.all([faults(), ...Array.from({ length: options.inFlight ?? 64 }, worker)])
    } finally {
      clearInterval(ticker)
    }
    const elapsed = (Date.now() - started) / 1000

    for (const store of cluster.stores) if (!store.running) await store.start()
    for (const store of cluster.stores) await waitUntilServing(managers, store.id, 20_000)
    const verifier = createSessionManager({ stores: cluster.storeConfigs(), ...settings })
    managers.push(verifier)
    const all = model.ids()
    for (let i = 0; i < all.length; i += 200) {
      await Promise.all(
        all.slice(i, i + 200).map(async (id) => model.read(id, await verifier.readSession(id))),
      )
    }
    Object.assign(progress, model.counts, { elapsedSeconds: elapsed })
    const counts = model.counts
    return {
      ...progress,
      opsPerSecond: Math.round(progress.operations / elapsed),
      faultLog,
      sessionsVerified: all.length,
      detectionMillis,
      clean: counts.lostWrites + counts.staleReads + counts.resurrections === 0,
      violations: model.violations,
    }
  } finally {
    await Promise.all(managers.map((manager) => manager.close()))
  }
}

/** Waits until every manager has the store up and caught up. */
async function waitUntilServing(
  managers: readonly SessionManager[],
  storeId: string,
  timeoutMillis: number,
): Promise<void> {
  const deadline = Date.now() + timeoutMillis
  const serving = (manager: SessionManager): boolean =>
    manager.stats().stores.some((s) => s.id === storeId && s.state === 'up' && !s.behind)
  while (!managers.every(serving)) {
    if (Date.now() > deadline) throw new Error(`store ${storeId} did not come back into service`)
    await sleep(50)
  }
}

function sleep(millis: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, millis))
}
