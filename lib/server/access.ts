/** Who may use the session server: the allow-list of addresses and the token. */
import { createHash, timingSafeEqual } from 'node:crypto'
import { BlockList, isIP } from 'node:net'
import { InvalidOptionError } from '../errors.js'

/** Tokens shorter than this are refused: a bearer token is the only thing between a network and every session. */
export const MIN_TOKEN_LENGTH = 16

/**
 * Who may talk to the session server: an optional allow-list of client addresses (single
 * addresses or CIDR ranges, IPv4 or IPv6) and an optional shared bearer token. The token is
 * compared in constant time and kept in a private field, so it never shows in `inspect` or a
 * stack trace.
 */
export class AccessControl {
  readonly #allow: BlockList | null
  readonly #tokenDigest: Buffer | null

  constructor(options: { token?: string | undefined; allow?: readonly string[] | undefined }) {
    this.#allow = options.allow === undefined ? null : allowList(options.allow)
    this.#tokenDigest = options.token === undefined ? null : digest(options.token)
  }

  /** True when clients must present the token (HTTP `Authorization: Bearer`, line `auth`). */
  get requiresToken(): boolean {
    return this.#tokenDigest !== null
  }

  /** Whether a client at `address` (a socket's `remoteAddress`) may connect at all. */
  allowsAddress(address: string | undefined): boolean {
    if (this.#allow === null) return true
    if (address === undefined) return false
    const plain = unmapIpv4(address)
    const family = isIP(plain)
    if (family === 0) return false
    return this.#allow.check(plain, family === 4 ? 'ipv4' : 'ipv6')
  }

  /**
   * Whether an HTTP request's `Host` header may be answered. Without a token the server listens
   * on a loopback address only, and a page a browser loads from elsewhere could still reach it
   * under a name of its own that resolves to 127.0.0.1 (DNS rebinding), reading and writing
   * sessions as if same-origin: only loopback names are answered then. With a token, any.
   */
  allowsHostHeader(host: string | undefined): boolean {
    if (this.#tokenDigest !== null || host === undefined) return true
    const name = host.startsWith('[') ? host.slice(1, host.indexOf(']')) : host.split(':')[0]
    return name !== undefined && isLoopbackHost(name.toLowerCase())
  }

  /** Whether `given` is the configured token; true when no token is configured. */
  tokenMatches(given: string | undefined): boolean {
    if (this.#tokenDigest === null) return true
    if (given === undefined) return false
    // Digests have the same length whatever was sent, so the comparison leaks neither content nor length.
    return timingSafeEqual(digest(given), this.#tokenDigest)
  }
}

/** Whether `host` (an address to listen on) only accepts connections from this machine. */
export function isLoopbackHost(host: string): boolean {
  if (host === 'localhost') return true
  const plain = unmapIpv4(host)
  const family = isIP(plain)
  if (family === 4) return LOOPBACK.check(plain, 'ipv4')
  if (family === 6) return LOOPBACK.check(plain, 'ipv6')
  return false
}

/** Checks an allow-list option: each entry an IPv4/IPv6 address or CIDR range; throws {@link InvalidOptionError} naming the entry. */
export function checkAllowList(entries: unknown): string[] | undefined {
  if (entries === undefined) return undefined
  allowList(entries)
  return [...(entries as string[])]
}

/** Tokens longer than this are refused: they only cost memory and line length. */
export const MAX_TOKEN_LENGTH = 1024

/**
 * A token's characters: printable ASCII without spaces. HTTP header values arrive as Latin-1,
 * so a token with other characters would never match an `Authorization` header.
 */
const TOKEN_CHARACTERS = /^[\x21-\x7e]*$/

/**
 * Checks a token option: {@link MIN_TOKEN_LENGTH} to {@link MAX_TOKEN_LENGTH} printable ASCII
 * characters, no whitespace.
 */
export function checkToken(token: unknown): string | undefined {
  if (token === undefined) return undefined
  if (
    typeof token !== 'string' ||
    token.length < MIN_TOKEN_LENGTH ||
    token.length > MAX_TOKEN_LENGTH ||
    !TOKEN_CHARACTERS.test(token)
  ) {
    throw new InvalidOptionError(
      'token',
      `must be ${MIN_TOKEN_LENGTH} to ${MAX_TOKEN_LENGTH} printable ASCII characters without whitespace (e.g. from \`openssl rand -base64 32\`)`,
    )
  }
  return token
}

const LOOPBACK = new BlockList()
LOOPBACK.addSubnet('127.0.0.0', 8, 'ipv4')
LOOPBACK.addAddress('::1', 'ipv6')

/** An allow-list from `['10.0.0.0/8', '192.168.1.20', '::1']`; throws {@link InvalidOptionError} naming the bad entry. */
function allowList(entries: unknown): BlockList {
  if (!Array.isArray(entries)) {
    throw new InvalidOptionError('allow', 'must be an array of addresses or CIDR ranges')
  }
  const list = new BlockList()
  entries.forEach((entry: unknown, index) => {
    const name = `allow[${index}]`
    if (typeof entry !== 'string') throw new InvalidOptionError(name, 'must be a string')
    const [address = '', bits, ...rest] = entry.trim().split('/')
    const plain = unmapIpv4(address)
    const family = isIP(plain)
    if (family === 0 || rest.length > 0) {
      throw new InvalidOptionError(name, 'must be an IPv4 or IPv6 address, optionally with /prefix')
    }
    const type = family === 4 ? 'ipv4' : 'ipv6'
    if (bits === undefined) {
      list.addAddress(plain, type)
      return
    }
    const prefix = Number(bits)
    if (!/^\d{1,3}$/.test(bits) || prefix > (family === 4 ? 32 : 128)) {
      throw new InvalidOptionError(
        name,
        `must have a prefix length from 0 to ${family === 4 ? 32 : 128} after "/"`,
      )
    }
    list.addSubnet(plain, prefix, type)
  })
  return list
}

/** `::ffff:10.1.2.3` (an IPv4 client on a dual-stack socket) → `10.1.2.3`. */
function unmapIpv4(address: string): string {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address)
  return mapped?.[1] ?? address
}

function digest(token: string): Buffer {
  return createHash('sha256').update(token, 'utf8').digest()
}
