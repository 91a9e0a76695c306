/** The write path: writes, compare-and-set, destroys and metadata updates, acknowledged by one rule. */
import { askInOrder } from './ask-in-order.js'
import type { AskResult, StoreAnswer } from './ask-in-order.js'
import type { StoreFailure } from './errors.js'
import {
  NoStoreAvailableError,
  NotEnoughStoresError,
  VersionConflictError,
  VersionOverflowError,
} from './errors.js'
import type { Emit } from './events.js'
import type { HintedHandoff } from './failure/hinted-handoff.js'
import type { ResolvedOptions } from './options.js'
import { missedStores, writeOrder } from './routing.js'
import type { StoreListChange } from './store-list-change.js'
import type { StoredCopy, WriteFields, WriteOutcome } from './store/statements.js'
import type { Store } from './store/store.js'
import type { VersionClock } from './version-clock.js'
import { VERSION_CEILING } from './version-clock.js'
import { acknowledgement, decideAttempt } from './write-rules.js'

/** What an acknowledged write did. */
export interface WriteResult {
  /** The session's version after the write. */
  version: number
  /**
   * Stores that now hold the new data (or data of a concurrent write that landed after it
   * and supersedes it), in order of preference.
   */
  storeIds: string[]
  /** True when fewer than `copies` copies were written (at least `minCopies`). */
  degraded: boolean
  /**
   * True when nothing was written because the session had been destroyed: a destroy wins over
   * every later write, so the session stays gone (`storeIds` is empty and `version` is not the
   * session's). The `write-after-destroy` event says the same.
   */
  dropped: boolean
}

/** One write, checked and encoded by the manager. */
export interface WriteRequest extends Omit<WriteFields, 'version'> {
  sessionId: string
  data: Buffer
}

/** What the write path needs from the manager. */
export interface WriteContext {
  readonly options: Pick<ResolvedOptions, 'copies' | 'minCopies' | 'tombstoneTtlSeconds' | 'clock'>
  readonly versions: VersionClock
  /** The session's order over the configured stores. */
  order(sessionId: string): readonly Store[]
  readonly storeListChange: StoreListChange
  readonly handoff: HintedHandoff
  /** Moves a session found under the old placement to its new stores, in the background. */
  moveInBackground(sessionId: string): void
  readonly emit: Emit
}

/**
 * A write made again above a newer version it found; after this many attempts that all lost
 * to concurrent writes it is refused with a VersionConflictError.
 */
const MAX_WRITE_ATTEMPTS = 6

/**
 * Writes go to the first `copies` reachable stores of the session's order, in parallel, a
 * store that fails replaced by the next one. A compare-and-set is decided by the first
 * reachable store alone (one store serializes concurrent writers); the others follow once it
 * has accepted. A write is acknowledged once `copies` stores hold it (at least `minCopies`,
 * degraded); the first `copies` stores it missed get hints.
 */
export class WritePath {
  readonly #context: WriteContext

  constructor(context: WriteContext) {
    this.#context = context
  }

