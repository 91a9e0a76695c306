import type { Test } from 'tap'
import type { SessionManager, SessionManagerOptions } from '../../lib/index.js'
import type { LocalStore } from '../../lib/local-cluster/index.js'
import type { TestCluster } from './cluster.js'
import { idWithOrderPrefix, startManager } from './manager.js'
import { sleep } from './wait.js'

/**
 * A logout that store `a` missed past the hint window: `a` keeps v1 of the session (first on
 * `a`, then `b`) with an hour to live and a repair marker stands for it, while v2 (1 s to live)
 * and the tombstones of the logout that followed, on the other stores, ended 1 s later. Resolves
 * with `a` still down; it is started again at the test's end if the test did not.
 */
export async function logoutMissedPastHintWindow(
  t: Test,
  cluster: TestCluster,
  [a, b]: readonly [LocalStore, LocalStore],
  options: Partial<SessionManagerOptions> = {},
): Promise<{ writer: SessionManager; id: string }> {
  const writer = await startManager(t, cluster, {
    copies: 2,
    hintWindowMillis: 1,
    healthCheckIntervalMillis: 100,
    sweepIntervalSeconds: 0,
    tombstoneTtlSeconds: 1,
    ...options,
  })
  const id = idWithOrderPrefix(writer, [a.id, b.id])
  await writer.writeSession(id, { v: 1 }, { ttlSeconds: 3600 })
  await sleep(1200) // on a's disk before it is killed
  await a.kill()
  t.teardown(() => (a.running ? undefined : a.start()))
  // The first miss: the window starts.
  await writer.writeSession(idWithOrderPrefix(writer, [a.id, b.id]), { x: 1 })
  await sleep(10)
  // Past the window, a marker instead of hints: a keeps v1 (an hour) while v2 ends in 1 s,
  // and the logout that follows misses a too.
  await writer.writeSession(id, { v: 2 }, { ttlSeconds: 1 })
  await writer.destroySession(id)
  await sleep(1300)
  return { writer, id }
}
