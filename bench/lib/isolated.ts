import { fork } from 'node:child_process'
import { fileURLToPath } from 'node:url'

type Reply<O> = { ok: true; value: O } | { ok: false; error: string }

/**
 * Runs the function that `module` serves with {@link serveIsolated} in a new Node process and
 * resolves what it returns: for measuring memory in a process that holds nothing else (what
 * the parent allocated before never shows in the child's RSS). Input and output travel over
 * the IPC channel, never in arguments or the environment, so they may hold passwords. The
 * child gets this process's `execArgv` (e.g. `--import tsx`) and its stdout and stderr.
 */
export function runIsolated<I, O>(module: URL, input: I): Promise<O> {
  const child = fork(fileURLToPath(module), [], {
    execArgv: process.execArgv,
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    serialization: 'advanced',
  })
  return new Promise<O>((resolve, reject) => {
    let reply: Reply<O> | undefined
    child.once('message', (message) => (reply = message as Reply<O>))
    child.once('error', reject)
    child.once('exit', (code, signal) => {
      if (reply?.ok === true) resolve(reply.value)
      else if (reply !== undefined) reject(new Error(`The child process failed: ${reply.error}`))
      else
        reject(
          new Error(
            `The child process ${fileURLToPath(module)} exited with ${signal ?? code} before answering.`,
          ),
        )
    })
    child.send(input as object)
  })
}

/** In a module started by {@link runIsolated}: answers its one input with `handler`'s result. */
export function serveIsolated<I, O>(handler: (input: I) => Promise<O>): void {
  const send = process.send?.bind(process)
  if (send === undefined) {
    throw new Error(
      'This module runs as a child of runIsolated() (bench/lib/isolated.ts), not on its own.',
    )
  }
  process.once('message', (input) => {
    void handler(input as I)
      .then(
        (value): Reply<O> => ({ ok: true, value }),
        (error: unknown): Reply<O> => ({
          ok: false,
          error: error instanceof Error ? (error.stack ?? error.message) : String(error),
        }),
      )
      .then((reply) => send(reply, undefined, {}, () => process.disconnect()))
  })
}
