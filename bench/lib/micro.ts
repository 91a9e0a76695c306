import { performance } from 'node:perf_hooks'

/**
 * Average time of one synchronous call, in microseconds: `fn` runs once per input, over all
 * `inputs`, after an untimed pass over the first tenth of them (so the JIT has compiled it).
 * For per-operation CPU costs too small to see in a round trip.
 */
export function microsPerCall<T>(inputs: readonly T[], fn: (input: T) => unknown): number {
  if (inputs.length === 0) throw new TypeError('inputs must not be empty')
  let sink = 0
  const warm = Math.max(1, Math.floor(inputs.length / 10))
  for (let index = 0; index < warm; index++) if (fn(inputs[index] as T) !== undefined) sink++
  const started = performance.now()
  for (const input of inputs) if (fn(input) !== undefined) sink++
  const elapsed = performance.now() - started
  // Using the sink keeps the calls from being optimised away.
  if (sink < 0) console.log(sink)
  return (elapsed * 1000) / inputs.length
}
