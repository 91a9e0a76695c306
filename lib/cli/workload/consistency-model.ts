/** What a workload was told, per session, and whether a read agrees with it. */
/**
 * What a workload knows it was told: per session, the values a read may return given every
 * operation acknowledged or failed so far. Operations on one session never overlap (the
 * workload holds a per-session lock), so the model is exact: after an acknowledged write only
 * that value is possible; after a failed write, the old or the new one.
 */

/** How a read compared with what was acknowledged. */
export type ReadCheck = 'ok' | 'lost' | 'stale' | 'resurrected'

const NONE = 'null'

interface SessionModel {
  /** JSON of each value a read may return ('null' for none). */
  possible: Set<string>
  /** An acknowledged destroy happened: the session must never come back. */
  destroyed: boolean
}

/** One read that disagreed with what was acknowledged. */
export interface Violation {
  id: string
  verdict: Exclude<ReadCheck, 'ok'>
  seen: string
  possible: string[]
  at: number
}

/** Counts reported by the workload. */
export interface ConsistencyCounts {
  acknowledgedWrites: number
  lostWrites: number
  staleReads: number
  resurrections: number
}

export class ConsistencyModel {
  readonly #sessions = new Map<string, SessionModel>()
  /** The first violations found, for diagnosis. */
  readonly violations: Violation[] = []
  readonly counts: ConsistencyCounts = {
    acknowledgedWrites: 0,
    lostWrites: 0,
    staleReads: 0,
    resurrections: 0,
  }

  /** Session ids the model tracks. */
  ids(): string[] {
    return [...this.#sessions.keys()]
  }

  /** A write (or create) of `data` was acknowledged. */
  written(id: string, data: unknown): void {
    const session = this.#session(id)
    this.counts.acknowledgedWrites++
    // A write to a destroyed session is dropped by design (the tombstone wins).
    if (!session.destroyed) session.possible = new Set([JSON.stringify(data)])
  }

  /** A write failed: it may or may not have reached a store. */
  writeFailed(id: string, data: unknown): void {
    const session = this.#session(id)
    if (!session.destroyed) session.possible.add(JSON.stringify(data))
  }

  destroyed(id: string): void {
    const session = this.#session(id)
    session.possible = new Set([NONE])
    session.destroyed = true
  }

  destroyFailed(id: string): void {
    this.#session(id).possible.add(NONE)
  }

  /** Checks a read's result and counts any violation. */
  read(id: string, data: unknown): ReadCheck {
    const session = this.#session(id)
    const seen = data === null ? NONE : JSON.stringify(data)
    // A failed write stays possible until the next acknowledged one: a statement that timed
    // out may still be applied when a hung store resumes.
    if (session.possible.has(seen)) return 'ok'
    const verdict: ReadCheck = seen === NONE ? 'lost' : session.destroyed ? 'resurrected' : 'stale'
    if (this.violations.length < 20) {
      this.violations.push({ id, verdict, seen, possible: [...session.possible], at: Date.now() })
    }
    if (verdict === 'lost') this.counts.lostWrites++
    else if (verdict === 'stale') this.counts.staleReads++
    else this.counts.resurrections++
    return verdict
  }

  #session(id: string): SessionModel {
    let session = this.#sessions.get(id)
    if (session === undefined) {
      session = { possible: new Set([NONE]), destroyed: false }
      this.#sessions.set(id, session)
    }
    return session
  }
}