  async write(request: WriteRequest): Promise<WriteResult> {
    const { sessionId, data, expectedVersion, ...fields } = request
    const { options, versions, storeListChange } = this.#context
    if (await storeListChange.destroyedUnderOld(sessionId)) {
      // Destroyed before the change of the store list, and not moved yet: the tombstone sits
      // under the old placement only. Drop the write as a tombstone would, and move it.
      this.#context.moveInBackground(sessionId)
      this.#context.emit('write-after-destroy', { sessionId })
      return { version: 0, storeIds: [], degraded: false, dropped: true }
    }
    const order = writeOrder(this.#context.order(sessionId))
    // A compare-and-set that applies finds the session at expectedVersion and writes above it;
    // one that cannot match any version the library mints is left to the store to refuse.
    let version =
      expectedVersion !== undefined && expectedVersion + 1 < VERSION_CEILING
        ? versions.above(expectedVersion)
        : versions.next()
    for (let attempt = 1; ; attempt++) {
      const write = (store: Store, expected = expectedVersion): Promise<WriteOutcome> =>
        store.write({ sessionId, data, fields: { ...fields, version, expectedVersion: expected } })
      const { answers, failures } =
        expectedVersion === undefined
          ? await askInOrder(order, 0, options.copies, (store) => write(store))
          : await this.#compareAndSet(order, expectedVersion, write)
      const decision = decideAttempt({
        attempt,
        maxAttempts: MAX_WRITE_ATTEMPTS,
        version,
        compareAndSet: expectedVersion !== undefined,
        outcomes: answers.map((answer) => answer.value),
      })
      switch (decision.kind) {
        case 'dropped':
          await this.#buryStrayCopies(sessionId, answers)
          this.#context.emit('write-after-destroy', { sessionId })
          return { version, storeIds: [], degraded: false, dropped: true }
        case 'conflict':
          throw new VersionConflictError(decision.newest)
        case 'overflow':
          throw new VersionOverflowError(decision.newest)
        case 'again':
          // Two writers that each won one copy would otherwise go on splitting the copies in
          // lockstep: a short random pause lets one of them through first.
          if (attempt > 1) await delay(Math.random() * 2 ** attempt)
          version = versions.above(decision.newest)
          continue
        case 'done': {
          const held = decision.held.map(
            (index) => (answers[index] as StoreAnswer<Store, WriteOutcome>).store,
          )
          const refused = answers.flatMap(({ store, value }) =>
            value.kind === 'outdated' && !held.includes(store)
              ? [{ storeId: store.id, error: new VersionConflictError(value.storedVersion) }]
              : [],
          )
          await this.#acknowledge(sessionId, held, [...failures, ...refused])
          await storeListChange.clearOld(sessionId, held, (store) =>
            store.removeCopy(sessionId, version),
          )
          return {
            version,
            storeIds: held.map((store) => store.id),
            degraded: held.length < options.copies,
            dropped: false,
          }
        }
      }
    }
  }

  /** Writes `copy` (read from another session) as a new session: same data, expiry and timeout. */
  writeCopy(sessionId: string, copy: StoredCopy, owner: string | null): Promise<WriteResult> {
    return this.write({
      sessionId,
      data: copy.data as Buffer,
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
    const { options, versions, storeListChange } = this.#context
    const version = versions.next()
    const expiresAt = this.#tombstoneExpiry()
    const { answers, failures } = await askInOrder(
      writeOrder(this.#context.order(sessionId)),
      0,
      options.copies,
      (store) => store.destroy(sessionId, version, expiresAt),
    )
    const held = answers.map((answer) => answer.store)
    await this.#acknowledge(sessionId, held, failures)
    // The new placement's tombstones answer every read first; the old copies just go.
    await storeListChange.clearOld(sessionId, held, (store) => store.removeCopy(sessionId, version))
  }

  /**
   * Runs a metadata update (touch, session timeout) on the session's first `copies` reachable
   * stores; resolves whether any had a live copy.
   */
  async updateCopies(
    sessionId: string,
    update: (store: Store) => Promise<boolean>,
  ): Promise<boolean> {
    const { answers, failures } = await askInOrder(
      writeOrder(this.#context.order(sessionId)),
      0,
      this.#context.options.copies,
      update,
    )
    if (answers.length === 0) throw new NoStoreAvailableError('update the session', failures)
    return answers.some((answer) => answer.value)
  }

  /** The primary decides; on `written`, the followers take the same version as plain writes. */
  async #compareAndSet(
    order: readonly Store[],
    expectedVersion: number,
    write: (store: Store, expected?: number) => Promise<WriteOutcome>,
  ): Promise<AskResult<Store, WriteOutcome>> {
    const primary = await askInOrder(order, 0, 1, (store) => write(store))
    const decided = primary.answers[0]?.value
    if (decided?.kind === 'outdated') {
      throw new VersionConflictError(decided.storedVersion, expectedVersion)
    }
    const followers =
      decided?.kind === 'written'
        ? await askInOrder(order, primary.next, this.#context.options.copies - 1, (store) =>
            write(store, undefined),
          )
        : { answers: [], failures: [], next: primary.next }
    return {
      answers: [...primary.answers, ...followers.answers],
      failures: [...primary.failures, ...followers.failures],
      next: followers.next,
    }
  }

  /**
   * The acknowledgement rule: refused below `minCopies` (NotEnoughStoresError), reported as
   * degraded below `copies`; the first `copies` stores the write missed get hints, recorded
   * before the write is acknowledged.
   */
  async #acknowledge(
    sessionId: string,
    held: readonly Store[],
    failures: StoreFailure[],
  ): Promise<void> {
    const { copies, minCopies } = this.#context.options
    const verdict = acknowledgement(held.length, copies, minCopies)
    if (verdict === 'refused') throw new NotEnoughStoresError(held.length, minCopies, failures)
    if (verdict === 'degraded') {
      this.#context.emit('degraded-write', {
        sessionId,
        copiesWritten: held.length,
        copiesWanted: copies,
        failures,
      })
    }
    const missed = missedStores(this.#context.order(sessionId), copies, held)
    if (missed.length > 0) await this.#context.handoff.record(sessionId, missed, held)
  }

  /** A write met a tombstone: the stores where it created a live copy get a tombstone too. */
  async #buryStrayCopies(
    sessionId: string,
    answers: readonly StoreAnswer<Store, WriteOutcome>[],
  ): Promise<void> {
    const version = this.#context.versions.next()
    const expiresAt = this.#tombstoneExpiry()
    await Promise.allSettled(
      answers
        .filter((answer) => answer.value.kind === 'written')
        .map(({ store }) => store.destroy(sessionId, version, expiresAt)),
    )
  }

  /** Tombstones must outlive every copy of the session, so none can come back (tombstoneTtlSeconds). */
  #tombstoneExpiry(): number {
    const { clock, tombstoneTtlSeconds } = this.#context.options
    return clock.now() + tombstoneTtlSeconds * 1000
  }
}

function delay(millis: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, millis).unref())
}
