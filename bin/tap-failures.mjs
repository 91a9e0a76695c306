// Which assertions a TAP stream reported failed, with the subtests they sit in. `npm test`
// repeats them after the run: CI keeps only the tail of a long output, where a failure deep in
// the stream would not show.

/** At most this many failures are kept, and this many diagnostic lines of each. */
export const MAX_FAILURES = 40
export const MAX_DIAGNOSTIC_LINES = 30

const INDENT = 4

/**
 * Collects failed assertions from TAP lines, one `add(line)` at a time (tap's own output:
 * subtests are `# Subtest: name` headers, indented four spaces per level, with their result
 * line at the header's indent). `failures()` leaves out a subtest that failed only because an
 * assertion inside it did, so each failure is named once, at its deepest point.
 */
export class FailureCollector {
  #subtests = []
  #found = []
  #reading = undefined
  #dropped = 0

  add(line) {
    if (this.#reading && this.#addDiagnostic(line)) return
    const indent = line.length - line.trimStart().length
    const depth = Math.floor(indent / INDENT)
    const text = line.trim()
    const header = /^# Subtest: (.*)$/.exec(text)
    if (header) {
      this.#subtests.length = depth
      this.#subtests[depth] = header[1]
      return
    }
    const failed = /^not ok \d+(?: - (.*?))?(?: # (?:time=|TODO|SKIP).*)?$/.exec(text)
    if (!failed || /# (TODO|SKIP)\b/i.test(text)) return
    const name = failed[1] ?? '(unnamed)'
    const path = [...this.#subtests.slice(0, depth), name]
    if (this.#found.length >= MAX_FAILURES) {
      this.#dropped++
      return
    }
    const failure = { path, diagnostic: [], closesSubtest: this.#subtests[depth] === name }
    this.#found.push(failure)
    this.#reading = { failure, indent: indent + 2, started: false }
  }

  /** True when the line belonged to the YAML block after a failure. */
  #addDiagnostic(line) {
    const reading = this.#reading
    const text = line.slice(Math.min(reading.indent, line.length - line.trimStart().length))
    if (!reading.started) {
      if (text.trim() !== '---') {
        this.#reading = undefined
        return false
      }
      reading.started = true
      return true
    }
    if (text.trim() === '...') {
      this.#reading = undefined
      return true
    }
    if (reading.failure.diagnostic.length < MAX_DIAGNOSTIC_LINES) {
      reading.failure.diagnostic.push(text)
    }
    return true
  }

  /** The failures found, deepest first in each subtest, in the order the stream gave them. */
  failures() {
    const found = this.#found
    return found.filter(
      (failure) =>
        !failure.closesSubtest ||
        !found.some(
          (other) =>
            other !== failure &&
            other.path.length > failure.path.length &&
            failure.path.every((part, i) => other.path[i] === part),
        ),
    )
  }

  /** Failures past {@link MAX_FAILURES}, counted and not kept. */
  get dropped() {
    return this.#dropped
  }
}

/** The summary printed after the run: nothing when no assertion failed. */
export function failureSummary(collector) {
  const failures = collector.failures()
  if (failures.length === 0) return ''
  const lines = [`# Failed assertions (${failures.length + collector.dropped}):`]
  for (const failure of failures) {
    lines.push(`#   ${failure.path.join(' > ')}`)
    for (const diagnostic of failure.diagnostic) lines.push(`#       ${diagnostic}`)
  }
  if (collector.dropped > 0) lines.push(`#   ... and ${collector.dropped} more`)
  return lines.join('\n') + '\n'
}
