/**
 * Session bytes at rest: compressed (zlib deflate or brotli) above a size threshold and
 * encrypted (AES-256-GCM with key ids, so keys rotate), around whatever codec encodes the data.
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto'
import {
  brotliCompressSync,
  brotliDecompressSync,
  constants as zlibConstants,
  deflateRawSync,
  inflateRawSync,
} from 'node:zlib'
import type { RowCodec, SessionCodec, SessionData } from './codec.js'
import { checkedEncoding, hasProtoKey, isPlainObject, protoKeyError } from './codec.js'
import { InvalidOptionError } from './errors.js'
import { booleanOption, wholeNumber } from './validate.js'

/** How sessions are compressed before they are stored (see {@link SessionManagerOptions}). */
export type CompressionAlgorithm = 'deflate' | 'brotli'

/** The `compression` option. */
export type CompressionOption =
  | CompressionAlgorithm
  | {
      algorithm: CompressionAlgorithm
      /**
       * Sessions whose encoding is shorter than this stay plain: compressing small rows costs
       * CPU and saves little.
       * @default 1024
       */
      thresholdBytes?: number
    }

/** One key of the `encryption` option. */
export interface EncryptionKey {
  /** Stored with each row it encrypts: 1 to 64 of `A–Z a–z 0–9 _ - .`. */
  id: string
  /** 32 bytes: a Buffer, or a string of them in base64, base64url or hex. */
  key: Buffer | string
}

/** The `encryption` option: the first key encrypts, every key decrypts. */
export interface EncryptionOption {
  keys: readonly EncryptionKey[]
  /**
   * Also read rows that are not encrypted for their session's id: plain rows and
   * compressed-only ones (written before encryption was turned on), and rows of the first
   * encrypted format, which earlier builds wrote without binding them to an id. Off, such a
   * row is an unreadable copy, so that someone who can write to the stores cannot plant data
   * in a session (or copy an unbound row from another). Turn it on only while migrating, until
   * every session has been written since (or has expired).
   * @default false
   */
  acceptPlainRows?: boolean
}

/** Marks a row written through this layer; a codec's own output never starts with a NUL byte and "ss". */
const MAGIC = Buffer.from([0x00, 0x73, 0x73])
/**
 * Format 1: the header (and key id) authenticated; what compressed-only rows are written in.
 * Format 2: encrypted rows, which authenticate their session's id too, so that a row moved to
 * another id does not decrypt there. With encryption on, format-1 rows (and plain ones) read
 * only with `acceptPlainRows`.
 */
const FORMAT_UNBOUND = 1
const FORMAT_BOUND = 2
const HEADER_BYTES = MAGIC.length + 3
/**
 * The most a row's data decompresses to: what a store's data column (MEDIUMBLOB) holds. Not
 * `maxSessionBytes`: a session stored before that limit was lowered reads, compressed or not,
 * so that the app can shrink it.
 */
const MAX_DECOMPRESSED_BYTES = 16_777_215
const COMPRESSION_IDS: Record<CompressionAlgorithm | 'none', number> = {
  none: 0,
  deflate: 1,
  brotli: 2,
}
const IV_BYTES = 12
const TAG_BYTES = 16
const KEY_ID = /^[A-Za-z0-9_.-]{1,64}$/
const DEFAULT_THRESHOLD_BYTES = 1024
/** Brotli's quality 11 (its default) is far too slow for a request path; 5 compresses well. */
const BROTLI_QUALITY = 5

interface ResolvedCompression {
  algorithm: CompressionAlgorithm
  thresholdBytes: number
}

interface ResolvedKey {
  id: string
  idBytes: Buffer
  key: Buffer
}

interface ResolvedEncryption {
  keys: ResolvedKey[]
  acceptPlainRows: boolean
}

/** Checks the `compression` option; null when compression is off. */
export function resolveCompression(value: unknown): ResolvedCompression | null {
  if (value === undefined || value === false) return null
  const given = typeof value === 'string' ? { algorithm: value } : value
  if (given === null || typeof given !== 'object') {
    throw new InvalidOptionError('compression', 'must be "deflate", "brotli" or { algorithm }')
  }
  const { algorithm, thresholdBytes } = given as { algorithm?: unknown; thresholdBytes?: unknown }
  if (algorithm !== 'deflate' && algorithm !== 'brotli') {
    throw new InvalidOptionError('compression.algorithm', 'must be "deflate" or "brotli"')
  }
  return {
    algorithm,
    thresholdBytes: wholeNumber(
      'compression.thresholdBytes',
      thresholdBytes,
      DEFAULT_THRESHOLD_BYTES,
      { min: 0, max: 16_777_215, unit: 'bytes' },
    ),
  }
}

/** Checks the `encryption` option (never echoing a key); null when encryption is off. */
export function resolveEncryption(value: unknown): ResolvedEncryption | null {
  if (value === undefined) return null
  const { keys, acceptPlainRows } = (value ?? {}) as { keys?: unknown; acceptPlainRows?: unknown }
  if (!Array.isArray(keys) || keys.length === 0) {
    throw new InvalidOptionError('encryption.keys', 'must be a non-empty list of { id, key }')
  }
  return {
    keys: resolveKeys(keys),
    acceptPlainRows: booleanOption('encryption.acceptPlainRows', acceptPlainRows, false),
  }
}

