/** The faults of the chaos run: what each does, who sees it, and how it ends. */
import { spawn, type ChildProcess } from 'node:child_process'
import { readdirSync } from 'node:fs'
import os from 'node:os'
import type { Fault, FaultProxy, LocalStore } from '../../local-cluster/index.js'
import { retryFor } from './waits.js'

/**
 * A fault of the chaos run. Through app server 1's fault proxy to one store, seen by that app
 * server only: `blackhole`, `latency` (beyond the query timeout), `slow` (within it: answers
 * come, late), `reset`, `stall`, `hang-data`; and to two stores at once, `slow-and-blackhole`
 * (one slow, the next in the store list blackholed). Seen by every app server: `kill`
 * (SIGKILL, then a restart), `stop` (SIGSTOP, then SIGCONT), `starve` (CPU starvation).
 */
export type FaultKind =
  | 'blackhole'
  | 'latency'
  | 'slow'
  | 'reset'
  | 'stall'
  | 'hang-data'
  | 'slow-and-blackhole'
  | 'kill'
  | 'stop'
  | 'starve'

/**
 * The gray run's rotation: the proxy faults first, so that a short run sees all of them (the
 * crash-and-hang run covers SIGKILL and SIGSTOP); CPU starvation last, as it slows the
 * recovery from everything else.
 */
export const GRAY_ROTATION: readonly FaultKind[] = [
  'blackhole',
  'latency',
  'slow',
  'reset',
  'stall',
  'hang-data',
  'kill',
  'stop',
  'starve',
]

/**
 * Every fault kind: the gray rotation's, and `slow-and-blackhole`, which only runs when named
 * (`--faults`). It takes one app server to the edge of the freshness bound (fewer than `k` of a
 * session's first `2k - 1` stores failed, docs/guarantees.md): the slow store is within it only
 * while its answers come before the query timeout, which a loaded machine cannot promise.
 */
export const FAULT_KINDS: readonly FaultKind[] = [...GRAY_ROTATION, 'slow-and-blackhole']

/** The crash-and-hang run's rotation. */
export const CRASH_ROTATION: readonly FaultKind[] = ['kill', 'stop']

/**
 * A store slow for one app server but answering: past the longest hedge delay (100 ms), so
 * requests hedge around it, and far within the query timeout (1 s), so that its answers still
 * come, late, and count (queued behind its batches, under load, too).
 */
const SLOW: Fault = { kind: 'latency', toStoreMillis: 60, toClientMillis: 60 }

/** What a proxy fault sets on the proxy. */
const PROXY_FAULTS: Partial<Record<FaultKind, Fault>> = {
  blackhole: { kind: 'blackhole' },
  // Longer than queryTimeoutMillis both ways, and different per direction: a statement is late
  // on arrival and its answer later still.
  latency: { kind: 'latency', toStoreMillis: 3000, toClientMillis: 1500 },
  slow: SLOW,
  reset: { kind: 'reset' },
  // Long enough for timeouts, short enough that the store answers between stalls (a flapping
  // store, not a dead one).
  stall: { kind: 'stall', stallMillis: 2500, periodMillis: 4000 },
  'hang-data': { kind: 'hang-data' },
}

/**
 * Where a fault of `kind` aimed at `store` goes: `target` names it for the log, and a
 * `store-down` of one of `detectedBy` counts as the fault detected (a pair's slow store is
 * meant to stay in service; a CPU starvation may be taken for any store's fault).
 */
export function faultPlacement(
  kind: FaultKind,
  store: string,
  next: string,
  every: readonly string[],
): { target: string; detectedBy: readonly string[] } {
  if (kind === 'starve') return { target: 'every store', detectedBy: every }
  if (kind === 'slow-and-blackhole') return { target: `${store}+${next}`, detectedBy: [next] }
  return { target: store, detectedBy: [store] }
}

/** Whether `kind` is applied through app server 1's fault proxies. */
export function isProxyFault(kind: FaultKind): boolean {
  return PROXY_FAULTS[kind] !== undefined || kind === 'slow-and-blackhole'
}

/** Busy loops of a CPU starvation: one more than the 2 cores the run is sized for. */
const BUSY_LOOPS = 3
/** The stores' nice value during a CPU starvation (0 is the default; 19 the lowest priority). */
const STARVED_NICE = 10
/**
 * A busy loop that ends on its own once its time is up or its parent is gone (re-parented), so
 * that a chaos run killed mid-starvation leaves no process burning a core.
 */
const BUSY_LOOP = `
const parent = process.ppid
const until = Date.now() + Number(process.argv[1])
while (Date.now() < until && process.ppid === parent) for (let i = 0; i < 1e6; i++);
`
/** How long a killed store's restart is retried (a starved machine may miss one 30 s start). */
const RESTART_MILLIS = 120_000

/** A fault in place. */
export interface ActiveFault {
  /** What was done, e.g. "SIGKILL store-b" or "blackhole store-a for app server 1". */
  label: string
  /** Ends the fault: heals the proxy, restarts or continues the store, ends the starvation. */
  end(): Promise<void>
}

