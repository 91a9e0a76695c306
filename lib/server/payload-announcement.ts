/** Whether a line-protocol command line announces a payload, and of how many bytes. */

const SPACE = 0x20
const CR = 0x0d
const DIGIT_0 = 0x30
const DIGIT_9 = 0x39
const OPENING_BRACE = 0x7b
/** A byte count has at most 10 digits (docs/server.md). */
const MAX_COUNT_DIGITS = 10
/** The longest command word that can announce a payload: `put_all`. */
const MAX_WORD_BYTES = 7

/**
 * Decides whether a command line announces a payload, and of how many bytes: the one decision
 * both the parser of an accepted `put` / `put_all` line and the refusal of any other line (a
 * bad key, a line that is not UTF-8, a line too long to keep...) take, so that they can never
 * disagree on where the next request starts. By the grammar (docs/server.md), a line announces
 * a payload when its command is `put` or `put_all` and its last argument is a byte count,
 * unless it is a `put_all` of inline JSON (its argument starts with `{`): that one is whole on
 * its line, whatever it ends in. Arguments are what spaces separate, so spaces after the count
 * change nothing. A CR right before the LF is not part of the line.
 *
 * It reads raw bytes (only ASCII matters: a line need not be UTF-8) and may be fed a line in
 * pieces: a line too long to keep is judged as it passes, in constant memory.
 */
export class PayloadAnnouncement {
  /** The command word so far (ASCII lower case), until the first space ends it. */
  #word = ''
  #command: 'put' | 'put_all' | undefined
  /** Nothing that follows can make the line announce a payload. */
  #never = false
  #arguments = 0
  #inArgument = false
  /** The digits of the last argument, while it is all digits and short enough to be a count. */
  #digits = ''
  #lastIsCount = false
  /** A CR not yet known to be the line's last byte. */
  #pendingCr = false

  /** Feeds the next bytes of the line (never its LF). */
  feed(bytes: Buffer): void {
    for (let i = 0; i < bytes.length && !this.#never; i++) {
      if (this.#pendingCr) {
        this.#pendingCr = false
        this.#byte(CR)
      }
      const byte = bytes[i] as number
      if (byte === CR) this.#pendingCr = true
      else this.#byte(byte)
    }
  }

  /** The byte count the line announces, once it has been fed whole; undefined: no payload. */
  bytes(): number | undefined {
    if (this.#never || this.#command === undefined || !this.#lastIsCount) return undefined
    return Number(this.#digits)
  }

  #byte(byte: number): void {
    if (this.#command === undefined) {
      this.#commandByte(byte)
      return
    }
    if (byte === SPACE) {
      this.#inArgument = false
      return
    }
    if (!this.#inArgument) {
      this.#inArgument = true
      this.#arguments++
      this.#digits = ''
      this.#lastIsCount = true
      if (this.#command === 'put_all' && this.#arguments === 1 && byte === OPENING_BRACE) {
        this.#never = true
        return
      }
    }
    if (!this.#lastIsCount) return
    if (byte >= DIGIT_0 && byte <= DIGIT_9 && this.#digits.length < MAX_COUNT_DIGITS) {
      this.#digits += String.fromCharCode(byte)
    } else {
      this.#lastIsCount = false
      this.#digits = ''
    }
  }

  #commandByte(byte: number): void {
    if (byte !== SPACE) {
      if (this.#word.length === MAX_WORD_BYTES) this.#never = true
      // ASCII lower case only: command names are case-insensitive ASCII.
      else this.#word += String.fromCharCode(byte >= 0x41 && byte <= 0x5a ? byte + 0x20 : byte)
      return
    }
    if (this.#word === 'put' || this.#word === 'put_all') this.#command = this.#word
    else this.#never = true
  }
}

/** The byte count a whole command line (without its LF) announces; see {@link PayloadAnnouncement}. */
export function announcedPayload(line: Buffer): number | undefined {
  const announcement = new PayloadAnnouncement()
  announcement.feed(line)
  return announcement.bytes()
}
