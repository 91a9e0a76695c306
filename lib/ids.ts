/** Session ids: generated, checked, and (with secrets) signed. */
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto'
import { InvalidOptionError, InvalidSessionIdError } from './errors.js'

/** Bytes of randomness in a generated id: 192 bits, 32 URL-safe characters. */
const ID_BYTES = 24
/** Characters of a signed id's random part (a generated id), before its "." and signature. */
const RANDOM_LENGTH = 32
/** A signed id: the random part, ".", and the 43-character base64url HMAC-SHA256 of it. */
const SIGNED_ID = /^[A-Za-z0-9_-]{32}\.[A-Za-z0-9_-]{43}$/

/** Accepted unsigned ids: URL-safe base64 characters (and "." for ids made elsewhere), 16 to 128 long. */
const ID_PATTERN = /^[A-Za-z0-9_.-]{16,128}$/

/** A new random session id: 192 bits from `crypto.randomBytes`, base64url, 32 characters. */
export function generateSessionId(): string {
  return randomBytes(ID_BYTES).toString('base64url')
}

/** Whether `id` has the form of a session id this library accepts (signatures aside). */
export function isValidSessionId(id: unknown): id is string {
  return typeof id === 'string' && ID_PATTERN.test(id)
}

/**
 * The key an id that breaks this library's rules is kept under: `h-` and the base64url
 * SHA-256 of the id's UTF-8 bytes, 45 characters that follow the rules. A collision with
 * another id would need a SHA-256 collision; an id that happens to be spelled like a key can
 * only reach the session of an id whose hash it carries, which takes knowing that id.
 */
export function derivedSessionKey(id: string): string {
  // UTF-8 has no form for an unpaired surrogate: each would be hashed as U+FFFD, and ids that
  // differ only there would share a key.
  if (LONE_SURROGATE.test(id)) {
    throw new InvalidSessionIdError(
      'it holds an unpaired UTF-16 surrogate, which has no UTF-8 form',
    )
  }
  return `h-${createHash('sha256').update(id, 'utf8').digest('base64url')}`
}

/** A surrogate code unit that is not half of a pair (with the u flag, pairs are one code point). */
const LONE_SURROGATE = /[\uD800-\uDFFF]/u

/** Throws {@link InvalidSessionIdError} unless `id` is a well-formed session id. */
export function assertSessionId(id: unknown): asserts id is string {
  if (typeof id !== 'string')
    throw new InvalidSessionIdError(`expected a string, got ${typeOf(id)}`)
  if (id.length < 16 || id.length > 128) {
    throw new InvalidSessionIdError(`length ${id.length} is outside 16 to 128`)
  }
  if (!ID_PATTERN.test(id)) {
    throw new InvalidSessionIdError('only letters, digits, "_", "-" and "." are allowed')
  }
}

/**
 * The id check every session operation makes: well formed ({@link assertSessionId}) and, with
 * a signer (`secrets`), signed by one of its secrets.
 */
export function checkSessionId(
  id: unknown,
  signer: Pick<IdSigner, 'verify'> | null,
): asserts id is string {
  assertSessionId(id)
  signer?.verify(id)
}

/**
 * Signs and checks ids with HMAC-SHA256: `<32-char random part>.<43-char signature>`. The first
 * secret signs; every secret verifies, so secrets rotate by adding the new one first and
 * dropping the old one once no id signed with it is alive.
 */
export class IdSigner {
  readonly #keys: readonly Buffer[]
  readonly #acceptUnsigned: boolean

  constructor(secrets: readonly string[], acceptUnsigned: boolean) {
    this.#keys = secrets.map((secret) => Buffer.from(secret, 'utf8'))
    this.#acceptUnsigned = acceptUnsigned
  }

  /** A new random id, signed with the first secret. */
  generate(): string {
    const random = generateSessionId()
    return `${random}.${this.#sign(random, this.#keys[0] as Buffer).toString('base64url')}`
  }

  /**
   * Throws {@link InvalidSessionIdError} unless `id` is signed by one of the secrets, or is an
   * accepted unsigned id. An id shaped like a signed one (32 characters, ".", 43) is always
   * held to its signature; with `acceptUnsigned`, any other id is taken as one from before
   * signing, dots included (the id rules allow "." and stores migrated from made such ids).
   */
  verify(id: string): void {
    if (!SIGNED_ID.test(id)) {
      if (this.#acceptUnsigned) return
      throw new InvalidSessionIdError(
        id.includes('.')
          ? 'a signed id is 32 characters, ".", then a 43-character signature'
          : 'the id is not signed (set acceptUnsignedIds to accept older ids)',
      )
    }
    const random = id.slice(0, RANDOM_LENGTH)
    const signature = id.slice(RANDOM_LENGTH + 1)
    // The signature's canonical text is compared, not its decoded bytes: 43 characters carry
    // two bits more than the 32 bytes, so decoding alone would let four spellings verify.
    const given = Buffer.from(signature, 'utf8')
    const valid = this.#keys.some((key) =>
      timingSafeEqual(given, Buffer.from(this.#sign(random, key).toString('base64url'), 'utf8')),
    )
    if (!valid) throw new InvalidSessionIdError('the signature does not match any secret')
  }

  #sign(random: string, key: Buffer): Buffer {
    return createHmac('sha256', key).update(random).digest()
  }
}

function typeOf(value: unknown): string {
  try {
    return value === null ? 'null' : Array.isArray(value) ? 'an array' : typeof value
  } catch {
    return 'an unusable object' // a revoked Proxy
  }
}

/**
 * The signer of the `secrets` option, or null without it. The array is copied once, then
 * checked: the signer must get the secrets that were checked (a getter or a Proxy could answer
 * a second read with an empty key, whose ids anyone can sign). Never echoes a value.
 */
export function signerOf(secrets: unknown, acceptUnsigned: boolean): IdSigner | null {
  if (secrets === undefined) return null
  const list: unknown[] = Array.isArray(secrets) ? Array.from(secrets as unknown[]) : []
  if (
    list.length === 0 ||
    !list.every((secret) => typeof secret === 'string' && secret.length >= 32)
  ) {
    throw new InvalidOptionError(
      'secrets',
      'must be a non-empty array of strings of at least 32 characters',
    )
  }
  return new IdSigner(list as string[], acceptUnsigned)
}
