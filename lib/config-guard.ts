/**
 * The guard against mismatched configurations: every manager publishes its placement
 * configuration to each store, and reads the others'. Two app servers with different store
 * lists or copy counts place sessions differently, and users get logged out at random.
 */
import { createHash, randomBytes } from 'node:crypto'
import { performance } from 'node:perf_hooks'
import type { Clock } from './clock.js'
import { debug } from './debug.js'
import { errorSummary } from './errors.js'
import type { ConfigMismatch, Emit, PlacementConfig } from './events.js'
import { JitteredTimer } from './jittered-timer.js'
import { ListedStores } from './listed-stores.js'
import type { PeerRow } from './store/peer-statements.js'
import { peerStatements } from './store/peer-statements.js'
import type { Store } from './store/store.js'

/** A published row outlives its manager by at most this (renewed every few rounds). */
const PUBLISHED_TTL_MILLIS = 30_000
/** How long closing waits for this manager's row to be withdrawn. */
const WITHDRAW_WAIT_MILLIS = 500
/** How often this manager's own row is renewed on each store (a write). */
const RENEW_MILLIS = 10_000
/**
 * The shortest interval between rounds, whatever the health check's: a round reads every
 * store, and configurations change with deploys, not within a second.
 */
const MIN_INTERVAL_MILLIS = 1000
/** At most this many store ids are kept from peers' configurations: a bound, far above real lists. */
const MAX_PEER_STORE_IDS = 1024

/** A short digest of a configuration: managers configured alike publish the same. */
export function configFingerprint(config: PlacementConfig): string {
  return createHash('sha256').update(JSON.stringify(config)).digest('base64url').slice(0, 22)
}

/** The part of a configuration that places new sessions. */
function current(config: PlacementConfig): string {
  return JSON.stringify([config.stores, config.placement, config.copies])
}

/** Whether two managers read with other settings (unknown for older managers: no). */
export function readSettingsDiffer(ours: PlacementConfig, theirs: PlacementConfig): boolean {
  const known = (config: PlacementConfig): boolean =>
    typeof config.readQuorum === 'number' && typeof config.readLeaseMillis === 'number'
  if (!known(ours) || !known(theirs)) return false
  return theirs.readQuorum !== ours.readQuorum || theirs.readLeaseMillis !== ours.readLeaseMillis
}

/**
 * Whether two managers' configurations conflict: they read with different settings (see
 * {@link readSettingsDiffer}), or they place new sessions differently and neither is the
 * announced transition from the other (`previousStores` naming the other's store list).
 * Copies are compared in both directions of a transition as they are.
 */
export function configsConflict(ours: PlacementConfig, theirs: PlacementConfig): boolean {
  if (readSettingsDiffer(ours, theirs)) return true
  if (current(ours) === current(theirs)) return false
  const sameStores = (a: string[] | null, b: string[]): boolean =>
    a !== null && JSON.stringify(a) === JSON.stringify(b)
  if (sameStores(ours.previousStores, theirs.stores)) return false
  if (sameStores(theirs.previousStores, ours.stores)) return false
  return true
}

/**
 * Publishes this manager's configuration on every store (a row in `<table>_peers`, renewed while
 * it runs, withdrawn on close) and reads the others' every round: a live configuration that
 * conflicts emits `config-mismatch` once (again if it goes away and comes back), and stays in
 * {@link mismatches} while it is live. A store without the peers table (a schema applied by an
 * older version) is skipped until `applySchema` runs.
 */
export class ConfigGuard {
  readonly #stores: readonly Store[]
  readonly #config: PlacementConfig
  readonly #fingerprint: string
  readonly #clock: Clock
  readonly #emit: Emit
  readonly #manager = randomBytes(8).toString('hex')
  readonly #statements: ReturnType<typeof peerStatements>
  readonly #timer: JitteredTimer
  /** When this manager's row was last stored on each store (until then, every round tries). */
  readonly #publishedAt = new Map<Store, number>()
  #mismatches = new Map<string, ConfigMismatch>()
  /** The store ids live peers configure (now or before a change of the store list), as of the last round. */
  #peerStoreIds: ReadonlySet<string> = new Set()
  /** How long each store id has gone unlisted by this manager and every live peer. */
  readonly #listed = new ListedStores(2 * MAX_PEER_STORE_IDS)
  /** Performance time until which a peer with other read settings counts as running. */
  #readSettingsDifferUntil = Number.NEGATIVE_INFINITY
  readonly #intervalMillis: number
  /** How far another app server's clock may run from this one's (half `sweepGraceSeconds`). */
  readonly #clockToleranceMillis: number

  constructor(
    stores: readonly Store[],
    table: string,
    config: PlacementConfig,
    intervalMillis: number,
    clock: Clock,
    emit: Emit,
    clockToleranceMillis = 0,
  ) {
    this.#stores = stores
    this.#config = config
    this.#fingerprint = configFingerprint(config)
    this.#clock = clock
    this.#emit = emit
    this.#statements = peerStatements(table)
    this.#intervalMillis = Math.max(intervalMillis, MIN_INTERVAL_MILLIS)
    this.#clockToleranceMillis = clockToleranceMillis
    this.#timer = new JitteredTimer(this.#intervalMillis, () => this.#check())
  }

