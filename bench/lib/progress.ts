/** A one-line status that rewrites itself; see {@link createProgress}. */
export interface Progress {
  /** Replaces the status line. */
  update(text: string): void
  /** Erases the status line, so that what follows starts on a clean line. */
  clear(): void
}

/**
 * A status line on stdout, shown only to a person watching: when stdout is a terminal and the
 * `CI` variable is unset. Elsewhere (a pipe, a file, CI logs) it prints nothing, so redirected
 * output holds only the results.
 */
export function createProgress(stream: NodeJS.WriteStream = process.stdout): Progress {
  const enabled = stream.isTTY === true && !process.env.CI
  if (!enabled) return { update() {}, clear() {} }
  let shown = false
  return {
    update(text) {
      const width = Math.max(20, (stream.columns ?? 80) - 1)
      stream.write(`\r\x1b[2K${text.length > width ? `${text.slice(0, width - 1)}…` : text}`)
      shown = true
    },
    clear() {
      if (shown) stream.write('\r\x1b[2K')
      shown = false
    },
  }
}
