import type { Test } from 'tap'

const REPORT_AFTER_MILLIS = 30_000

/**
 * Runs `close` at the end of `t`. A close still running after 30 s says which it was and what
 * the process holds open (on stderr, which the CI log keeps), and fails the test at once: a
 * hung close would otherwise show only as the file's timeout minutes later, with every
 * assertion passed and nothing to say which resource never let go.
 */
export function closeAtEnd(t: Test, what: string, close: () => Promise<unknown>): void {
  t.teardown(async () => {
    let timer: NodeJS.Timeout | undefined
    const stuck = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        const open = process.getActiveResourcesInfo().filter((kind) => kind !== 'TTYWrap')
        const message = `${what} did not close within ${REPORT_AFTER_MILLIS / 1000} s (test "${t.name}"); open: ${open.join(', ')}`
        process.stderr.write(`${message}\n`)
        reject(new Error(message))
      }, REPORT_AFTER_MILLIS)
    })
    try {
      await Promise.race([close(), stuck])
    } finally {
      clearTimeout(timer)
    }
  })
}
