/**
 * `session-shards import connect-redis`: the keys connect-redis wrote (`<prefix><id>`, the
 * session as JSON, a time to live from the cookie), read with SCAN in pages. Needs the `redis`
 * package (node-redis), which apps on connect-redis already have; it is loaded only here.
 */
import { UsageError } from '../command.js'
import type { SourceRow } from '../imported-session.js'
import { driverErrorCode, type ImportSource, type SourceKind } from './source.js'

/** connect-redis's key prefix, unless its `prefix` option changed it. */
const DEFAULT_PREFIX = 'sess:'
const MAX_PREFIX_LENGTH = 256
const CONNECT_TIMEOUT_MILLIS = 10_000
/** How long one command on the source may take. */
const COMMAND_MILLIS = 120_000
/** PTTL's answers for a key that is gone and for one that never expires. */
const KEY_GONE = -2
const NO_EXPIRY = -1
/** What a key name's bytes that are not UTF-8 decode to. */
const REPLACEMENT_CHARACTER = '\uFFFD'

type RedisModule = typeof import('redis')
type RedisClient = ReturnType<RedisModule['createClient']>

export const connectRedis: SourceKind = {
  options: { prefix: { type: 'string' } },
  schemes: ['redis:', 'rediss:'],
  uriForm: 'redis://user:pass@host:6379/0',
  pathRequired: false,
  create(values, uri, batchSize) {
    return new KeySource(uri, keyPrefix(values['prefix']), batchSize)
  },
}

/** `--prefix`, checked: printable, bounded; the message never repeats it. */
function keyPrefix(prefix: string | boolean | undefined = DEFAULT_PREFIX): string {
  if (
    typeof prefix !== 'string' ||
    prefix.length > MAX_PREFIX_LENGTH ||
    /[\u0000-\u001f\u007f]/.test(prefix)
  ) {
    throw new UsageError(
      `--prefix must be at most ${MAX_PREFIX_LENGTH} characters without control characters`,
    )
  }
  return prefix
}

/** A SCAN pattern that matches keys starting with `prefix` and nothing else. */
export function prefixPattern(prefix: string): string {
  return `${prefix.replace(/[*?[\]\\^]/g, '\\$&')}*`
}

class KeySource implements ImportSource {
  readonly where: Record<string, string>
  readonly name: string
  readonly #uri: URL
  readonly #prefix: string
  readonly #batchSize: number
  #redis: RedisModule | undefined
  #client: RedisClient | undefined

  constructor(uri: URL, prefix: string, batchSize: number) {
    this.#uri = uri
    this.#prefix = prefix
    this.#batchSize = batchSize
    this.where = { prefix }
    this.name = `the keys ${prefixPattern(prefix)}`
  }

  async open(): Promise<void> {
    const redis = (this.#redis = await loadRedis())
    const client = redis.createClient({
      url: this.#uri.href,
      // One attempt: an import that cannot reach its source says so and stops.
      socket: { connectTimeout: CONNECT_TIMEOUT_MILLIS, reconnectStrategy: false },
      disableOfflineQueue: true,
    })
    // node-redis also emits what a command's rejection reports; without a listener it throws.
    client.on('error', () => undefined)
    try {
      await client.connect()
    } catch (error) {
      // With no reconnecting, a failed connect leaves the client closed already.
      if (client.isOpen) client.destroy()
      throw new Error(`could not connect to the source (${this.errorCode(error)})`)
    }
    this.#client = client.withCommandOptions({ timeout: COMMAND_MILLIS }) as RedisClient
  }

  /** Every key of the database: the pages hold at most that many. */
  async count(): Promise<number> {
    return this.#open().dbSize()
  }

  /** Every key under the prefix: Redis itself drops a key once its time to live is up. */
  async *pages(): AsyncIterable<readonly SourceRow[]> {
    const client = this.#open()
    const match = prefixPattern(this.#prefix)
    let cursor = '0'
    do {
      const page = await client.scan(cursor, { MATCH: match, COUNT: this.#batchSize })
      cursor = page.cursor
      if (page.keys.length === 0) continue
      // Sent together: node-redis writes the commands of one tick as one pipeline.
      const [values, ttls] = await Promise.all([
        client.mGet(page.keys),
        Promise.all(page.keys.map((key) => client.pTTL(key))),
      ])
      // A time to live counts from when the server answered: about now.
      const answeredAt = Date.now()
      const rows: SourceRow[] = []
      page.keys.forEach((key, index) => {
        const ttl = ttls[index] ?? KEY_GONE
        // Expired or deleted since SCAN saw it: nothing to import. Unless its name is not UTF-8:
        // SCAN's answer then holds U+FFFD where its bytes were, so MGET and PTTL asked for
        // another name. Such a key is no id connect-redis wrote (a JS string's UTF-8 never
        // decodes to U+FFFD unless it held one): counted unreadable below (data null), not lost.
        if (ttl === KEY_GONE && !key.includes(REPLACEMENT_CHARACTER)) return
        rows.push({
          id: key.slice(this.#prefix.length),
          // null: a key of another type (a hash, a list) under the prefix, not a session.
          data: values[index] ?? null,
          expiresAt: ttl === NO_EXPIRY ? undefined : answeredAt + ttl,
        })
      })
      yield rows
    } while (cursor !== '0')
  }

  errorCode(error: unknown): string {
    const code = driverErrorCode(error)
    if (code !== 'unknown error' || !(error instanceof Error)) return code
    // A server's error reply starts with its code: WRONGPASS, NOAUTH, NOPERM, LOADING.
    if (this.#redis !== undefined && error instanceof this.#redis.ErrorReply) {
      return /^([A-Z]{2,32})\b/.exec(error.message)?.[1] ?? code
    }
    // node-redis's own failures are classes without a code: ConnectionTimeoutError, TimeoutError.
    const name = error.constructor.name
    return /^[A-Za-z]{1,64}Error$/.test(name) && name !== 'Error' ? name : code
  }

  async close(): Promise<void> {
    await this.#client?.close().catch(() => undefined)
  }

  #open(): RedisClient {
    if (this.#client === undefined) throw new Error('the source is not open')
    return this.#client
  }
}

/** The `redis` package, or a usage error that says how to install it. */
async function loadRedis(): Promise<RedisModule> {
  try {
    return await import('redis')
  } catch (error) {
    if ((error as { code?: unknown }).code === 'ERR_MODULE_NOT_FOUND') {
      throw new UsageError('import connect-redis needs the redis package: npm install redis')
    }
    throw error
  }
}
