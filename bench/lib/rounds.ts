import type { LoadResult, Operation } from './load.js'
import { runLoad } from './load.js'
import type { Progress } from './progress.js'
import { mergeResults } from './stats.js'

/** One side of a comparison, e.g. the library or raw mysql2. */
export interface Contender {
  name: string
  operation: Operation
  /** Errors that count as failed operations instead of stopping the run (see {@link runLoad}). */
  tolerate?: (error: unknown) => boolean
}

/** Options of {@link runRounds}. */
export interface RoundsOptions {
  inFlight: number
  /** Rounds per contender; each contender's total time is `rounds × roundMillis`. */
  rounds: number
  roundMillis: number
  /** Untimed run of each contender before the first round (connections, JIT, caches). */
  warmupMillis: number
  /** Called before each timed or warm-up round starts. */
  onRound?: (info: { contender: string; round: number; rounds: number; warmup: boolean }) => void
}

/**
 * {@link RoundsOptions} for a case timed as {@link caseTiming} says, with each round reported
 * as `label · contender · round n/N` (or `warm-up`) to `progress`.
 */
export function timedRounds(
  timing: { secondsPerCase: number; rounds: number; warmupMillis: number },
  inFlight: number,
  label: string,
  progress: Progress,
): RoundsOptions {
  return {
    inFlight,
    rounds: timing.rounds,
    roundMillis: (timing.secondsPerCase * 1000) / timing.rounds,
    warmupMillis: timing.warmupMillis,
    onRound: ({ contender, round, rounds, warmup }) =>
      progress.update(
        `${label} · ${contender} · ` + (warmup ? 'warm-up' : `round ${round}/${rounds}`),
      ),
  }
}

/** One contender's outcome: its rounds joined, and each round on its own (to judge the noise). */
export interface ContenderResult {
  merged: LoadResult
  rounds: LoadResult[]
}

/**
 * Runs contenders in short alternating rounds and sums each one's rounds, so that slow drift
 * on a shared machine (other processes, CPU frequency, the database's buffer pool and purge
 * threads) falls on every contender alike instead of on whichever ran last. The order
 * alternates too (A B, B A, A B, ...), so no contender always runs right after another.
 *
 * @returns Each contender's result, by name.
 */
export async function runRounds(
  contenders: readonly Contender[],
  options: RoundsOptions,
): Promise<Map<string, ContenderResult>> {
  const { inFlight, rounds, roundMillis, warmupMillis } = options
  if (!Number.isSafeInteger(rounds) || rounds < 1) {
    throw new TypeError(`rounds option must be a positive integer; got ${rounds}`)
  }
  if (warmupMillis > 0) {
    for (const contender of contenders) {
      options.onRound?.({ contender: contender.name, round: 0, rounds, warmup: true })
      await runLoad(contender.operation, {
        inFlight,
        durationMillis: warmupMillis,
        ...(contender.tolerate === undefined ? {} : { tolerate: contender.tolerate }),
      })
    }
  }
  const results = new Map<string, LoadResult[]>(contenders.map((contender) => [contender.name, []]))
  for (let round = 0; round < rounds; round++) {
    const order = round % 2 === 0 ? contenders : [...contenders].reverse()
    for (const contender of order) {
      options.onRound?.({ contender: contender.name, round: round + 1, rounds, warmup: false })
      const result = await runLoad(contender.operation, {
        inFlight,
        durationMillis: roundMillis,
        ...(contender.tolerate === undefined ? {} : { tolerate: contender.tolerate }),
      })
      results.get(contender.name)?.push(result)
    }
  }
  return new Map(
    [...results].map(([name, runs]) => [name, { merged: mergeResults(runs), rounds: runs }]),
  )
}
