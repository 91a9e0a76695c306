/**
 * The classic placement's random numbers: the sequence `seedrandom(String(seed))` yields
 * (seedrandom 3's default generator), computed here without the package's call.
 *
 * That generator is ARC4 keyed by the seed text's character codes, its first 256 outputs
 * dropped; each number is built from 6 output bytes, then more bytes until it has 52
 * significant bits, scaled into [0, 1). A call of the package does all that and more: it
 * builds a closure and three methods, and mixes the generator's state into its process-wide
 * entropy pool (a 256-character string, hashed), none of which changes the numbers. For a
 * session whose order is not cached, that made placement cost about 4× what this does
 * (5.3 against 1.3 µs on the benchmark machine), on every operation once a manager serves more
 * sessions than `orderCacheSize`. test/placement.ts checks this against the package itself.
 */

/**
 * The generator's state: a permutation of the bytes, and its two indices. One for the module:
 * a shuffle runs from its key schedule to its last number without yielding.
 */
const state = new Uint8Array(256)
const IDENTITY = Uint8Array.from({ length: 256 }, (_, index) => index)
let stateI = 0
let stateJ = 0

/** 2^48, 2^52 and 2^53: a number starts as 6 bytes and is filled up to 52 significant bits. */
const START_DENOMINATOR = 2 ** 48
const SIGNIFICANCE = 2 ** 52
const OVERFLOW = 2 ** 53

/**
 * Shuffles `items` in place (Fisher–Yates, from the last item down) with the numbers of
 * `seedrandom(String(seed))`. `seed` is an unsigned 32-bit integer (the placement's seed), so
 * the key is 1 to 10 decimal digits: within what is reproduced here (the package folds keys
 * of more than 256 characters, or wider ones, into 256 bytes first).
 */
export function seededShuffle<T>(items: T[], seed: number): void {
  if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) {
    throw new RangeError('seededShuffle takes an unsigned 32-bit seed')
  }
  keyWith(String(seed))
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(nextNumber() * (i + 1))
    const item = items[i] as T
    items[i] = items[j] as T
    items[j] = item
  }
}

/** The key schedule, then the 256 dropped outputs (only their swaps matter). */
function keyWith(seedText: string): void {
  const s = state
  s.set(IDENTITY)
  const keyLength = seedText.length
  let j = 0
  for (let i = 0; i < 256; i++) {
    const t = s[i] as number
    j = (j + seedText.charCodeAt(i % keyLength) + t) & 255
    s[i] = s[j] as number
    s[j] = t
  }
  let i = 0
  j = 0
  for (let n = 0; n < 256; n++) {
    i = (i + 1) & 255
    const t = s[i] as number
    j = (j + t) & 255
    s[i] = s[j] as number
    s[j] = t
  }
  stateI = i
  stateJ = j
}

/** One output byte of the generator. */
function nextByte(): number {
  const s = state
  const i = (stateI + 1) & 255
  const t = s[i] as number
  const j = (stateJ + t) & 255
  s[i] = s[j] as number
  s[j] = t
  stateI = i
  stateJ = j
  return s[((s[i] as number) + t) & 255] as number
}

/** The next number in [0, 1), with seedrandom's arithmetic step for step. */
function nextNumber(): number {
  let numerator = 0
  for (let n = 0; n < 6; n++) numerator = numerator * 256 + nextByte()
  let denominator = START_DENOMINATOR
  let extra = 0
  while (numerator < SIGNIFICANCE) {
    numerator = (numerator + extra) * 256
    denominator *= 256
    extra = nextByte()
  }
  while (numerator >= OVERFLOW) {
    numerator /= 2
    denominator /= 2
    extra >>>= 1
  }
  return (numerator + extra) / denominator
}
