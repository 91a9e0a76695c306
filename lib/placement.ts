import CRC32 from 'crc-32'
import seedrandom from 'seedrandom'

/**
 * The seed of a session's order: CRC-32 (IEEE) of the id's UTF-8 bytes, as an unsigned
 * 32-bit integer.
 */
export function placementSeed(sessionId: string): number {
  return CRC32.str(sessionId) >>> 0
}

/**
 * The classic seeded shuffle: the store ids sorted (by UTF-16 code units, as
 * `Array.prototype.sort` does), then a Fisher–Yates shuffle driven by
 * `seedrandom(String(seed))`: for i from n-1 down to 1, j = floor(rng() * (i + 1)),
 * swap items i and j. The result is the session's order of preference.
 *
 * This function is the product's data contract: the same id and store ids give the same
 * order in every process and every version. Its golden vectors live in test/placement.ts
 * and docs/placement.md and must never change.
 */
export function classicOrder(storeIds: readonly string[], sessionId: string): string[] {
  const order = [...storeIds].sort()
  shuffleInPlace(order, seedrandom(String(placementSeed(sessionId))))
  return order
}

function shuffleInPlace<T>(items: T[], random: () => number): void {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1))
    const item = items[i] as T
    items[i] = items[j] as T
    items[j] = item
  }
}

/**
 * Computes orders as indexes into the sorted store list and keeps the most recent ones,
 * because the shuffle (an ARC4 key schedule per call) costs more than the rest of an
 * operation's own work.
 */
export class OrderCache {
  readonly #sortedIds: readonly string[]
  readonly #indexOf: ReadonlyMap<string, number>
  readonly #capacity: number
  readonly #orders = new Map<string, readonly number[]>()

  constructor(storeIds: readonly string[], capacity: number) {
    this.#sortedIds = [...storeIds].sort()
    this.#indexOf = new Map(this.#sortedIds.map((id, index) => [id, index]))
    this.#capacity = capacity
  }

  /** The session's order as indexes into {@link sortedIds}. */
  order(sessionId: string): readonly number[] {
    const cached = this.#orders.get(sessionId)
    if (cached !== undefined) return cached
    const order = classicOrder(this.#sortedIds, sessionId).map(
      (id) => this.#indexOf.get(id) as number,
    )
    if (this.#capacity > 0) {
      if (this.#orders.size >= this.#capacity) {
        // Maps iterate in insertion order, so the first key is the oldest entry.
        this.#orders.delete(this.#orders.keys().next().value as string)
      }
      this.#orders.set(sessionId, order)
    }
    return order
  }

  /** The store ids, sorted; orders index into this list. */
  get sortedIds(): readonly string[] {
    return this.#sortedIds
  }
}
