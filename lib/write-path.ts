/** The write path: writes, compare-and-set, destroys and metadata updates, acknowledged by one rule. */
import { askInOrder } from './ask-in-order.js'
import { compareAndSet } from './compare-and-set.js'
import type { AskOptions, AskResult, StoreAnswer } from './ask-in-order.js'
import { NoStoreAvailableError, VersionConflictError, VersionOverflowError } from './errors.js'
import type { StoreFailure } from './errors.js'
import type { Emit } from './events.js'
import type { HintedHandoff } from './failure/hinted-handoff.js'
import type { ResolvedOptions } from './options.js'
import { ownCopies } from './own-copies.js'
import { buryStrayCopies } from './stray-copies.js'
import { tookLate, whenLanded } from './late-answers.js'
import { handedOffStores, missedPastCopies, quorumSpan, withinSpan, writeOrder } from './routing.js'
import type { StoreListChange } from './store-list-change.js'
import type { StoredCopy, WriteFields, WriteOutcome } from './store/rows.js'
import type { Store } from './store/store.js'
import type { VersionClock } from './version-clock.js'
import { VERSION_CEILING } from './version-clock.js'
import { decideAttempt } from './write-rules.js'
import type { AcknowledgeContext, Acknowledged } from './write-acknowledgement.js'
import { acknowledgeWrite, recordMisses } from './write-acknowledgement.js'

/** What an acknowledged write did. */
export interface WriteResult {
  /** The session's version after the write. */
  version: number
  /**
   * Stores that now hold the new data (or data of a concurrent write that landed after it
   * and supersedes it), in order of preference.
   */
  storeIds: string[]
  /**
   * True when fewer than `copies` copies were written (at least `minCopies`), or when a store
   * the write missed got no durable hint or stale announcement (other app servers could not
   * learn that it missed the write): the `degraded-write` event says which. Such a write is
   * outside the freshness argument until repair copied it (docs/guarantees.md). A dropped
   * write is degraded when a copy it created could be neither buried nor hinted. A decided
   * compare-and-set that a later write overtook on some stores counts those as holding it (the
   * later write supersedes it there), unless it set the session's timeout, which that write
   * did not carry: then they missed it.
   */
  degraded: boolean
  /**
   * True when nothing was written because the session had been destroyed: a destroy wins over
   * every later write, so the session stays gone (`storeIds` is empty and `version` is not the
   * session's). The `write-after-destroy` event says the same.
   */
  dropped: boolean
}

/** One write, checked and encoded by the manager. */
export interface WriteRequest extends Omit<WriteFields, 'version' | 'createsAbsent'> {
  sessionId: string
  data: Buffer
}

/** What the write path needs from the manager. */
export interface WriteContext {
  readonly options: Pick<
    ResolvedOptions,
    'copies' | 'minCopies' | 'maxReadStores' | 'readQuorum' | 'tombstoneTtlSeconds' | 'clock'
  >
  readonly versions: VersionClock
  /** The session's order over the configured stores. */
  order(sessionId: string): readonly Store[]
  readonly storeListChange: StoreListChange
  readonly handoff: HintedHandoff
  /** The read lease: stores a write missed are announced stale before it is acknowledged. */
  readonly lease: {
    announce(targets: readonly Store[]): Promise<boolean>
    /** Whether a standing announcement already covers a miss of `store`. */
    covers(store: Store): boolean
    readonly millis: number
    /** Whether a read may ask `store` alone now: a compare-and-set's decider must be such a store. */
    trusts(store: Store): boolean
  } | null
  /** Moves a session found under the old placement to its new stores, in the background. */
  moveInBackground(sessionId: string): void
  /**
   * Removes the copies of `version` or older that `stores` hold of the session, in the
   * background (see {@link handedOffStores}); `keepers` hold the write.
   */
  handOffInBackground(
    sessionId: string,
    stores: readonly Store[],
    keepers: readonly Store[],
    version: number,
  ): void
  readonly emit: Emit
}

