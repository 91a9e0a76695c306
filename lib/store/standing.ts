/** A store's standing as one manager sees it: the only place it changes, through named transitions. */

/**
 * - `up`: requests use it.
 * - `down`: requests skip it at once; the health check probes it.
 */
export type StoreState = 'up' | 'down'

/** What a standing reports when it changes. */
export interface StandingListener {
  /** The store went down (requests failed `failThreshold` times in a row, or a probe failed). */
  down(error: Error): void
  /** A store that was down is up and caught up: it serves reads again. */
  serving(): void
}

/** Consecutive answered probes (both liveness and the data path) a down store needs to be up again. */
export const PROBATION_PROBES = 2
/** The most a store that keeps flapping needs (its probation doubles each time it relapses). */
const MAX_PROBATION_PROBES = 32
/** A store that goes down within this many answered probes of coming back has relapsed. */
const RELAPSE_PROBES = 16

/**
 * Up or down, and, independently, behind: the store missed writes (a hinted write went
 * elsewhere, or it was down or restarted) and must not answer reads alone until they are
 * replayed. Requests and health probes report what they saw; hinted handoff says when the
 * store missed writes and when it has caught up. Nothing else changes the standing.
 *
 * Going down takes `failThreshold` failures to reach the store in a row (requests or probes;
 * a refused connection, which no slowness explains, at once); failures that the manager's own
 * slowness explains (its event loop lagging, every store timing out at once) do not count.
 * Coming back takes {@link PROBATION_PROBES} answered probes in a row, twice as many each time
 * the store relapses (goes down again soon after coming back), so that a store that flaps does
 * not go in and out of service at every stall; a store that stays up long enough starts over.
 */
export class StoreStanding {
  readonly #failThreshold: number
  readonly #listener: StandingListener
  #state: StoreState = 'up'
  #behind = false
  /** Down since it last served reads: its return is announced once it has caught up. */
  #wasDown = false
  #consecutiveFailures = 0
  /** Answered probes in a row while down. */
  #answeredProbes = 0
  /** Answered probes a down store needs now (doubles on each relapse). */
  #probation = PROBATION_PROBES
  /** Answered probes since the store last came back (a relapse is a fall soon after). */
  #probesSinceBack = Number.POSITIVE_INFINITY

  constructor(failThreshold: number, listener: StandingListener) {
    this.#failThreshold = failThreshold
    this.#listener = listener
  }

  get state(): StoreState {
    return this.#state
  }

  /** The store missed writes not yet replayed to it. */
  get behind(): boolean {
    return this.#behind
  }

  /** Requests may be sent (writes go to a store that is behind; they are newer anyway). */
  get up(): boolean {
    return this.#state === 'up'
  }

  /** Reads may trust it alone: up and caught up. */
  get readable(): boolean {
    return this.#state === 'up' && !this.#behind
  }

  /** A request got an answer (an SQL error is an answer too: the server is there). */
  requestAnswered(): void {
    this.#consecutiveFailures = 0
  }

  /**
   * A request could not reach the store. `counts` is false when the manager's own slowness
   * explains it; `definitive` when nothing but the store's absence does (a refused connection).
   */
  requestUnreachable(error: Error, { counts = true, definitive = false } = {}): void {
    if (!counts) return
    this.#consecutiveFailures++
    if (this.#state !== 'up') return
    if (definitive || this.#consecutiveFailures >= this.#failThreshold) this.#goDown(error)
  }

  /**
   * A health probe failed (see {@link requestUnreachable}). Whatever it counts for, the store
   * may have missed writes meanwhile (other managers' too): it reads as behind until it has
   * been caught up, so that a read that trusts one store never trusts this one unchecked.
   */
  probeFailed(error: Error, { counts = true, definitive = false } = {}): void {
    this.#answeredProbes = 0
    this.#behind = true
    this.requestUnreachable(error, { counts, definitive })
  }

  /**
   * A health probe answered. A store that was down is up again after {@link PROBATION_PROBES}
   * in a row, but behind: it may have missed writes while it was down. A store that
   * `restarted` unseen may have lost writes it had acknowledged in memory only: behind too.
   * Returns whether the store must be caught up.
   */
  probeAnswered(restarted: boolean): boolean {
    this.#consecutiveFailures = 0
    if (this.#state === 'down') {
      if (++this.#answeredProbes < this.#probation) return false
      this.#state = 'up'
      this.#behind = true
      this.#answeredProbes = 0
      this.#probesSinceBack = 0
      return true
    }
    if (++this.#probesSinceBack > RELAPSE_PROBES) this.#probation = PROBATION_PROBES
    if (restarted) {
      this.#behind = true
    }
    return this.#behind
  }

  /** The store missed a write (hinted elsewhere), or other managers left hints for it. */
  missedWrites(): void {
    this.#behind = true
  }

  /** Every write it missed has been replayed: it serves reads again. */
  caughtUp(): void {
    this.#behind = false
    if (this.#wasDown && this.#state === 'up') {
      this.#wasDown = false
      this.#listener.serving()
    }
  }

  #goDown(error: Error): void {
    if (this.#probesSinceBack <= RELAPSE_PROBES) {
      this.#probation = Math.min(MAX_PROBATION_PROBES, this.#probation * 2)
    }
    this.#state = 'down'
    this.#wasDown = true
    this.#answeredProbes = 0
    this.#listener.down(error)
  }
}