function resolveKeys(keys: unknown[]): ResolvedKey[] {
  const seen = new Set<string>()
  return keys.map((entry: unknown, index) => {
    const { id, key } = (entry ?? {}) as { id?: unknown; key?: unknown }
    const name = `encryption.keys[${index}]`
    if (typeof id !== 'string' || !KEY_ID.test(id)) {
      throw new InvalidOptionError(`${name}.id`, 'must be 1 to 64 of A-Z a-z 0-9 _ - .')
    }
    if (seen.has(id)) throw new InvalidOptionError(`${name}.id`, 'is given twice')
    seen.add(id)
    const bytes = keyBytes(key)
    if (bytes === null) {
      throw new InvalidOptionError(
        `${name}.key`,
        'must be 32 bytes: a Buffer, or base64, base64url or hex text of 32 bytes',
      )
    }
    return { id, idBytes: Buffer.from(id, 'ascii'), key: bytes }
  })
}

function keyBytes(key: unknown): Buffer | null {
  if (Buffer.isBuffer(key)) return key.length === 32 ? Buffer.from(key) : null
  if (typeof key !== 'string') return null
  if (/^[0-9a-fA-F]{64}$/.test(key)) return Buffer.from(key, 'hex')
  if (/^[A-Za-z0-9+/_-]{43}=?$/.test(key)) {
    const bytes = Buffer.from(key, 'base64')
    return bytes.length === 32 ? bytes : null
  }
  return null
}

/**
 * The codec sessions are stored with: `inner`'s bytes, compressed and encrypted as configured
 * (plain, exactly as `inner` made them, when neither is on), an encrypted row bound to its
 * session's id. Reading accepts every format, so rows stay readable across turning compression
 * on or off and encryption off (an encrypted row needs its key); with encryption on, only rows
 * encrypted for their id, unless `acceptPlainRows`. Writes encode at most `maxBytes`;
 * decompression never yields more than a store's data column holds. Decoded data with an own
 * `__proto__` key (no write stores one) is refused.
 */
export function atRestCodec(
  inner: SessionCodec,
  compression: ResolvedCompression | null,
  encryption: ResolvedEncryption | null,
  maxBytes: number,
): RowCodec {
  const format = new AtRestFormat(compression, encryption)
  return {
    encode: (data: SessionData, sessionId: string) =>
      format.seal(plainBytes(inner, data, maxBytes), sessionId),
    decode: (bytes: Buffer, sessionId: string) => {
      const data = decodeQuietly(inner, format.open(bytes, sessionId))
      // No write stores anything else: a row put there by hand or by another program (JSON
      // `null`, a number, an array) is unreadable, not session data callers would trip over.
      if (!isPlainObject(data)) throw new Error('the row does not decode to an object')
      // One own-key lookup, not a walk: a framework's restore copies top-level keys with
      // `session[key] = value`, which for "__proto__" replaces the session's prototype.
      if (hasProtoKey(data)) throw protoKeyError()
      return data
    },
  }
}

/** The codec's encoding, checked (checkedEncoding) before compressing, so that no row decompresses to more than maxBytes. */
function plainBytes(inner: SessionCodec, data: SessionData, maxBytes: number): Buffer {
  return checkedEncoding(inner, inner.encode(data), maxBytes)
}

/** Whether bytes begin with the at-rest header's magic (a plain JSON row never does). */
function beginsLikeHeader(bytes: Buffer): boolean {
  return bytes[0] === MAGIC[0] && bytes[1] === MAGIC[1] && bytes[2] === MAGIC[2]
}

/** The at-rest row format: `\0ss`, format, compression id, key id length, key id, then the body. */
class AtRestFormat {
  readonly #compression: ResolvedCompression | null
  readonly #keys: ResolvedKey[] | null
  /** Whether rows not encrypted for their id are refused: encryption on, no `acceptPlainRows`. */
  readonly #boundOnly: boolean

  constructor(compression: ResolvedCompression | null, encryption: ResolvedEncryption | null) {
    this.#compression = compression
    this.#keys = encryption?.keys ?? null
    this.#boundOnly = encryption !== null && !encryption.acceptPlainRows
  }

  seal(plain: Buffer, sessionId: string): Buffer {
    let body = plain
    let compressionId = COMPRESSION_IDS.none
    const compression = this.#compression
    if (compression !== null && plain.length >= compression.thresholdBytes) {
      const packed = compress(compression.algorithm, plain)
      if (packed.length < plain.length) {
        body = packed
        compressionId = COMPRESSION_IDS[compression.algorithm]
      }
    }
    const key = this.#keys?.[0]
    if (key === undefined) {
      // A plain row is told from an at-rest one by its first bytes: a codec's bytes that begin
      // like a header get one (format 1, uncompressed), or they would read back as a bad row.
      if (compressionId === COMPRESSION_IDS.none && !beginsLikeHeader(plain)) return plain
      return Buffer.concat([header(FORMAT_UNBOUND, compressionId, Buffer.alloc(0)), body])
    }
    const head = header(FORMAT_BOUND, compressionId, key.idBytes)
    const iv = randomBytes(IV_BYTES)
    const cipher = createCipheriv('aes-256-gcm', key.key, iv)
    cipher.setAAD(boundHeader(head, sessionId))
    const sealed = Buffer.concat([cipher.update(body), cipher.final()])
    return Buffer.concat([head, iv, sealed, cipher.getAuthTag()])
  }

