/** Kills the local stores when the process exits or is interrupted. */
import { debug } from '../debug.js'

/**
 * Server processes that must not outlive this process. The 'exit' handler can only run
 * synchronous code, so the guard keeps plain pids and SIGKILLs them.
 */
const guarded = new Set<number>()
const SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const
let installed = false

function killGuarded(): void {
  for (const pid of guarded) {
    try {
      process.kill(pid, 'SIGKILL')
    } catch {
      // Already gone.
    }
  }
  guarded.clear()
}

/**
 * How many signal listeners belong to signal-exit (used by tap, nyc, execa...). Such a listener
 * re-raises the signal once it is the only one left, but defers to any other listener, so
 * counting it as "someone else handles this" would leave both waiting and the process running.
 */
function signalExitListeners(): number {
  const v4 = (globalThis as Record<symbol, { count?: unknown } | undefined>)[
    Symbol.for('signal-exit emitter')
  ]
  const v3 = (process as { __signal_exit_emitter__?: { count?: unknown } }).__signal_exit_emitter__
  return (
    (typeof v4?.count === 'number' ? v4.count : 0) + (typeof v3?.count === 'number' ? v3.count : 0)
  )
}

function onSignal(signal: NodeJS.Signals): void {
  debug('local-cluster: %s received, killing %d server(s)', signal, guarded.size)
  killGuarded()
  // When nobody else handles the signal it must keep its default meaning: re-raise it.
  if (process.listenerCount(signal) - 1 - signalExitListeners() <= 0) {
    uninstall()
    process.kill(process.pid, signal)
  }
}

function install(): void {
  if (installed) return
  installed = true
  process.on('exit', killGuarded)
  for (const signal of SIGNALS) process.on(signal, onSignal)
}

function uninstall(): void {
  if (!installed) return
  installed = false
  process.off('exit', killGuarded)
  for (const signal of SIGNALS) process.off(signal, onSignal)
}

/** SIGKILL `pid` when this process exits or is interrupted. */
export function guardPid(pid: number): void {
  guarded.add(pid)
  install()
}

/** `pid` has exited (or is being stopped on purpose); the guard forgets it. */
export function releasePid(pid: number): void {
  guarded.delete(pid)
  if (guarded.size === 0) uninstall()
}