  /** Conflicting configurations of live peers, as of the last round. */
  get mismatches(): ConfigMismatch[] {
    // Copies: what a caller does with them must not change what the guard decides or reports.
    return [...this.#mismatches.values()].map((mismatch) => structuredClone(mismatch))
  }

  /**
   * The store ids that live peers configure, now or before a change of the store list, as of
   * the last round: during a change, an app server still on the old list learns of the stores
   * the new one added, whose hints its sweeps must respect (maintenance/sweeper.ts).
   */
  get peerStoreIds(): ReadonlySet<string> {
    return this.#peerStoreIds
  }

  /**
   * How long no live app server (this one included) has listed `storeId` in its stores or
   * `previousStores`, as far as this manager has watched (see {@link ListedStores}).
   */
  unlistedMillis(storeId: string): number {
    return this.#listed.unlistedMillis(storeId)
  }

  /** Whether this manager has seen `storeId` listed (see {@link ListedStores}). */
  everListed(storeId: string): boolean {
    return this.#listed.everListed(storeId)
  }

  /**
   * Whether every live peer reads with this manager's settings, as of the last rounds: a lone
   * read on the lease may then trust that writes missing a store were announced (read-lease.ts).
   * A peer seen with other settings counts for two rounds after it was last seen, so that the
   * stores its last writes missed are marked behind (its hints) before lone reads resume.
   */
  get readSettingsAgree(): boolean {
    return performance.now() >= this.#readSettingsDifferUntil
  }

  /** Runs a round now, outside the schedule (after the schema was applied, say). */
  async checkNow(): Promise<void> {
    await this.#check()
  }

  /** Runs a first round now, then one per interval. */
  start(): Promise<void> {
    return this.#timer.runNow()
  }

  /**
   * Stops the rounds and withdraws this manager's row from the stores in service, waiting
   * {@link WITHDRAW_WAIT_MILLIS} at most: a row left behind expires on its own.
   */
  async stop(): Promise<void> {
    await this.#timer.stop()
    const withdrawn = Promise.allSettled(
      this.#stores
        .filter((store) => store.standing.up)
        .map((store) => store.background(this.#statements.withdrawPeer, this.#manager)),
    )
    let timer: NodeJS.Timeout | undefined
    await Promise.race([
      withdrawn,
      new Promise((resolve) => (timer = setTimeout(resolve, WITHDRAW_WAIT_MILLIS))),
    ])
    clearTimeout(timer)
  }

  async #check(): Promise<void> {
    const now = this.#clock.now()
    const row: PeerRow = {
      manager: this.#manager,
      fingerprint: this.#fingerprint,
      config: JSON.stringify(this.#config),
      expiresAtMillis: now + PUBLISHED_TTL_MILLIS,
    }
    // A peer's row expires on its own clock: one whose clock runs behind this one's (as far
    // as the clock tolerance goes) is live until then on this clock too. Judged on this clock
    // alone, a sweeper running 30 s ahead would see no peer, and spare none of their hints.
    const liveAfter = now - this.#clockToleranceMillis
    const heard = await Promise.allSettled(
      this.#stores.map(async (store) => {
        // Until it is stored (a store down, a table not created yet), every round tries.
        const since = performance.now() - (this.#publishedAt.get(store) ?? -RENEW_MILLIS)
        if (since >= RENEW_MILLIS) {
          await store.background(this.#statements.publishPeer, row)
          this.#publishedAt.set(store, performance.now())
          await store.background(this.#statements.sweepPeers, liveAfter)
        }
        return store.background(this.#statements.livePeers, {
          now: liveAfter,
          manager: this.#manager,
        })
      }),
    )
    // A round that heard no store knows nothing new: what the last one knew stands (an empty
    // list would let sweeps delete rows that peers' hints hold back).
    if (!heard.some((result) => result.status === 'fulfilled')) {
      debug('config guard: no store answered the round')
      return
    }
    const live = new Map<string, PlacementConfig>()
    const peerStoreIds = new Set<string>()
    for (const result of heard) {
      if (result.status === 'rejected') {
        debug('config guard: %s', errorSummary(result.reason))
        continue
      }
      for (const peer of result.value) {
        if (peer.fingerprint === this.#fingerprint || live.has(peer.fingerprint)) continue
        const theirs = parseConfig(peer.config)
        if (theirs === null) continue
        const previous = Array.isArray(theirs.previousStores) ? theirs.previousStores : []
        for (const id of [...theirs.stores, ...previous]) {
          if (typeof id === 'string' && peerStoreIds.size < MAX_PEER_STORE_IDS) peerStoreIds.add(id)
        }
        if (configsConflict(this.#config, theirs)) live.set(peer.fingerprint, theirs)
      }
    }
    this.#peerStoreIds = peerStoreIds
    const { stores, previousStores } = this.#config
    this.#listed.heard([...stores, ...(previousStores ?? []), ...peerStoreIds])
    const previousMismatches = this.#mismatches
    this.#mismatches = new Map(
      [...live].map(([fingerprint, theirs]) => [
        fingerprint,
        { fingerprint, ours: this.#config, theirs },
      ]),
    )
    for (const [fingerprint, mismatch] of this.#mismatches) {
      if (readSettingsDiffer(this.#config, mismatch.theirs)) {
        this.#readSettingsDifferUntil = performance.now() + 2 * this.#intervalMillis
      }
      if (!previousMismatches.has(fingerprint)) {
        this.#emit('config-mismatch', structuredClone(mismatch))
      }
    }
  }
}

function parseConfig(text: string): PlacementConfig | null {
  try {
    const config = JSON.parse(text) as PlacementConfig
    return Array.isArray(config.stores) ? config : null
  } catch {
    return null
  }
}