  /**
   * The codec's bytes of session `sessionId`'s stored row; throws (an unreadable copy) on
   * anything malformed, on an encrypted row sealed for another id, and, with encryption on
   * (and no `acceptPlainRows`), on a row not encrypted for its id: anyone who can write to the
   * stores can write one.
   */
  open(stored: Buffer, sessionId: string): Buffer {
    // Every read passes here: a plain row (JSON starts with "{") is told by its first byte.
    if (!beginsLikeHeader(stored) || stored.length < HEADER_BYTES) {
      if (this.#boundOnly) throw unboundRowError('a plain row')
      return stored // a plain row
    }
    const format = stored[MAGIC.length] as number
    const compressionId = stored[MAGIC.length + 1] as number
    const idLength = stored[MAGIC.length + 2] as number
    if (format !== FORMAT_UNBOUND && format !== FORMAT_BOUND) {
      throw new Error(`unknown at-rest format ${format}`)
    }
    if (format === FORMAT_UNBOUND && this.#boundOnly) {
      throw unboundRowError(idLength === 0 ? 'a compressed, unencrypted row' : 'a format-1 row')
    }
    const headEnd = HEADER_BYTES + idLength
    // A bound row is an encrypted one: anything else claiming the format was not written here.
    if (format === FORMAT_BOUND && idLength === 0) throw new Error('a bound row without a key')
    let body = stored.subarray(headEnd)
    if (idLength > 0) {
      const id = stored.subarray(HEADER_BYTES, headEnd).toString('ascii')
      const key = this.#keys?.find((candidate) => candidate.id === id)
      if (key === undefined) throw new Error(`no encryption key with the row's key id`)
      if (body.length < IV_BYTES + TAG_BYTES) throw new Error('an encrypted row cut short')
      const decipher = createDecipheriv('aes-256-gcm', key.key, body.subarray(0, IV_BYTES))
      const head = stored.subarray(0, headEnd)
      decipher.setAAD(format === FORMAT_BOUND ? boundHeader(head, sessionId) : head)
      decipher.setAuthTag(body.subarray(body.length - TAG_BYTES))
      body = Buffer.concat([
        decipher.update(body.subarray(IV_BYTES, body.length - TAG_BYTES)),
        decipher.final(), // throws when the row was tampered with
      ])
    }
    if (compressionId === COMPRESSION_IDS.none) return body
    if (compressionId === COMPRESSION_IDS.deflate) {
      return inflateRawSync(body, { maxOutputLength: MAX_DECOMPRESSED_BYTES })
    }
    if (compressionId === COMPRESSION_IDS.brotli) {
      return brotliDecompressSync(body, { maxOutputLength: MAX_DECOMPRESSED_BYTES })
    }
    throw new Error(`unknown compression ${compressionId}`)
  }
}

/**
 * The inner codec's decoding of a row, whose failure says only what kind of error it was:
 * JSON.parse's message quotes the bytes (a row another codec wrote, such as a PHP session
 * being migrated, holds that session's secrets), and the `unreadable-copy` event that reports
 * it goes to logs.
 */
function decodeQuietly(inner: SessionCodec, plain: Buffer): SessionData {
  try {
    return inner.decode(plain)
  } catch (error) {
    const kind = error instanceof Error ? error.name : typeof error
    throw new Error(`the codec could not decode the row (${kind}; the data is not quoted)`)
  }
}

function unboundRowError(what: string): Error {
  return new Error(
    `${what}, not encrypted for its session's id: refused while encryption is on (encryption.acceptPlainRows reads such rows while migrating)`,
  )
}

function header(format: number, compressionId: number, keyId: Buffer): Buffer {
  return Buffer.concat([MAGIC, Buffer.from([format, compressionId, keyId.length]), keyId])
}

/**
 * What an encrypted row of format 2 authenticates: its header, then its session's id. The
 * header ends with the key id, whose length it gives, so the id's bytes cannot shift into it.
 */
function boundHeader(head: Buffer, sessionId: string): Buffer {
  return Buffer.concat([head, Buffer.from(sessionId, 'utf8')])
}

function compress(algorithm: CompressionAlgorithm, plain: Buffer): Buffer {
  if (algorithm === 'deflate') return deflateRawSync(plain)
  return brotliCompressSync(plain, {
    params: {
      [zlibConstants.BROTLI_PARAM_QUALITY]: BROTLI_QUALITY,
      [zlibConstants.BROTLI_PARAM_SIZE_HINT]: plain.length,
    },
  })
}
