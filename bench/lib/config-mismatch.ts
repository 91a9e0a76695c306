import type { SessionManager } from '../../lib/index.js'

/**
 * Watches a suite's managers for `config-mismatch`. Managers with other copy counts or read
 * settings on one table conflict by design, and a manager that sees a conflicting peer reads
 * by quorum from then on: every read would send a statement more than the case means to
 * measure. Each configuration needs a table of its own; `check()` throws, before any figure
 * is written, if some manager saw a mismatch anyway.
 */
export function watchConfigMismatches(managers: Iterable<SessionManager>): { check(): void } {
  let seen = 0
  for (const manager of managers) manager.on('config-mismatch', () => seen++)
  return {
    check() {
      if (seen > 0) {
        throw new Error(
          `${seen} config-mismatch event(s): two of this suite's managers shared a table with ` +
            'different settings, so reads ran by quorum and the figures are not what they claim.',
        )
      }
    },
  }
}
