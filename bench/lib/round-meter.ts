import type { RoundsOptions } from './rounds.js'

type RoundInfo = Parameters<NonNullable<RoundsOptions['onRound']>>[0]

/** What a {@link RoundMeter} counted for one contender over its timed rounds. */
export interface MeteredTotals {
  /** User plus system CPU time of this process, in microseconds. */
  cpuMicros: number
  /** Growth of the contender's own counter (see {@link RoundMeter}), e.g. statements sent. */
  counted: number
}

/**
 * Charges this process's CPU time to the contender whose round is running, from
 * {@link runRounds}'s `onRound` calls: a round runs from its `onRound` call to the next one
 * (or to {@link RoundMeter.finish}). Warm-up rounds are not counted. The CPU time is the whole
 * process's: the contender's own work, its driver's, the load generator's bookkeeping, and
 * whatever else runs in the process meanwhile (timers, garbage left by an earlier round).
 *
 * @example
 * const meter = new RoundMeter()
 * const outcome = await runRounds(contenders, { ...options, onRound: (info) => meter.onRound(info) })
 * meter.finish()
 * const cpuMicrosPerOp = meter.totals('library').cpuMicros / outcome.get('library')!.merged.ops
 */
export class RoundMeter {
  readonly #counter: (contender: string) => number
  readonly #totals = new Map<string, MeteredTotals>()
  #open: { contender: string; cpu: NodeJS.CpuUsage; counted: number } | undefined

  /** @param counter A running count per contender, read at each round's start and end. */
  constructor(counter: (contender: string) => number = () => 0) {
    this.#counter = counter
  }

  onRound(info: RoundInfo): void {
    this.#close()
    if (info.warmup) return
    this.#open = {
      contender: info.contender,
      counted: this.#counter(info.contender),
      cpu: process.cpuUsage(),
    }
  }

  /** Ends the last round; call once runRounds has resolved. */
  finish(): void {
    this.#close()
  }

  /** The contender's totals over its timed rounds so far. */
  totals(contender: string): MeteredTotals {
    return this.#totals.get(contender) ?? { cpuMicros: 0, counted: 0 }
  }

  #close(): void {
    const open = this.#open
    if (open === undefined) return
    const cpu = process.cpuUsage(open.cpu)
    this.#open = undefined
    const totals = this.totals(open.contender)
    this.#totals.set(open.contender, {
      cpuMicros: totals.cpuMicros + cpu.user + cpu.system,
      counted: totals.counted + this.#counter(open.contender) - open.counted,
    })
  }
}
