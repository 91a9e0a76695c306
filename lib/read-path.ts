/** The read path: which stores a read asks, and what their copies say (the copy rule decides). */
import { askInOrder } from './ask-in-order.js'
import type { StoreAnswer } from './ask-in-order.js'
import type { SessionData } from './codec.js'
import type { CopyVerdict } from './copy-rules.js'
import { isStale, judgeCopies } from './copy-rules.js'
import type { StoreFailure } from './errors.js'
import { NoStoreAvailableError } from './errors.js'
import type { Emit } from './events.js'
import type { ResolvedOptions } from './options.js'
import { firstReadable, readOrder, unaskedHolders } from './routing.js'
import type { StoreListChange } from './store-list-change.js'
import type { StoredCopy } from './store/statements.js'
import type { Store } from './store/store.js'

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
  readonly emit: Emit
}

type Answer = StoreAnswer<Store, StoredCopy | null>

/**
 * Reads ask the first reachable store of the session's order (the first `readQuorum` in
 * parallel); if none has a live copy, the next reachable stores, up to `maxReadStores` in
 * all; during a change of the store list, then the old placement. A tombstone anywhere wins;
 * otherwise the newest copy does (copy-rules.ts). Stores among the first `copies` that answered
 * with less are repaired in the background.
 */
export class ReadPath {
  readonly #context: ReadContext

  constructor(context: ReadContext) {
    this.#context = context
  }

  /** The winning copy of a session, decoded; null when there is none (or it expired, or was destroyed). */
  async newest(sessionId: string): Promise<ReadResult | null> {
    const { options } = this.#context
    const order = this.#context.order(sessionId)
    const first = options.readQuorum === 1 ? firstReadable(order) : undefined
    if (first === undefined) return this.#general(sessionId, [], [], undefined)
    // The healthy case: one statement to the first store, nothing allocated beyond it.
    let copy: StoredCopy | null
    try {
      copy = await first.read(sessionId)
    } catch (error) {
      return this.#general(sessionId, [], [{ storeId: first.id, error: error as Error }], first)
    }
    if (copy !== null && copy.deleted) return null
    if (copy !== null && copy.expiresAtMillis > options.clock.now()) {
      try {
        return { data: options.codec.decode(copy.data as Buffer), copy }
      } catch (error) {
        this.#context.emit('unreadable-copy', { sessionId, storeId: first.id, error })
        copy = null
      }
    }
    return this.#general(sessionId, [{ store: first, position: 0, value: copy }], [], first)
  }

  /**
   * The general read: asks `readQuorum` reachable stores (besides those already asked), then,
   * if none has a live copy, the next ones up to `maxReadStores` answers in all.
   */
  async #general(
    sessionId: string,
    asked: Answer[],
    failed: StoreFailure[],
    skip: Store | undefined,
  ): Promise<ReadResult | null> {
    const { options, storeListChange } = this.#context
    const order = this.#context.order(sessionId)
    const stores = readOrder(order, options.readQuorum).filter((store) => store !== skip)
    const read = (store: Store): Promise<StoredCopy | null> => store.read(sessionId)
    const first = await askInOrder(stores, 0, options.readQuorum - asked.length, read)
    let answers = [...asked, ...first.answers]
    let failures = [...failed, ...first.failures]
    let judged = this.#judge(sessionId, answers)
    if (judged.result === null && judged.verdict.state !== 'destroyed') {
      const wanted = options.maxReadStores - answers.length
      const rest = await askInOrder(stores, first.next, wanted, read)
      answers = [...answers, ...rest.answers]
      failures = [...failures, ...rest.failures]
      judged = this.#judge(sessionId, answers)
    }
    if (judged.result === null && judged.verdict.state !== 'destroyed') {
      const old = await storeListChange.lookUpOld(
        sessionId,
        new Set(answers.map((answer) => answer.store)),
      )
      if (old.some((answer) => answer.value !== null)) {
        answers = [...answers, ...old]
        judged = this.#judge(sessionId, answers)
        this.#context.moveInBackground(sessionId)
      }
    }
    if (answers.length === 0) throw new NoStoreAvailableError('read the session', failures)
    const { verdict, result } = judged
    if (
      result === null &&
      verdict.state !== 'destroyed' &&
      unaskedHolders(
        order,
        answers.map((answer) => answer.store),
        failures.length,
      ) >= options.copies
    ) {
      // As many stores as hold each session could not be asked: "no session" would be a guess.
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
   * What the copies read say, by the copy rule; a winning copy that does not decode counts as
   * missing (and is reported), and the rule is asked again without it.
   */
  #judge(
    sessionId: string,
    answers: readonly Answer[],
  ): { verdict: CopyVerdict<StoredCopy>; result: ReadResult | null } {
    const { codec, clock } = this.#context.options
    const candidates = answers.map((answer) => answer.value)
    for (;;) {
      const verdict = judgeCopies(candidates, clock.now())
      if (verdict.state !== 'live') return { verdict, result: null }
      try {
        return {
          verdict,
          result: { data: codec.decode(verdict.copy.data as Buffer), copy: verdict.copy },
        }
      } catch (error) {
        const at = candidates.indexOf(verdict.copy)
        const storeId = (answers[at] as Answer).store.id
        this.#context.emit('unreadable-copy', { sessionId, storeId, error })
        candidates[at] = null
      }
    }
  }
}