/** Where a fault goes. */
export interface FaultTarget {
  store: LocalStore
  /** App server 1's proxy to `store`; proxy faults need it. */
  proxy: FaultProxy | undefined
  /** The store after `store` in the store list, with its proxy (`slow-and-blackhole`). */
  next: { store: LocalStore; proxy: FaultProxy | undefined }
  /** Every store: a CPU starvation lowers the priority of all of them. */
  stores: readonly LocalStore[]
  /** The longest the fault may last: busy loops end by themselves after it. */
  maxMillis: number
}

/** Puts a fault in place; the caller must call {@link ActiveFault.end}, also on failure. */
export async function injectFault(kind: FaultKind, target: FaultTarget): Promise<ActiveFault> {
  const { store, proxy } = target
  const proxyFault = PROXY_FAULTS[kind]
  if (proxyFault !== undefined) {
    if (proxy === undefined) throw new Error(`a ${kind} fault needs a fault proxy`)
    proxy.setFault(proxyFault)
    return {
      label: `${describeProxyFault(proxyFault)} ${store.id} for app server 1`,
      end: async () => proxy.heal(),
    }
  }
  switch (kind) {
    case 'slow-and-blackhole': {
      // A write hedged around the slow store while the next one fails goes further along the
      // order than the stores a reader compares; it must then wait for the slow one.
      const nextProxy = target.next.proxy
      if (proxy === undefined || nextProxy === undefined) {
        throw new Error(`a ${kind} fault needs fault proxies`)
      }
      proxy.setFault(SLOW)
      nextProxy.setFault({ kind: 'blackhole' })
      const slow = `${describeProxyFault(SLOW)} ${store.id}`
      return {
        label: `${slow} and blackhole to ${target.next.store.id} for app server 1`,
        end: async () => {
          proxy.heal()
          nextProxy.heal()
        },
      }
    }
    case 'kill':
      await store.kill()
      return {
        label: `SIGKILL ${store.id}`,
        end: () => retryFor(RESTART_MILLIS, () => store.start()),
      }
    case 'stop':
      await store.pause()
      return { label: `SIGSTOP ${store.id}`, end: async () => store.resume() }
    case 'starve': {
      const starvation = await starveCpu(target.stores, target.maxMillis)
      const reniced = starvation.reniced ? `, stores at nice ${STARVED_NICE}` : ''
      return { label: `CPU starvation (${BUSY_LOOPS} busy loops${reniced})`, end: starvation.end }
    }
    default:
      throw new Error(`unknown fault kind ${kind}`)
  }
}

function describeProxyFault(fault: Fault): string {
  switch (fault.kind) {
    case 'latency':
      return `latency +${fault.toStoreMillis} ms to, +${fault.toClientMillis} ms from`
    case 'stall':
      return `stall ${fault.stallMillis} ms of every ${fault.periodMillis} ms on`
    default:
      return `${fault.kind} to`
  }
}

/**
 * Starves the machine of CPU: {@link BUSY_LOOPS} busy child processes, and the stores' server
 * processes at a lower priority, so that stores answer late for every app server at once and
 * the app servers' own timers fire late. `end` kills the loops and restores the priorities.
 */
export async function starveCpu(
  stores: readonly LocalStore[],
  maxMillis: number,
): Promise<{ reniced: boolean; end(): Promise<void> }> {
  const loops: ChildProcess[] = []
  const priorities = new Map<number, number>()
  const end = async (): Promise<void> => {
    for (const [pid, priority] of priorities) setThreadsPriority(pid, priority)
    priorities.clear()
    await Promise.all(loops.map(stopChild))
  }
  try {
    for (let i = 0; i < BUSY_LOOPS; i++) {
      const loop = spawn(process.execPath, ['-e', BUSY_LOOP, String(maxMillis)], {
        stdio: 'ignore',
      })
      // A loop that cannot be spawned only makes the starvation milder.
      loop.on('error', () => {})
      loops.push(loop)
    }
    // Lower a store's priority only if it can be raised again: without privileges (root or
    // CAP_SYS_NICE) it cannot, and the store would stay starved for the rest of the run.
    if (canRaisePriority(loops[0]?.pid)) {
      for (const store of stores) {
        const pid = store.pid
        if (pid === undefined) continue
        priorities.set(pid, os.getPriority(pid))
        setThreadsPriority(pid, STARVED_NICE)
      }
    }
  } catch (error) {
    await end()
    throw error
  }
  return { reniced: priorities.size > 0, end }
}

/**
 * Sets the nice value of every thread of `pid`. On Linux a nice value belongs to a thread, not
 * to a process: `setpriority(pid)` alone would slow the server's main thread and leave its
 * connection threads, which run the statements, as fast as before. Threads started since are
 * set too when the priority is restored. Processes gone meanwhile are skipped.
 */
function setThreadsPriority(pid: number, priority: number): void {
  let threads: number[]
  try {
    threads = readdirSync(`/proc/${pid}/task`).map(Number)
  } catch {
    threads = [pid]
  }
  for (const thread of threads) {
    try {
      os.setPriority(thread, priority)
    } catch {
      // The thread (or the whole server) ended meanwhile.
    }
  }
}

/** Whether this process may lower a nice value again (tried on a throwaway child). */
function canRaisePriority(pid: number | undefined): boolean {
  if (pid === undefined) return false
  try {
    const before = os.getPriority(pid)
    os.setPriority(pid, before + 1)
    os.setPriority(pid, before)
    return true
  } catch {
    return false
  }
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  child.kill('SIGKILL')
  await exited
}
