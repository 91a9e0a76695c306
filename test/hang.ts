import t from 'tap'
import { startTestCluster } from './helpers/cluster.js'
import { startManager, storeState } from './helpers/manager.js'
import { sleep, waitFor } from './helpers/wait.js'

// Guarantee 4 (docs/guarantees.md): a hung store (SIGSTOP) costs a request at most one query
// timeout; its circuit opens; after SIGCONT the health check puts it back in service.
const cluster = await startTestCluster(t, { stores: 3 })
const crashTest = cluster.canCrash ? t.test.bind(t) : t.skip.bind(t)

crashTest(
  'SIGSTOP under a concurrent workload: requests fail over within the timeout',
  async (t) => {
    const queryTimeoutMillis = 1000
    const manager = await startManager(t, cluster, {
      copies: 2,
      queryTimeoutMillis,
      healthCheckIntervalMillis: 100,
    })
    const ids = await Promise.all(
      Array.from({ length: 200 }, (_, i) => manager.createSession({ i })),
    )
    const hung = cluster.stores[0]!
    const events: string[] = []
    manager.on('store-down', ({ storeId }) => events.push(`down ${storeId}`))
    manager.on('store-up', ({ storeId }) => events.push(`up ${storeId}`))

    let stop = false
    let slowest = 0
    const failures: string[] = []
    let completed = 0
    const worker = async (w: number): Promise<void> => {
      for (let n = 0; !stop; n++) {
        const id = ids[(w * 7 + n) % ids.length]!
        const started = performance.now()
        try {
          if (n % 3 === 0) await manager.writeSession(id, { w, n })
          else await manager.readSession(id)
          completed++
        } catch (error) {
          failures.push(
            `${(error as { code?: string }).code ?? 'no code'}: ${(error as Error).message}`,
          )
        }
        slowest = Math.max(slowest, performance.now() - started)
      }
    }
    const workers = Array.from({ length: 32 }, (_, w) => worker(w))
    await sleep(300)
    await hung.pause()
    t.teardown(() => (hung.paused ? hung.resume() : undefined))
    await waitFor('the circuit to open', () => storeState(manager, hung.id) === 'down')
    const beforeResume = manager.stats().stores.find((s) => s.id === hung.id)!.operations
    await sleep(500)
    const whileDown = manager.stats().stores.find((s) => s.id === hung.id)!.operations
    t.equal(
      whileDown,
      beforeResume,
      'requests skip the open circuit: no statement sent to the hung store',
    )
    hung.resume()
    await waitFor('the health check to put it back', () => storeState(manager, hung.id) === 'up')
    await sleep(300)
    stop = true
    await Promise.all(workers)
    const afterResume = manager.stats().stores.find((s) => s.id === hung.id)!.operations
    t.ok(afterResume > whileDown, 'the store gets traffic again')
    t.same(failures, [], `no request failed (${completed} completed)`)
    // One timeout for the hung store, plus a round trip to the next store and scheduling slack
    // on a shared 2-core machine.
    t.ok(
      slowest < queryTimeoutMillis * 2,
      `slowest request ${slowest.toFixed(0)} ms, under 2 × the ${queryTimeoutMillis} ms timeout`,
    )
    t.same(events, [`down ${hung.id}`, `up ${hung.id}`])
  },
)
