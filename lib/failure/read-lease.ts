/** Single-store reads that stay fresh across app servers: stale announcements and the lease on knowing them. */
import { randomBytes } from 'node:crypto'
import { performance } from 'node:perf_hooks'
import type { Clock } from '../clock.js'
import { debug } from '../debug.js'
import { JitteredTimer } from '../jittered-timer.js'
import type { Store } from '../store/store.js'

/**
 * An announcement outlives its manager by this much at most (its manager renews it every
 * round). A manager that closes or dies before the store caught up leaves its hints, which keep
 * that store behind for every manager from their next health round on: the announcement only
 * has to outlast that, and it stops steering reads away from the store soon after.
 */
const ANNOUNCEMENT_TTL_MILLIS = 60_000
/** Rounds per lease: a lease survives this many rounds lost or late, less one. */
const ROUNDS_PER_LEASE = 4
/** Headroom over the lease for a writer's wait, for timers and clocks that differ slightly. */
const WAIT_MARGIN_MILLIS = 5
/**
 * Leases an announcement stands after the store caught up. A store that misses writes now and
 * then (a write hedged around a latency spike misses it) keeps its announcement, so that only
 * the first of those writes waits a lease; reads meanwhile ask its fellow copy alone.
 */
const LINGER_LEASES = 10
/**
 * Leases without a read that asked for the lease before the rounds pause. An idle app server
 * then costs the stores its health probes only; its next read finds no lease, asks a quorum
 * and restarts the rounds (the lease holds again once a round heard every store).
 */
const IDLE_LEASES = 10

/** The read lease as `SessionManager.stats()` reports it. */
export interface ReadLeaseStats {
  /** Whether the lease runs (false after ten leases without reads). */
  holds: boolean
  /**
   * Whether reads may ask one store alone now: the lease holds, every app server reads with
   * these settings, and every store's hints were heard once since this manager started.
   */
  readsAlone: boolean
  /** Stores some app server announced stale (reads go around them), as last heard. */
  staleStoreIds: string[]
}

/** One store this manager announced stale, and when the announcement counts. */
interface Announcement {
  generation: number
  /** Resolves true once every manager knows (or has stopped reading alone), false if not stored. */
  known: Promise<boolean>
  /** Whether `known` resolved true: a miss of the store costs nothing more. */
  isKnown: boolean
  /** Performance time the store last caught up, if it has not missed a write since. */
  caughtUpAt: number | undefined
}

/**
 * Lets reads ask one store instead of a quorum, without the stale reads a fault seen by one
 * app server would cause (a store it cannot reach misses its writes while other app servers
 * still read that store).
 *
 * The writer's side: a write or destroy that missed one of a session's first `copies` stores
 * announces that store stale on every other store it reaches (a row in `<table>_stale`), once
 * per episode, and is acknowledged only a lease after the announcement was stored.
 *
 * The reader's side: every quarter lease this manager reads the announcements of every store.
 * A round that heard from every store renews the lease, which runs for `leaseMillis` from the
 * round's start. While the lease runs, a read may ask one store alone when nobody announced
 * it stale; otherwise it asks a quorum. The rounds pause when no read asked for the lease for
 * ten leases and no announcement of this manager stands; the next read (which holds no lease
 * by then, and asks a quorum) or announcement restarts them.
 *
 * Together: a reader either started a round after the announcement was stored, and knows, or
 * its lease ran out before the write was acknowledged. A read that began before the
 * acknowledgement may miss the write; it was concurrent with it.
 *
 * An announcement is withdrawn once this manager's hints for the store were all replayed, and
 * no write missed it for ten leases since.
 */
export class ReadLease {
  readonly #stores: readonly Store[]
  readonly #leaseMillis: number
  readonly #clock: Clock
  readonly #manager = randomBytes(8).toString('hex')
  readonly #timer: JitteredTimer
  readonly #announced = new Map<Store, Announcement>()
  #generation = 0
  /** Performance time until which {@link #staleIds} is known to be complete. */
  #validUntil = Number.NEGATIVE_INFINITY
  /** Stores some manager announced stale, as of the last rounds. */
  #staleIds = new Set<string>()
  /** Whether a read asked for the lease since the last round. */
  #wanted = false
  /** Performance time of the last round that found a read had asked, or an announcement of ours. */
  #busyAt = performance.now()

  /**
   * Whether reads may ask a store alone at all: every other app server reads with this one's
   * settings (and so announces its misses), and this manager has heard every store's hints
   * once (a store that missed writes before it started is then known to be behind).
   */
  readonly #mayTrust: () => boolean

  constructor(
    stores: readonly Store[],
    leaseMillis: number,
    clock: Clock,
    mayTrust: () => boolean = () => true,
  ) {
    this.#stores = stores
    this.#leaseMillis = leaseMillis
    this.#clock = clock
    this.#mayTrust = mayTrust
    this.#timer = new JitteredTimer(leaseMillis / ROUNDS_PER_LEASE, () => this.#round())
  }

  /** Starts the rounds; the first runs now. */
  start(): void {
    void this.#timer.runNow()
  }

  /** Stops the rounds; resolves when a round in flight has finished. */
  stop(): Promise<void> {
    this.#validUntil = Number.NEGATIVE_INFINITY
    return this.#timer.stop()
  }

  /** Whether the lease runs: this manager knows every stale announcement made a lease ago. */
  get holds(): boolean {
    return performance.now() < this.#validUntil
  }

  /** Whether reads may ask a store alone now, one that nobody announced stale. */
  get usable(): boolean {
    return this.holds && this.#mayTrust()
  }

