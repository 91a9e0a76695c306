// Types for tap-failures.mjs (a plain module: `npm test` runs it with node, before any build).

export declare const MAX_FAILURES: number
export declare const MAX_DIAGNOSTIC_LINES: number

/** One failed assertion: its subtests, outermost first, then its own name. */
export interface Failure {
  path: string[]
  diagnostic: string[]
  closesSubtest: boolean
}

export declare class FailureCollector {
  add(line: string): void
  failures(): Failure[]
  get dropped(): number
}

export declare function failureSummary(collector: FailureCollector): string
