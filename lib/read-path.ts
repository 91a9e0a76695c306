/** The read path: which stores a read asks, and what their copies say (the copy rule decides). */
import { askInOrder } from './ask-in-order.js'
import type { AskOptions, StoreAnswer } from './ask-in-order.js'
import type { SessionData } from './codec.js'
import type { CopyVerdict } from './copy-rules.js'
import { isStale, judgeCopies } from './copy-rules.js'
import type { StoreFailure } from './errors.js'
import { NoStoreAvailableError } from './errors.js'
import type { Emit } from './events.js'
import type { ResolvedOptions } from './options.js'
import {
  aloneReadable,
  firstReadable,
  quorumSpan,
  reachesPastSpan,
  readOrder,
  unaskedHolders,
  withinSpan,
} from './routing.js'
import type { StoreListChange } from './store-list-change.js'
import { DeadlineTracker } from './store/deadlines.js'
import type { PendingStatement } from './store/deadlines.js'
import type { CopyDigest, StoredCopy } from './store/rows.js'
import type { Store } from './store/store.js'

/** A session as `readSession(id, { withVersion: true })` resolves it. */
export interface VersionedSession {
  data: SessionData
  /** The version of the copy read: pass it as `expectedVersion` to write only over it. */
  version: number
  /** When the session expires, in milliseconds since the epoch (touches move it). */
  expiresAt: number
  /**
   * How far a write or touch moves the expiry, in seconds: the session's own timeout
   * ({@link SessionManager.setSessionTimeout}), else the manager's `ttlSeconds`.
   */
  timeoutSeconds: number
}

/** A session as a read found it: its data, decoded, and the copy it came from. */
export interface ReadResult {
  data: SessionData
  copy: StoredCopy
}

/** What the read path needs from the manager. */
export interface ReadContext {
  readonly options: Pick<
    ResolvedOptions,
    'readQuorum' | 'maxReadStores' | 'copies' | 'codec' | 'clock'
  >
  /** The session's order over the configured stores. */
  order(sessionId: string): readonly Store[]
  readonly storeListChange: StoreListChange
  /** Moves a session found under the old placement to its new stores, in the background. */
  moveInBackground(sessionId: string): void
  /** Rewrites the newest copy (or tombstone) on `stale` stores, in the background. */
  repairInBackground(sessionId: string, stale: readonly Store[]): void
  /** The read lease (failure/read-lease.ts), when reads may ask one store alone; else null. */
  readonly lease: { trusts(store: Store): boolean } | null
  readonly emit: Emit
}

/** A copy as a read got it: whole (with its data), or a digest. */
type Copy = StoredCopy | CopyDigest
type Answer = StoreAnswer<Store, Copy | null>

const hedgeAfter = (store: Store): number => store.hedgeAfterMillis()
/**
 * How late a lone read's hedge may start: a hedge waits at least 2 ms (store/latency.ts), so
 * starting it up to 1 ms late keeps it well ahead of a slow store's answer.
 */
const HEDGE_RESOLUTION_MILLIS = 1

/** What a read of one store alone got: its answer, if any store answered, and the failures. */
interface AloneOutcome {
  answer: Answer | undefined
  failures: readonly StoreFailure[]
}

/** An outcome's failures when there were none (never mutated: every user copies). */
const NO_FAILURES: readonly StoreFailure[] = Object.freeze([])

/** A copy that one store alone cannot answer with: the read goes on, with the copy as seen. */
class Unserved {
  constructor(readonly seen: StoredCopy | null) {}
}

/** The first outcome with an answer; else, once all are in, every failure. */
function firstAnswered(outcomes: readonly Promise<AloneOutcome>[]): Promise<AloneOutcome> {
  return new Promise((resolve) => {
    const failures: StoreFailure[] = []
    let left = outcomes.length
    for (const outcome of outcomes) {
      void outcome.then((settled) => {
        if (settled.answer !== undefined) return resolve(settled)
        failures.push(...settled.failures)
        if (--left === 0) resolve({ answer: undefined, failures })
      })
    }
  })
}

