/** A repeating background timer, ±20% jitter, that never keeps the process alive. */

/**
 * Runs `tick` every `intervalMillis` (±20%, so that app servers started together do not all
 * probe or sweep at the same moment), one tick at a time: the next wait starts when a tick has
 * settled. The timer is unref'd: it never keeps the process alive.
 */
export class JitteredTimer {
  readonly #intervalMillis: number
  readonly #tick: () => Promise<unknown>
  #timer: NodeJS.Timeout | undefined
  #running: Promise<unknown> | undefined
  #stopped = false
  #paused = false

  constructor(intervalMillis: number, tick: () => Promise<unknown>) {
    this.#intervalMillis = intervalMillis
    this.#tick = tick
  }

  /** Runs a tick now, then on the interval; resolves when the first tick has settled. */
  runNow(): Promise<void> {
    this.#run()
    return this.#running?.then(() => undefined) ?? Promise.resolve()
  }

  /** Runs the first tick after one interval. */
  start(): void {
    this.#schedule()
  }

  /** Stops the timer; resolves once a tick in flight has settled. */
  async stop(): Promise<void> {
    this.#stopped = true
    clearTimeout(this.#timer)
    await this.#running
  }

  /**
   * Stops the ticks until {@link resume} (a tick in flight settles; none follows it). For a
   * tick with nothing to do for a while, which its owner knows when there is again.
   */
  pause(): void {
    this.#paused = true
    clearTimeout(this.#timer)
  }

  /**
   * After {@link pause}: runs a tick now (or once the one in flight settled), then on the
   * interval. Does nothing unless paused, so it is cheap to call on every read.
   */
  resume(): void {
    if (!this.#paused) return
    this.#paused = false
    if (this.#running === undefined) this.#run()
  }

  #run(): void {
    if (this.#stopped || this.#paused) return
    this.#running = this.#tick()
      .catch(() => {})
      .finally(() => {
        this.#running = undefined
        this.#schedule()
      })
  }

  #schedule(): void {
    if (this.#stopped || this.#paused || this.#intervalMillis === 0) return
    const jitter = 0.8 + Math.random() * 0.4
    this.#timer = setTimeout(() => this.#run(), Math.round(this.#intervalMillis * jitter))
    this.#timer.unref()
  }
}