/**
 * A copy whose store is slower than its own recent latency allows is sent to the next store
 * too, so that a write stalled on one copy does not hold the request longer than reaching its
 * copies elsewhere (the slow store, if it missed the write, gets a hint). A compare-and-set's
 * primary is never hedged: one store decides. Only within the quorum span (routing.ts), where
 * every quorum read looks; and only when reads compare copies (`readQuorum` > 1): a read that
 * trusts a single store would meet the slow store's older copy before any manager but the
 * writer knew it missed the write.
 */
const hedgeAfter = (store: Store): number => store.hedgeAfterMillis()

/**
 * Writes go to the first `copies` reachable stores of the session's order, in parallel, a
 * store that fails replaced by the next one. A compare-and-set is decided by one store that
 * holds the newest copy (compare-and-set.ts); the others follow once it has accepted. A write
 * is acknowledged once `copies` stores hold it (`minCopies`: degraded); the first `copies`
 * stores it missed get hints.
 */
export class WritePath {
  readonly #context: WriteContext
  /** How many stores at the head of an order a slow copy may be hedged within (routing.ts). */
  readonly #span: number

  /** Whether the read lease trusts a store alone, bound once; undefined without a lease. */
  readonly #trusts: ((store: Store) => boolean) | undefined

  /** What the acknowledgement rule needs (write-acknowledgement.ts). */
  readonly #acknowledging: AcknowledgeContext

  constructor(context: WriteContext) {
    this.#context = context
    this.#span = quorumSpan(context.options.copies, context.options.readQuorum)
    this.#acknowledging = { ...context, span: this.#span }
    const { lease } = context
    this.#trusts = lease === null ? undefined : (store) => lease.trusts(store)
  }