/**
 * Reads ask the first reachable store of the session's order (the first `readQuorum` in
 * parallel); if none has a live copy, the next reachable stores, up to `maxReadStores` in
 * all; during a change of the store list, then the old placement. A tombstone anywhere wins;
 * otherwise the newest copy does (copy-rules.ts). Stores among the first `copies` that answered
 * with less are repaired in the background.
 */
export class ReadPath {
  readonly #context: ReadContext
  /** When lone reads on the lease hedge: one timer for all of them, while any is waiting. */
  readonly #hedges = new DeadlineTracker(HEDGE_RESOLUTION_MILLIS)

  /** Whether the lease trusts a store, bound once (reads ask it on every read). */
  readonly #trusted: (store: Store) => boolean

  constructor(context: ReadContext) {
    this.#context = context
    const { lease } = context
    this.#trusted = (store) => lease?.trusts(store) === true
  }

  /** The winning copy of a session, decoded; null when there is none (or it expired, or was destroyed). */
  newest(sessionId: string): Promise<ReadResult | null> {
    // Not async: every branch hands back another path's promise, which an async function
    // would wrap in one more (three microtask hops per read).
    const { options, storeListChange, lease } = this.#context
    const order = this.#context.order(sessionId)
    // During a change of the store list a copy found under the new placement may be older than
    // one still under the old: only the general path looks at both.
    if (storeListChange.underWay) return this.#general(sessionId, [], [], new Set())
    if (options.readQuorum === 1) {
      const first = firstReadable(order)
      return first === undefined
        ? this.#general(sessionId, [], [], new Set())
        : this.#alone(sessionId, order, [first])
    }
    if (lease === null) return this.#general(sessionId, [], [], new Set())
    const alone = aloneReadable(order, options.copies, this.#trusted)
    return alone.length === 0
      ? this.#general(sessionId, [], [], new Set())
      : this.#alone(sessionId, order, alone)
  }

  /**
   * The one-statement read: the first of `stores` alone, a slow one raced against the next of
   * them (never another store). The general path takes over when no live copy was found. On
   * the lease (several stores), a first store slower than its hedge delay is raced against the
   * next ones, and a failed one is replaced by them; the hedge is due by the path's shared
   * tracker, not a timer of its own.
   *
   * The healthy case, the first store answering in time with a live copy, builds nothing but
   * the result: no outcome object, and no promise or timer of the slow case's. (Cheaper than
   * askInOrder, whose lanes cost a read more client CPU than the statement itself.)
   */
  #alone(
    sessionId: string,
    order: readonly Store[],
    stores: readonly Store[],
  ): Promise<ReadResult | null> {
    const first = stores[0] as Store
    const answered = (copy: StoredCopy | null): ReadResult | null | Promise<ReadResult | null> => {
      const found = this.#aloneAnswer(sessionId, first, copy)
      if (!(found instanceof Unserved)) return found
      const answer = { store: first, position: order.indexOf(first), value: found.seen }
      return this.#general(sessionId, [answer], NO_FAILURES, new Set([first]))
    }
    const failed = (error: unknown): AloneOutcome => ({
      answer: undefined,
      failures: [{ storeId: first.id, error: error as Error }],
    })
    // The healthy case of readQuorum 1: one statement, nothing else waited for.
    if (stores.length === 1) {
      return first
        .read(sessionId)
        .then(answered, (error: unknown) => this.#afterAlone(sessionId, stores, failed(error)))
    }
    return new Promise<ReadResult | null>((resolve) => {
      /** Once hedged: hands the first store's late outcome to the race with the next ones. */
      let late: ((outcome: AloneOutcome) => void) | undefined
      const raced = (fromFirst: AloneOutcome | Promise<AloneOutcome>): void =>
        resolve(
          this.#askAfterFirst(sessionId, order, stores, fromFirst).then((outcome) =>
            this.#afterAlone(sessionId, stores, outcome),
          ),
        )
      const hedge: PendingStatement = {
        deadline: performance.now() + first.hedgeAfterMillis(),
        untracked: true,
        expire: () => raced(new Promise<AloneOutcome>((settle) => (late = settle))),
      }
      this.#hedges.add(hedge)
      first.read(sessionId).then(
        (copy) => {
          if (late !== undefined) {
            return late({
              answer: { store: first, position: order.indexOf(first), value: copy },
              failures: NO_FAILURES,
            })
          }
          this.#hedges.delete(hedge)
          resolve(answered(copy))
        },
        (error: unknown) => {
          if (late !== undefined) return late(failed(error))
          this.#hedges.delete(hedge)
          raced(failed(error))
        },
      )
    })
  }

