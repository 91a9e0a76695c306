/**
 * What a workload knows it was told: per session, the values a read may return given every
 * operation acknowledged or failed so far. Operations on one session never overlap (the
 * workload holds a per-session lock), so the model is exact: after an acknowledged write only
 * that value is possible; after a failed write, the old or the new one.
 *
 * A read that answers null while an acknowledged value is expected is a stale read (it served
 * an older state, "no session"). Whether the value was lost as well is left open: if no read
 * finds it before the session is written again, destroyed, or the final verification, the
 * write was lost too. A read that fails because no store could answer is no answer at all; it
 * is a transient null read if a later read finds the session, and a lost write if none does.
 */

/**
 * How a read compared with what was acknowledged. `missing`: "no session" where an
 * acknowledged value was expected; later reads decide whether it was transient or a lost write.
 */
export type ReadCheck = 'ok' | 'missing' | 'stale' | 'resurrected'

const NONE = 'null'

/**
 * When a value stops being readable, in ms since the epoch: not before `from`, and by `until`
 * (a write's expiry is set at some moment of the call, so it is known to the call's length).
 */
export interface Lifetime {
  from: number
  until: number
}

/** A value written without a short lifetime: it outlives the run. */
export const FOREVER: Lifetime = { from: Infinity, until: Infinity }

/**
 * Slack for comparing a read's time with an expiry: both come from this process's clock, but a
 * read judges expiry at one moment of its call, which the model only knows to the millisecond.
 */
const EXPIRY_SLACK_MILLIS = 5

/** The first read that answered "no session" for a session expected to exist, until resolved. */
interface Missing {
  at: number
  reader: string
  seen: string
  possible: string[]
  /** A read answered null (a stale read, already reported), not only failed. */
  answered?: boolean
}

interface SessionModel {
  /** JSON of each value a read may return ('null' for none), with when it expires. */
  possible: Map<string, Lifetime>
  /** An acknowledged destroy happened: the session must never come back. */
  destroyed: boolean
  /** A read answered "no session" and no read has found the session since. */
  missing: Missing | undefined
}

/** A read that did not return what was acknowledged, once its verdict is known. */
export interface Finding {
  id: string
  /**
   * `transient`: "no session", then found by a later read. `lost`: an acknowledged value never
   * read back. `stale`: an older value than acknowledged. `resurrected`: a destroyed session.
   */
  verdict: 'transient' | 'lost' | 'stale' | 'resurrected'
  /** What the read answered: the value's JSON, 'null', or the error code of a failed read. */
  seen: string
  /** The values the read could correctly have returned. */
  possible: string[]
  /**
   * When the read happened, ms since the epoch (for `transient` and `lost`: the first "no
   * session").
   */
  at: number
  /** Who read (for a dropped write: who wrote), e.g. 'app server 1' or 'verification'. */
  reader: string
  /** `transient`: how long after the first "no session" a read found the session. */
  foundAfterMillis?: number
  /** `transient`: who found it. */
  foundBy?: string
  /** `lost`: what settled it (verification, or a write or destroy before any read found it). */
  settledBy?: string
}

/** A finding that breaks a guarantee. */
export type Violation = Finding & { verdict: 'lost' | 'stale' | 'resurrected' }

/** Counts reported by the workload. */
export interface ConsistencyCounts {
  acknowledgedWrites: number
  /**
   * Acknowledged values never read back: missing at the end, or "no session" never followed by
   * a read that found them.
   */
  lostWrites: number
  /** Reads that answered "no session" for a session that a later read found. */
  transientNullReads: number
  staleReads: number
  resurrections: number
  /** Reads that answered "no session" because every value they could return had expired. */
  expiredReads: number
}

/** How many findings of each kind are kept, for diagnosis. */
const KEPT = 20

export class ConsistencyModel {
  readonly #sessions = new Map<string, SessionModel>()
  /** The first violations found, for diagnosis. */
  readonly violations: Violation[] = []
  /** The first transient null reads found, for diagnosis. */
  readonly transientNulls: Finding[] = []
  readonly counts: ConsistencyCounts = {
    acknowledgedWrites: 0,
    lostWrites: 0,
    transientNullReads: 0,
    staleReads: 0,
    resurrections: 0,
    expiredReads: 0,
  }
  /** Called with every finding as its verdict becomes known (all of them, not only the first). */
  onFinding: ((finding: Finding) => void) | undefined