  /**
   * Hedging for a write of a session with this `order`: within the quorum span only, so that
   * the copies land where every quorum read looks.
   */
  #hedging(order: readonly Store[]): AskOptions<Store> {
    if (this.#context.options.readQuorum === 1) return {}
    return { hedgeAfter, mayHedgeTo: (store) => withinSpan(order, store, this.#span) }
  }

  async write(request: WriteRequest): Promise<WriteResult> {
    const { sessionId, data, expectedVersion } = request
    const { options, versions, storeListChange } = this.#context
    const old = storeListChange.underWay ? await storeListChange.underOld(sessionId) : null
    if (old?.destroyed === true) {
      // Destroyed before the change of the store list, and not moved yet: the tombstone sits
      // under the old placement only. Drop the write as a tombstone would, and move it.
      this.#context.moveInBackground(sessionId)
      this.#context.emit('write-after-destroy', { sessionId })
      return { version: 0, storeIds: [], degraded: false, dropped: true }
    }
    if (old !== null && expectedVersion !== undefined && old.newestLiveVersion > expectedVersion) {
      // Not moved yet, the session moved on past the version expected (the new placement may
      // hold an old extra copy at that version, which its check would take for the session).
      throw new VersionConflictError(old.newestLiveVersion, expectedVersion)
    }
    const fullOrder = this.#context.order(sessionId)
    const order = writeOrder(fullOrder)
    const hedging = this.#hedging(fullOrder)
    // A compare-and-set that applies finds the session at expectedVersion and writes above it;
    // one that cannot match any version the library mints is left to the store to refuse.
    let version =
      expectedVersion !== undefined && expectedVersion + 1 < VERSION_CEILING
        ? versions.above(expectedVersion)
        : versions.next()
    // Above every copy the old placement holds (one an app server whose clock runs ahead
    // wrote), as any write goes above a newer version it meets: else that copy would win.
    if (old !== null && old.newestVersion >= version && old.newestVersion + 1 < VERSION_CEILING) {
      version = versions.above(old.newestVersion)
    }
    // A decided compare-and-set whose follower held another write at `version` moves on.
    let expected = expectedVersion
    let decided: WriteResult | undefined
    /** The store that decided `expected`, once a decided compare-and-set moves on. */
    let decider: Store | undefined
    for (let attempt = 1; ; attempt++) {
      // Fields spelled out rather than spread: this runs for every copy of every write.
      // `expected` only for a compare-and-set's decision: its followers are plain writes.
      const write = (store: Store, expected?: number): Promise<WriteOutcome> =>
        store.write({
          sessionId,
          data,
          fields: {
            version,
            expiresAtMillis: request.expiresAtMillis,
            explicitExpiry: request.explicitExpiry,
            ttlSeconds: request.ttlSeconds,
            owner: request.owner,
            expectedVersion: expected,
            createsAbsent: storeListChange.underWay,
            now: request.now,
          },
        })
      let asked: AskResult<Store, WriteOutcome>
      try {
        asked =
          expected === undefined
            ? await askInOrder(order, 0, options.copies, (store) => write(store), hedging)
            : await compareAndSet({
                sessionId,
                fullOrder,
                order,
                expectedVersion: expected,
                version,
                data,
                now: request.now,
                copies: options.copies,
                readQuorum: options.readQuorum,
                createsAbsent: storeListChange.underWay,
                trusts: this.#trusts,
                write,
                hedging,
                movingOn: decider,
              })
      } catch (error) {
        // Moving on, the store that decided found its decided version gone: a later write,
        // based on it, superseded it.
        // (WriteOutcomeUnknownError goes to the caller: the move-on's own statement may have
        // applied on the decider, with the followers not yet holding it.)
        // A later write keeps each store's timeout: one this write set is missing from the
        // stores that refused its copy (see #superseded); its data the later write replaced.
        if (decided !== undefined && error instanceof VersionConflictError) {
          return request.ttlSeconds === null ? decided : this.#superseded(sessionId, decided)
        }
        throw error
      }
      const { failures } = asked
      const answers = await ownCopies(asked.answers, sessionId, version, data)
      const decision = decideAttempt({
        attempt,
        version,
        compareAndSet: expected !== undefined,
        outcomes: answers.map((answer) => answer.value),
      })
      switch (decision.kind) {
        case 'dropped': {
          const buried = await this.#buryStrayCopies(sessionId, answers)
          // A decided compare-and-set moving on: the destroy came after it, and superseded it.
          if (decided !== undefined) return decided
          return this.#dropped(sessionId, version, buried)
        }
        case 'overflow':
          throw new VersionOverflowError(decision.newest)
        case 'again':
          if (expected !== undefined) {
            const took = answers.filter((answer) => answer.value.kind === 'written')
            decided ??= {
              version,
              storeIds: took.map((answer) => answer.store.id),
              degraded: false,
              dropped: false,
            }
            // compareAndSet answers with its decider first.
            decider = (answers[0] as StoreAnswer<Store, WriteOutcome>).store
            expected = version
          }
          version = versions.above(decision.newest)
          continue
        case 'done': {
          const answered = decision.held.map(
            (index) => (answers[index] as StoreAnswer<Store, WriteOutcome>).store,
          )
          // Only `written`: a late answer at this very version may be another write's copy.
          const passedOver = tookLate(asked, (outcome) => outcome.kind === 'written')
          const acknowledged = await acknowledgeWrite(this.#acknowledging, {
            sessionId,
            order: fullOrder,
            version,
            answered,
            failures,
            passedOver,
            lateVerdict: (heard) => {
              // A compare-and-set is decided by its primary; its followers only follow.
              if (expected !== undefined) return null
              // Only what outranks this write: an answer at its very version may be this
              // write's own copy (a replay or read repair took it there first).
              const telling = heard
                .map(({ value }) => value)
                .filter((value) => outranks(value, version))
              if (telling.length === 0) return null
              const again = decideAttempt({
                attempt,
                version,
                compareAndSet: false,
                outcomes: [...answers.map((answer) => answer.value), ...telling],
              })
              return again.kind === 'done' ? null : again
            },
          })
          if ('overruledBy' in acknowledged) {
            const again = acknowledged.overruledBy
            if (again.kind === 'overflow') throw new VersionOverflowError(again.newest)
            if (again.kind === 'again') {
              version = versions.above(again.newest)
              continue
            }
            // Stores that took it late hold live copies too.
            const heard = [...answers, ...passedOver.heard]
            return this.#dropped(sessionId, version, await this.#buryStrayCopies(sessionId, heard))
          }
          const { held, degraded } = acknowledged
          if (storeListChange.underWay) await this.#clearOld(sessionId, held, version)
          this.#handOff(sessionId, fullOrder, held, version)
          if (passedOver.stores.length > 0) {
            // A passed-over store that takes it after this (a hedge's target slower than the
            // store it stood in for) holds a copy the hand-off above did not know of.
            const handOffLate = (store: Store) =>
              this.#handOff(sessionId, fullOrder, [...held, store], version)
            whenLanded(passedOver, held, handOffLate)
          }
          return {
            version,
            storeIds: held.map((store) => store.id),
            degraded,
            dropped: false,
          }
        }
      }
    }
  }

  /**
   * Writes `data` as a new session with the expiry and timeout of `copy` (read from another
   * session).
   */
  writeCopy(
    sessionId: string,
    copy: StoredCopy,
    data: Buffer,
    owner: string | null,
  ): Promise<WriteResult> {
    return this.write({
      sessionId,
      data,
      owner,
      expiresAtMillis: copy.expiresAtMillis,
      explicitExpiry: true,
      ttlSeconds: copy.ttlSeconds,
      expectedVersion: undefined,
      now: this.#context.options.clock.now(),
    })
  }

  /**
   * Destroys the session: its copies are replaced by tombstones, which no later write or
   * returning store can undo. Acknowledged like a write.
   */
  async destroy(sessionId: string): Promise<void> {
    const { options, versions } = this.#context
    const version = versions.next()
    const expiresAt = this.#tombstoneExpiry()
    // Tombstones go as far as reads look (maxReadStores), not only to the first `copies`: a
    // write that failed over past a store that was down left a live copy further along, which
    // a read that finds nothing before it would otherwise serve.
    const order = this.#context.order(sessionId)
    const reach = Math.max(options.copies, options.maxReadStores)
    const asked = await askInOrder(
      writeOrder(order),
      0,
      reach,
      (store) => store.destroy(sessionId, version, expiresAt),
      this.#hedging(order),
    )
    // Never overruled: nothing a store answers late changes a destroy.
    const { held } = (await acknowledgeWrite(this.#acknowledging, {
      sessionId,
      order,
      version,
      answered: asked.answers.map((answer) => answer.store),
      failures: asked.failures,
      passedOver: tookLate(asked, () => true),
      lateVerdict: () => null,
    })) as Acknowledged
    // Those it missed further along get hints as well (durable before the destroy is
    // acknowledged, but not counted in it): caught up before they serve reads again, they
    // hold the tombstone over any copy left there.
    const missedFurther = missedPastCopies(order, options.copies, reach, held)
    if (missedFurther.length > 0) {
      await this.#context.handoff.record(sessionId, missedFurther, held, version)
    }
    // The new placement's tombstones answer every read first; the old copies just go.
    await this.#clearOld(sessionId, held, version)
  }