  /** The slow case's end: its answer served alone if it can be, else the general path. */
  #afterAlone(
    sessionId: string,
    stores: readonly Store[],
    { answer, failures }: AloneOutcome,
  ): ReadResult | null | Promise<ReadResult | null> {
    let seen: StoredCopy | null = null
    if (answer !== undefined) {
      const found = this.#aloneAnswer(sessionId, answer.store, answer.value as StoredCopy | null)
      if (!(found instanceof Unserved)) return found
      seen = found.seen
    }
    const done = new Set(stores.filter((store) => failures.some((f) => f.storeId === store.id)))
    if (answer === undefined) return this.#general(sessionId, [], failures, done)
    return this.#general(sessionId, [{ ...answer, value: seen }], failures, done.add(answer.store))
  }

  /**
   * The lease's slow case: the first store failed (`first` is its outcome), so the next
   * trusted store is asked instead; or it is slow (`first` is its pending outcome), so the next
   * one too, the first answer winning.
   */
  async #askAfterFirst(
    sessionId: string,
    order: readonly Store[],
    stores: readonly Store[],
    first: AloneOutcome | Promise<AloneOutcome>,
  ): Promise<AloneOutcome> {
    const read = (store: Store): Promise<StoredCopy | null> => store.read(sessionId)
    const rest = askInOrder(stores, 1, 1, read, {
      hedgeAfter,
      mayHedgeTo: (store) => stores.includes(store),
    }).then(({ answers, failures }): AloneOutcome => {
      const answer = answers[0]
      return {
        answer:
          answer === undefined ? undefined : { ...answer, position: order.indexOf(answer.store) },
        failures,
      }
    })
    if (first instanceof Promise) return firstAnswered([first, rest])
    const { answer, failures } = await rest
    return { answer, failures: [...first.failures, ...failures] }
  }

  /**
   * What one store's copy answers alone: a tombstone, null; a live copy that decodes, the
   * session. Anything else (no row, expired, unreadable: then reported, and seen as no copy)
   * leaves the answer to the general path: {@link Unserved}, with the copy as seen.
   */
  #aloneAnswer(
    sessionId: string,
    store: Store,
    copy: StoredCopy | null,
  ): ReadResult | null | Unserved {
    if (copy === null) return new Unserved(null)
    if (copy.deleted) return null
    const { codec, clock } = this.#context.options
    if (copy.expiresAtMillis <= clock.now()) return new Unserved(copy)
    try {
      return { data: codec.decode(copy.data as Buffer, sessionId), copy }
    } catch (error) {
      this.#context.emit('unreadable-copy', { sessionId, storeId: store.id, error })
      return new Unserved(null)
    }
  }

  /**
   * The general read: asks `readQuorum` reachable stores (besides those already asked) — the
   * first for the data, the others for a digest — then, if none has a live copy, the next ones
   * up to `maxReadStores` answers in all, for the data.
   */
  async #general(
    sessionId: string,
    asked: Answer[],
    failed: readonly StoreFailure[],
    skip: ReadonlySet<Store>,
  ): Promise<ReadResult | null> {
    const { options, storeListChange } = this.#context
    const order = this.#context.order(sessionId)
    // readQuorum 1 comes here when its first store is behind, failed or had nothing: it then
    // compares `copies` copies, as the default does. Trusting the first store that is not
    // behind could take an older copy a failed-over write left beyond the first `copies`
    // stores, while the newest is on stores behind for other sessions' misses (a chaos run on
    // a starved machine read such copies).
    const quorum = options.readQuorum === 1 ? options.copies : options.readQuorum
    const stores = readOrder(order, quorum).filter((store) => !skip.has(store))
    const hedging = this.#hedging(order)
    const read = (store: Store): Promise<StoredCopy | null> => store.read(sessionId)
    // The first lane reads the data; the others only a digest, fetched whole only if newer.
    const dataLanes = asked.some((answer) => answer.value !== null && 'data' in answer.value)
      ? 0
      : 1
    const first = await askInOrder(
      stores,
      0,
      quorum - asked.length,
      (store, lane) => (lane < dataLanes ? read(store) : store.readDigest(sessionId)),
      hedging,
    )
    let answers: Answer[] = [...asked, ...first.answers]
    let failures = [...failed, ...first.failures]
    let late = [...first.late]
    let judged = await this.#judgeWhole(sessionId, answers)
    if (judged.result === null && judged.verdict.state !== 'destroyed') {
      const wanted = options.maxReadStores - answers.length
      const rest = await askInOrder(stores, first.next, wanted, read, hedging)
      answers = [...answers, ...rest.answers]
      failures = [...failures, ...rest.failures]
      late = [...late, ...rest.late]
      judged = await this.#judgeWhole(sessionId, answers)
    }
    if (
      late.length > 0 &&
      judged.verdict.state !== 'destroyed' &&
      (judged.result === null ||
        reachesPastSpan(
          order,
          answers.map((answer) => answer.store),
          quorumSpan(options.copies, options.readQuorum),
        ))
    ) {
      // Nothing found yet, or found past the span (failures carried the read there): the stores
      // passed over as slow may hold the session, or a newer copy, after all. A slow first
      // store hedged to the third while the second hangs reads the third and the fourth, and
      // a write acknowledged on the first two is on neither. Their answers are waited for
      // (each within its own deadline) first.
      for (const outcome of await Promise.all(late)) {
        if ('store' in outcome) answers.push(outcome)
        else failures.push(outcome)
      }
      judged = await this.#judgeWhole(sessionId, answers)
    }
    // Whether the old placement (during a change of the store list) answered enough to tell.
    let oldTellsAbsence = true
    if (storeListChange.underWay && judged.verdict.state !== 'destroyed') {
      // Found or not under the new placement, the old one may hold a newer copy: the session
      // may not have been moved yet, and a copy under the new placement can be an old extra
      // (a failed-over or hedged write left it there before the change).
      const old = await storeListChange.lookUpOld(
        sessionId,
        new Set(answers.map((answer) => answer.store)),
      )
      oldTellsAbsence = old.tellsAbsence
      if (old.answers.some((answer) => answer.value !== null)) {
        answers = [...answers, ...old.answers]
        judged = await this.#judgeWhole(sessionId, answers)
        this.#context.moveInBackground(sessionId)
      } else {
        // Moved between the two looks (see StoreListChange.underWay): the stores a move copies
        // to are asked again, and their new answers replace the first ones. Also when the first
        // look found a copy: it may be an old extra the move has since written over.
        const again = await askInOrder(stores, 0, options.copies, read)
        const reasked = new Set(again.answers.map((answer) => answer.store))
        answers = [...answers.filter((answer) => !reasked.has(answer.store)), ...again.answers]
        judged = await this.#judgeWhole(sessionId, answers)
      }
    }
    if (answers.length === 0) throw new NoStoreAvailableError('read the session', failures)
    const { verdict, result } = judged
    const failedStores = failures.flatMap(({ storeId }) => order.filter((s) => s.id === storeId))
    const missed = unaskedHolders(
      order,
      answers.map((answer) => answer.store),
      failedStores,
      options.maxReadStores,
    )
    if (
      result === null &&
      verdict.state !== 'destroyed' &&
      (missed >= options.copies || !oldTellsAbsence)
    ) {
      // As many stores as hold each session were not heard from (under the old placement too,
      // where a session not moved yet sits): "no session" would be a guess.
      throw new NoStoreAvailableError('tell whether the session exists', failures)
    }
    const firstCopies = new Set(order.slice(0, options.copies))
    const stale = answers
      .filter(({ store, value }) => firstCopies.has(store) && isStale(value, verdict))
      .map(({ store }) => store)
    if (stale.length > 0) this.#context.repairInBackground(sessionId, stale)
    return result
  }

  /**
   * A store slower than its own recent latency allows is raced against the next one, if that
   * one is within the quorum span (routing.ts): a read of other stores could miss the write
   * the slow one holds. Only when a read compares several copies (`readQuorum` > 1): a
   * single-store read trusts the one answer it gets, and a hedge could hand it to a store that
   * missed writes.
   */
  #hedging(order: readonly Store[]): AskOptions<Store> {
    const { copies, readQuorum } = this.#context.options
    if (readQuorum === 1) return {}
    const span = quorumSpan(copies, readQuorum)
    return { hedgeAfter, mayHedgeTo: (store) => withinSpan(order, store, span) }
  }

  /**
   * {@link #judge}, with the winning copy fetched whole when only its digest was read. A newer
   * copy that cannot be fetched is no reason to serve an older one: the read fails instead.
   */
  async #judgeWhole(
    sessionId: string,
    answers: Answer[],
  ): Promise<{ verdict: CopyVerdict<Copy>; result: ReadResult | null }> {
    for (;;) {
      const judged = this.#judge(sessionId, answers)
      const { verdict } = judged
      if (verdict.state !== 'live' || 'data' in verdict.copy) return judged
      const at = answers.findIndex((answer) => answer.value === verdict.copy)
      const { store, position } = answers[at] as Answer
      let copy: StoredCopy | null
      try {
        copy = await store.read(sessionId)
      } catch (error) {
        throw new NoStoreAvailableError('read the newest copy of the session', [
          { storeId: store.id, error: error as Error },
        ])
      }
      // Gone, or older, since its digest (a copy handed off and removed in between): the
      // other answers may all predate the write it held, so they cannot stand in for it.
      if (copy === null || (!copy.deleted && copy.version < verdict.copy.version)) {
        throw new NoStoreAvailableError('read the newest copy of the session', [
          { storeId: store.id, error: new Error('its newest copy was removed while it was read') },
        ])
      }
      answers[at] = { store, position, value: copy }
    }
  }

  /**
   * What the copies read say, by the copy rule; a winning copy that does not decode counts as
   * missing from then on (it is reported once, and dropped from `answers`), and the rule is
   * asked again without it.
   */
  #judge(
    sessionId: string,
    answers: Answer[],
  ): { verdict: CopyVerdict<Copy>; result: ReadResult | null } {
    const { codec, clock } = this.#context.options
    for (;;) {
      const verdict = judgeCopies(
        answers.map((answer) => answer.value),
        clock.now(),
      )
      if (verdict.state !== 'live' || !('data' in verdict.copy)) return { verdict, result: null }
      const copy = verdict.copy
      try {
        return { verdict, result: { data: codec.decode(copy.data as Buffer, sessionId), copy } }
      } catch (error) {
        const at = answers.findIndex((answer) => answer.value === copy)
        const answer = answers[at] as Answer
        this.#context.emit('unreadable-copy', { sessionId, storeId: answer.store.id, error })
        answers[at] = { ...answer, value: null }
      }
    }
  }
}
