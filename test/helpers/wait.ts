/** Polls `condition` every 25 ms until it holds; rejects after `timeoutMillis` with `what`. */
export async function waitFor(
  what: string,
  condition: () => boolean | Promise<boolean>,
  timeoutMillis = 10_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMillis
  while (!(await condition())) {
    if (Date.now() > deadline)
      throw new Error(`timed out after ${timeoutMillis} ms waiting for ${what}`)
    await sleep(25)
  }
}

export function sleep(millis: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, millis))
}

/** A gate a request handler waits at: `entered` resolves when a request reaches it. */
export function gate(): { wait: () => Promise<void>; entered: Promise<void>; release: () => void } {
  let enter!: () => void
  let release!: () => void
  const entered = new Promise<void>((resolve) => (enter = resolve))
  const released = new Promise<void>((resolve) => (release = resolve))
  return {
    wait: () => {
      enter()
      return released
    },
    entered,
    release,
  }
}
