/** Waits that end early when an AbortSignal aborts (lock waits, the round before a sweep). */

/** Resolves once `work` settles (either way), or as soon as `signal` aborts, whichever is first. */
export function settledUnlessAborted(
  work: Promise<unknown>,
  signal: AbortSignal | null | undefined,
): Promise<void> {
  const settled = work.then(
    () => undefined,
    () => undefined,
  )
  if (signal === null || signal === undefined) return settled
  if (signal.aborted) return Promise.resolve()
  return new Promise((resolve) => {
    const done = (): void => {
      signal.removeEventListener('abort', done)
      resolve()
    }
    signal.addEventListener('abort', done, { once: true })
    void settled.then(done)
  })
}

/** Waits `millis`, or less if `signal` aborts meanwhile; the timer goes with the wait. */
export function pauseUnlessAborted(millis: number, signal: AbortSignal | null): Promise<void> {
  let timer: NodeJS.Timeout | undefined
  const paused = new Promise<void>((resolve) => (timer = setTimeout(resolve, millis)))
  return settledUnlessAborted(paused, signal).finally(() => clearTimeout(timer))
}