  /** Whether a read may ask `store` alone now (see {@link aloneReadable} for the rest). */
  trusts(store: Store): boolean {
    this.#wanted = true
    // The rounds pause for want of reads (IDLE_LEASES): this read wants them again.
    this.#timer.resume()
    return this.usable && !this.#staleIds.has(store.id) && !this.#announced.has(store)
  }

  /** The lease's length (`readLeaseMillis`). */
  get millis(): number {
    return this.#leaseMillis
  }

  /** Whether this manager's announcement of `store` stands and is known: a miss costs nothing. */
  covers(store: Store): boolean {
    return this.#announced.get(store)?.isKnown === true
  }

  /** Stores some manager announced stale, as this manager last heard. */
  get staleStoreIds(): string[] {
    return [...this.#staleIds].sort()
  }

  /**
   * Announces that `targets` missed a write. Resolves once every manager knows, or has stopped
   * reading them alone (a lease after the announcement was stored, the first time; at once
   * after that): true, or false for a target whose announcement no store took.
   */
  async announce(targets: readonly Store[]): Promise<boolean> {
    const known = targets.map((target) => {
      let announcement = this.#announced.get(target)
      if (announcement === undefined) {
        const generation = ++this.#generation
        const published: Announcement = {
          generation,
          known: this.#publish(target, generation),
          isKnown: false,
          caughtUpAt: undefined,
        }
        announcement = published
        this.#announced.set(target, published)
        // A failed announcement is made again by the next write that misses the store.
        void published.known.then((ok) => {
          published.isKnown = ok
          if (!ok && this.#announced.get(target) === published) this.#announced.delete(target)
        })
      }
      // Caught up already (a replay finished between this write's hint and now): the replay's
      // caughtUp came before the announcement, and nothing else would ever withdraw it.
      announcement.caughtUpAt = target.standing.behind ? undefined : performance.now()
      return announcement.known
    })
    // Rounds keep an announcement from expiring and withdraw it once settled. Resumed only now
    // that it is recorded: resuming runs a round at once, and a round of an idle manager that
    // finds nothing of its own standing pauses them again.
    this.#timer.resume()
    return (await Promise.all(known)).every(Boolean)
  }

  /**
   * `target` caught up on every write this manager hinted for it: its announcement is withdrawn
   * ten leases later, unless a write misses it again meanwhile.
   */
  caughtUp(target: Store): void {
    const announcement = this.#announced.get(target)
    if (announcement !== undefined) announcement.caughtUpAt ??= performance.now()
  }

  /** Withdraws the announcements whose stores stayed caught up for ten leases. */
  #withdrawSettled(): void {
    const settledBefore = performance.now() - LINGER_LEASES * this.#leaseMillis
    for (const [target, announcement] of this.#announced) {
      const { caughtUpAt, generation } = announcement
      if (caughtUpAt === undefined || caughtUpAt > settledBefore) continue
      this.#announced.delete(target)
      void announcement.known.then(() =>
        Promise.allSettled(
          this.#holders(target).map((store) =>
            store.withdrawStale({ target: target.id, manager: this.#manager, generation }),
          ),
        ),
      )
    }
  }

  async #publish(target: Store, generation: number): Promise<boolean> {
    const announcement = {
      target: target.id,
      manager: this.#manager,
      generation,
      expiresAtMillis: this.#clock.now() + ANNOUNCEMENT_TTL_MILLIS,
    }
    const stored = await Promise.allSettled(
      this.#holders(target).map((store) => store.announceStale(announcement)),
    )
    if (!stored.some((result) => result.status === 'fulfilled')) {
      debug('announcing %s stale: no store took it', target.id)
      return false
    }
    const knownAt = performance.now() + this.#leaseMillis + WAIT_MARGIN_MILLIS
    while (performance.now() < knownAt) {
      await new Promise((resolve) => setTimeout(resolve, knownAt - performance.now()))
    }
    return true
  }

  /** Where announcements about `target` go: every other store that is up. */
  #holders(target: Store): Store[] {
    return this.#stores.filter((store) => store !== target && store.standing.up)
  }

  /**
   * Pauses the rounds once no read wanted the lease for {@link IDLE_LEASES} and nothing of ours
   * stands. Time, not rounds, counts: a round waits for its slowest store.
   */
  #pauseIfIdle(roundStart: number): boolean {
    if (this.#wanted || this.#announced.size > 0) this.#busyAt = roundStart
    this.#wanted = false
    if (roundStart - this.#busyAt < IDLE_LEASES * this.#leaseMillis) return false
    this.#timer.pause()
    return true
  }

  async #round(): Promise<void> {
    const started = performance.now()
    if (this.#pauseIfIdle(started)) return
    this.#withdrawSettled()
    const now = this.#clock.now()
    const [heard] = await Promise.all([
      Promise.allSettled(this.#stores.map((store) => store.staleTargets(now))),
      this.#renew(now),
    ])
    const found = heard.flatMap((result) => (result.status === 'fulfilled' ? result.value : []))
    if (heard.every((result) => result.status === 'fulfilled')) {
      this.#staleIds = new Set(found)
      this.#validUntil = started + this.#leaseMillis
    } else {
      // Not every store answered: what was heard adds up, and the lease is not renewed.
      for (const id of found) this.#staleIds.add(id)
    }
  }

  /**
   * Keeps this manager's standing announcements from expiring, on every store that is up now:
   * the stores that took one first may be out of reach since, and their rows run out.
   */
  async #renew(now: number): Promise<void> {
    await Promise.allSettled(
      [...this.#announced].flatMap(([target, { generation }]) =>
        this.#holders(target).map((store) =>
          store.announceStale({
            target: target.id,
            manager: this.#manager,
            generation,
            expiresAtMillis: now + ANNOUNCEMENT_TTL_MILLIS,
          }),
        ),
      ),
    )
  }
}
