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

function onSignal(signal: NodeJS.Signals): void {
  debug('local-cluster: %s received, killing %d server(s)', signal, guarded.size)
  killGuarded()
  // Only when nobody else listens does the signal keep its default meaning, so re-raise it then.
  if (process.listenerCount(signal) === 1) {
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
