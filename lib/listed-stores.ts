/**
 * How long each store id has gone unlisted by every live app server, as one manager has watched
 * the published configurations (config-guard.ts). Sweeps delete the hints kept for a store only
 * once no app server has listed it for a whole hint window: a single look could fall between an
 * app server's restart and its first publication, and delete hints a live store still needs.
 */
export class ListedStores {
  /** Performance time of the last round that listed each id, least recently listed first. */
  readonly #listedAt = new Map<string, number>()
  /** Performance time of the first round that heard a store; undefined before. */
  #watchingSince: number | undefined
  readonly #maxIds: number

  /** Remembers at most `maxIds` ids; those listed longest ago are forgotten first. */
  constructor(maxIds: number) {
    this.#maxIds = maxIds
  }

  /** A round heard the live configurations (at least one store answered): `ids` are listed. */
  heard(ids: Iterable<string>, now: number = performance.now()): void {
    this.#watchingSince ??= now
    for (const id of ids) {
      this.#listedAt.delete(id)
      this.#listedAt.set(id, now)
    }
    // Forgotten ids count from the first round, which is longer ago: they only ever go sooner.
    for (const id of this.#listedAt.keys()) {
      if (this.#listedAt.size <= this.#maxIds) break
      this.#listedAt.delete(id)
    }
  }

  /** Whether a round listed `id` (among the ids remembered). */
  everListed(id: string): boolean {
    return this.#listedAt.has(id)
  }

  /**
   * How long `id` has gone unlisted as far as this manager has watched: since a round last
   * listed it, else since the first round that heard a store; 0 before that round, or while
   * listed.
   */
  unlistedMillis(id: string, now: number = performance.now()): number {
    if (this.#watchingSince === undefined) return 0
    return Math.max(0, now - (this.#listedAt.get(id) ?? this.#watchingSince))
  }
}