  /**
   * During a change of the store list, deletes the copies older than `version` from the old
   * placement's stores, and hints those it could not reach on `held`: an old copy left there
   * (a touch from another app server may even extend it) would be the session again, to a read
   * that falls back to the old placement, once the new placement's copies or tombstones are
   * swept. The hints hold those back from sweeps until replay (which sees the retiring stores
   * too) has buried or removed the old copy.
   */
  async #clearOld(sessionId: string, held: readonly Store[], version: number): Promise<void> {
    const { storeListChange, handoff } = this.#context
    const missed = await storeListChange.clearOld(sessionId, held, (store) =>
      store.removeCopy(sessionId, version),
    )
    if (missed.length > 0) await handoff.record(sessionId, missed, held, version)
  }

  /**
   * Runs a metadata update (a touch) on the session's first `copies` reachable stores, and
   * during a change of the store list on its old ones too (it may not have been moved yet,
   * and a copy under the new placement may be an old extra); resolves whether any had a live
   * copy, and whether the stores asked disagreed (some had none: a destroy or a newer write
   * one of them missed may leave a stale live copy there, which only a read can judge).
   */
  async updateCopies(
    sessionId: string,
    update: (store: Store) => Promise<boolean>,
  ): Promise<{ updated: boolean; disagreed: boolean }> {
    const { storeListChange, options } = this.#context
    const order = writeOrder(this.#context.order(sessionId))
    // The old placement first: a move writes the new stores before it removes the old copies,
    // so an update that finds no old copy (moved away meanwhile) finds the moved one after.
    // The other way round, a move between the two looks hid the session from both.
    const old = storeListChange.underWay
      ? await storeListChange.updateOld(sessionId, order.slice(0, options.copies), update)
      : undefined
    const { answers, failures } = await askInOrder(order, 0, options.copies, update)
    if (answers.length === 0) throw new NoStoreAvailableError('update the session', failures)
    const updated = answers.some((answer) => answer.value)
    const disagreed = updated && answers.some((answer) => !answer.value)
    if (old === undefined) return { updated, disagreed }
    return { updated: old || updated, disagreed: disagreed || old !== updated }
  }

  /**
   * A decided compare-and-set that set the session's timeout, superseded by a later write
   * while it moved on: the session's first stores that did not take its version missed it, as
   * an acknowledged write's do (the later write there kept the older timeout), and are hinted.
   */
  async #superseded(sessionId: string, decided: WriteResult): Promise<WriteResult> {
    const order = this.#context.order(sessionId)
    const held = order.filter((store) => decided.storeIds.includes(store.id))
    const missing = { sessionId, order, version: decided.version, held, failures: [] }
    const fewer = decided.degraded || held.length < this.#context.options.copies
    const degraded = await recordMisses(this.#acknowledging, missing, fewer)
    return { ...decided, degraded }
  }

  /** Hands off the copies `holders` keep past the session's first stores (handedOffStores). */
  #handOff(
    sessionId: string,
    order: readonly Store[],
    holders: readonly Store[],
    version: number,
  ): void {
    const handedOff = handedOffStores(order, this.#context.options.copies, holders)
    if (handedOff.length === 0) return
    const keepers = holders.filter((store) => !handedOff.includes(store))
    this.#context.handOffInBackground(sessionId, handedOff, keepers, version)
  }

  /**
   * The result of a write a destroy dropped (`buried`: see {@link buryStrayCopies}). A stray
   * copy left with no durable hint makes it degraded, as a write whose hint no store took: only
   * this app server's memory knows to bury it, and a repair could spread it once the destroy's
   * tombstones are swept.
   */
  #dropped(sessionId: string, version: number, buried: StoreFailure[] | null): WriteResult {
    this.#context.emit('write-after-destroy', { sessionId })
    if (buried !== null) {
      const { copies } = this.#context.options
      const event = { sessionId, copiesWritten: 0, copiesWanted: copies, failures: buried }
      this.#context.emit('degraded-write', event)
    }
    return { version, storeIds: [], degraded: buried !== null, dropped: true }
  }

  /** {@link buryStrayCopies} under a new tombstone. */
  #buryStrayCopies(
    sessionId: string,
    answers: readonly { store: Store; value: WriteOutcome }[],
  ): Promise<StoreFailure[] | null> {
    const tombstone = { version: this.#context.versions.next(), expiresAt: this.#tombstoneExpiry() }
    return buryStrayCopies(this.#context, sessionId, answers, tombstone)
  }

  /** Tombstones must outlive every copy of the session, so none can come back (tombstoneTtlSeconds). */
  #tombstoneExpiry(): number {
    const { clock, tombstoneTtlSeconds } = this.#context.options
    return clock.now() + tombstoneTtlSeconds * 1000
  }
}

/** Whether a store's answer outranks a write at `version`: a tombstone, or a newer version. */
function outranks(outcome: WriteOutcome, version: number): boolean {
  return (
    outcome.kind === 'tombstone' || (outcome.kind === 'outdated' && outcome.storedVersion > version)
  )
}