  /** Session ids the model tracks. */
  ids(): string[] {
    return [...this.#sessions.keys()]
  }

  /** A read of this session answered "no session" and no read has found it since. */
  isMissing(id: string): boolean {
    return this.#sessions.get(id)?.missing !== undefined
  }

  /** A write (or create) of `data`, expiring within `lifetime`, was acknowledged. */
  written(id: string, data: unknown, lifetime: Lifetime = FOREVER): void {
    const session = this.#session(id)
    this.counts.acknowledgedWrites++
    // No read can tell any more whether the value a read missed was still there.
    this.#lose(id, session, 'an acknowledged write before any read found it')
    // A write to a destroyed session is dropped by design (the tombstone wins).
    if (!session.destroyed) session.possible = new Map([[JSON.stringify(data), lifetime]])
  }

  /**
   * A write resolved `dropped: true`: it met a tombstone, so the session is gone for good. Only
   * a destroy leaves one: after a failed destroy (which may have reached a store) that is
   * right; without any destroy, the acknowledged value was lost.
   */
  writeDropped(id: string, writer = 'writer'): void {
    const session = this.#session(id)
    if (!session.destroyed && !session.possible.has(NONE)) {
      const possible = [...session.possible.keys()]
      session.missing ??= { at: Date.now(), reader: writer, seen: 'dropped', possible }
      this.#lose(id, session, 'a write dropped for a tombstone that no destroy left')
    }
    session.possible = new Map([[NONE, FOREVER]])
    session.destroyed = true
  }

  /** A write failed: it may or may not have reached a store. */
  writeFailed(id: string, data: unknown, lifetime: Lifetime = FOREVER): void {
    const session = this.#session(id)
    if (!session.destroyed) addPossible(session, JSON.stringify(data), lifetime)
  }

  /**
   * setSessionTimeout resolved true at `startedAt`: it found the session live and gave it
   * `lifetime`. The values still live then keep their data with the new lifetime.
   */
  timeoutSet(id: string, lifetime: Lifetime, startedAt: number, reader = 'writer'): void {
    const session = this.#session(id)
    const live = this.#liveAt(session, startedAt)
    if (live.length === 0) {
      // It found a live session where none could be: judged like a read of one.
      this.read(id, { setSessionTimeout: 'found a live session' }, reader, startedAt)
      return
    }
    this.#found(id, session, reader)
    this.counts.acknowledgedWrites++
    session.possible = new Map(live.map((value) => [value, lifetime]))
  }

  /** setSessionTimeout failed: the values still live may have `lifetime` now, or their own. */
  timeoutSetFailed(id: string, lifetime: Lifetime, startedAt: number): void {
    const session = this.#session(id)
    for (const value of this.#liveAt(session, startedAt)) addPossible(session, value, lifetime)
  }

  destroyed(id: string): void {
    const session = this.#session(id)
    this.#lose(id, session, 'an acknowledged destroy before any read found it')
    session.possible = new Map([[NONE, FOREVER]])
    session.destroyed = true
  }

  destroyFailed(id: string): void {
    addPossible(this.#session(id), NONE, FOREVER)
  }

  /**
   * Checks a read's result and counts any violation. `reader` names who read, for the
   * findings; `startedAt` is when the read was called (ms since the epoch).
   */
  read(id: string, data: unknown, reader = 'reader', startedAt = Date.now()): ReadCheck {
    const session = this.#session(id)
    const seen = data === null ? NONE : JSON.stringify(data)
    // A failed write stays possible until the next acknowledged one: a statement that timed
    // out may still be applied when a hung store resumes.
    if (
      seen === NONE ? this.#mayBeGone(id, session, reader) : this.#mayBe(session, seen, startedAt)
    ) {
      if (seen !== NONE) this.#found(id, session, reader)
      return 'ok'
    }
    // A value read after its expiry is an older state of the session, like a stale one.
    const verdict = session.destroyed ? 'resurrected' : 'stale'
    // The final verification's null only settles whether the write was lost (see settle()).
    if (seen !== NONE || reader !== 'verification') {
      if (verdict === 'stale') this.counts.staleReads++
      else this.counts.resurrections++
      const possible = [...session.possible.keys()]
      this.#report({ id, verdict, seen, possible, at: Date.now(), reader })
    }
    // Whether the value is still there is for later reads to tell.
    if (seen === NONE) return this.#missing(session, reader, seen, true)
    return verdict
  }

  /**
   * A read failed without an answer, e.g. no store could tell whether the session exists. To
   * the app that is "no session" too: judged like a null read when a value was expected.
   */
  readFailed(id: string, code: string, reader = 'reader'): ReadCheck {
    const session = this.#session(id)
    if (this.#mayBeGone(id, session, reader)) return 'ok'
    return this.#missing(session, reader, code)
  }

  /**
   * Settles every "no session" that no read has contradicted yet as a lost write. Call it
   * after the final verification has read every session.
   */
  settle(): void {
    for (const [id, session] of this.#sessions) this.#lose(id, session, 'verification')
  }

  /** A value read at `startedAt` may be `seen`: one of the possible values, not yet expired. */
  #mayBe(session: SessionModel, seen: string, startedAt: number): boolean {
    const lifetime = session.possible.get(seen)
    return lifetime !== undefined && startedAt <= lifetime.until + EXPIRY_SLACK_MILLIS
  }

  /**
   * "No session" is a possible answer now: no session is possible, or one of the possible
   * values may have expired. A read that had no other answer left closes what it can: an
   * episode of "no session" answers whose value expired before any read found it.
   */
  #mayBeGone(id: string, session: SessionModel, reader: string): boolean {
    if (session.possible.has(NONE)) return true
    const now = Date.now()
    const expired = [...session.possible.values()].some(
      (lifetime) => lifetime.from <= now + EXPIRY_SLACK_MILLIS,
    )
    if (!expired) return false
    this.counts.expiredReads++
    // Whether the value was there until it expired, no read can tell any more.
    this.#found(id, session, `nobody: it expired first (${reader})`)
    return true
  }

  /** The possible values other than "no session" that had not expired at `at`. */
  #liveAt(session: SessionModel, at: number): string[] {
    return [...session.possible]
      .filter(([value, lifetime]) => value !== NONE && at <= lifetime.until + EXPIRY_SLACK_MILLIS)
      .map(([value]) => value)
  }

  #missing(session: SessionModel, reader: string, seen: string, answered = false): ReadCheck {
    // Several "no session" answers before any read finds it are one episode.
    const possible = [...session.possible.keys()]
    session.missing ??= { at: Date.now(), reader, seen, possible }
    session.missing.answered ||= answered
    return 'missing'
  }

  #found(id: string, session: SessionModel, reader: string): void {
    const missing = session.missing
    if (missing === undefined) return
    session.missing = undefined
    // An episode a null answer was part of is already counted as a stale read.
    if (missing.answered === true) return
    this.counts.transientNullReads++
    const finding: Finding = {
      id,
      verdict: 'transient',
      seen: missing.seen,
      possible: missing.possible,
      at: missing.at,
      reader: missing.reader,
      foundAfterMillis: Date.now() - missing.at,
      foundBy: reader,
    }
    if (this.transientNulls.length < KEPT) this.transientNulls.push(finding)
    this.onFinding?.(finding)
  }

  #lose(id: string, session: SessionModel, settledBy: string): void {
    const missing = session.missing
    if (missing === undefined) return
    session.missing = undefined
    this.counts.lostWrites++
    this.#report({ id, verdict: 'lost', ...missing, settledBy })
  }

  #report(violation: Violation): void {
    if (this.violations.length < KEPT) this.violations.push(violation)
    this.onFinding?.(violation)
  }

  #session(id: string): SessionModel {
    let session = this.#sessions.get(id)
    if (session === undefined) {
      session = { possible: new Map([[NONE, FOREVER]]), destroyed: false, missing: undefined }
      this.#sessions.set(id, session)
    }
    return session
  }
}

/** Adds `value` to what a read may return; a value already there keeps the wider lifetime. */
function addPossible(session: SessionModel, value: string, lifetime: Lifetime): void {
  const known = session.possible.get(value)
  session.possible.set(
    value,
    known === undefined
      ? lifetime
      : { from: Math.min(known.from, lifetime.from), until: Math.max(known.until, lifetime.until) },
  )
}
