/** Bytes that arrive in pieces (socket reads), copied into one buffer as they come. */

/** The first buffer for bytes whose total is not known in advance. */
const MIN_CAPACITY = 1024

const EMPTY = Buffer.alloc(0)

/**
 * Bytes that arrive in pieces, kept in one buffer: a client that sends one byte per TCP
 * segment costs its bytes, not a Buffer per read (some 200 bytes of heap apiece). The buffer
 * is sized once when the total is known (`expectedBytes`); otherwise it doubles, never beyond
 * `maxBytes`, so it holds at most about twice what it received. Each piece is copied once
 * (plus what a doubling moves).
 */
export class ByteBuffer {
  readonly #maxBytes: number
  #buffer: Buffer
  #length = 0

  constructor(maxBytes: number, expectedBytes = 0) {
    this.#maxBytes = maxBytes
    const size = Math.min(expectedBytes, maxBytes)
    this.#buffer = size > 0 ? Buffer.allocUnsafe(size) : EMPTY
  }

  /** Bytes received since the buffer was made, or last taken or cleared. */
  get length(): number {
    return this.#length
  }

  /** Copies `piece` in. The caller keeps the total within `maxBytes` (beyond, it grows anyway). */
  append(piece: Uint8Array): void {
    const length = this.#length + piece.length
    if (length > this.#buffer.length) {
      const doubled = Math.min(this.#maxBytes, Math.max(MIN_CAPACITY, 2 * this.#buffer.length))
      const grown = Buffer.allocUnsafe(Math.max(length, doubled))
      this.#buffer.copy(grown, 0, 0, this.#length)
      this.#buffer = grown
    }
    this.#buffer.set(piece, this.#length)
    this.#length = length
  }

  /** The bytes received; the buffer starts over, empty. */
  take(): Buffer {
    const bytes = this.#buffer.subarray(0, this.#length)
    this.clear()
    return bytes
  }

  /** Drops the bytes received (and the memory they held). */
  clear(): void {
    this.#buffer = EMPTY
    this.#length = 0
  }
}
