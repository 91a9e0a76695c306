/** The `stores` option: each store's id and connection settings, URIs parsed without ever echoing them. */
import type { PoolOptions } from 'mysql2'
import { InvalidOptionError } from './errors.js'
import { checkReadable } from './validate.js'

/**
 * One MySQL store. Give either a `uri` (`mysql://user:pass@host:port/database`) or the
 * connection fields; any other mysql2 pool option (`ssl`, `charset`, ...) passes through.
 *
 * @example
 * { id: 'store-a', uri: 'mysql://app:secret@10.0.0.11:3306/sessions' }
 */
export interface StoreOptions extends Omit<PoolOptions, 'uri'> {
  /** Stable id of the store. Placement depends on ids, never on list position. */
  id: string
  /** `mysql://user:password@host:port/database`; the other connection fields override its parts. */
  uri?: string
}

/** A store's connection settings, with the password held apart from anything printable. */
export interface ResolvedStore {
  readonly id: string
  readonly poolOptions: PoolOptions
}

const STORE_ID = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$/

/**
 * mysql2 options that change how result rows decode, each with the one value the statements
 * read rows by (their default, but for supportBigNumbers, which the library turns on). With
 * bigNumberStrings every version would come back a string, taken for one the library never
 * minted, and every session would read as absent.
 */
const DECODING_OPTIONS: Readonly<Record<string, unknown>> = {
  bigNumberStrings: false,
  rowsAsArray: false,
  typeCast: true,
  nestTables: false,
  dateStrings: false,
  supportBigNumbers: true,
}

/** Checks a list of stores (`stores` or `previousStores`); ids unique, each one reachable somehow. */
export function resolveStores(stores: unknown, option = 'stores'): ResolvedStore[] {
  checkReadable(option, stores)
  if (!Array.isArray(stores) || stores.length === 0) {
    throw new InvalidOptionError(
      option,
      'must be a non-empty array of { id, uri } or { id, host, ... }',
    )
  }
  /** Each id seen, with the position of the store that has it. */
  const seen = new Map<string, number>()
  return stores.map((store: unknown, index) => {
    const name = `${option}[${index}]`
    checkReadable(name, store)
    if (store === null || typeof store !== 'object') {
      throw new InvalidOptionError(name, 'must be an object with an id')
    }
    const { id, uri, ...rest } = store as StoreOptions
    if (typeof id !== 'string' || !STORE_ID.test(id)) {
      throw new InvalidOptionError(
        `${name}.id`,
        'must be 1 to 64 characters of letters, digits, ".", "_", ":" or "-", starting with a letter or digit',
      )
    }
    const earlier = seen.get(id)
    if (earlier !== undefined) {
      throw new InvalidOptionError(`${name}.id`, `is the id of ${option}[${earlier}] too`)
    }
    seen.set(id, index)
    for (const [option, expected] of Object.entries(DECODING_OPTIONS)) {
      const given: unknown = (rest as Record<string, unknown>)[option]
      if (given !== undefined && given !== expected) {
        throw new InvalidOptionError(
          `${name}.${option}`,
          `changes how result rows decode, which session-shards relies on: leave it out (or ${String(expected)})`,
        )
      }
    }
    const fromUri = uri === undefined ? {} : parseStoreUri(`${name}.uri`, uri)
    const poolOptions: PoolOptions = { ...fromUri, ...rest }
    if (typeof poolOptions.host !== 'string' && typeof poolOptions.socketPath !== 'string') {
      throw new InvalidOptionError(name, 'needs a uri, a host or a socketPath')
    }
    if (typeof poolOptions.database !== 'string' || poolOptions.database === '') {
      throw new InvalidOptionError(name, 'needs a database (in the uri path or as database)')
    }
    return { id, poolOptions }
  })
}

/**
 * Parses `mysql://user:password@host:port/database`. Errors describe the fault without
 * repeating the URI, which holds the password.
 */
export function parseStoreUri(name: string, uri: unknown): PoolOptions {
  if (typeof uri !== 'string') throw new InvalidOptionError(name, 'must be a string')
  let url: URL
  try {
    url = new URL(uri)
  } catch {
    throw new InvalidOptionError(
      name,
      'is not a valid URI (expected mysql://user:password@host:port/database)',
    )
  }
  if (url.protocol !== 'mysql:' && url.protocol !== 'mariadb:') {
    throw new InvalidOptionError(name, 'must start with mysql:// or mariadb://')
  }
  if (url.hostname === '') throw new InvalidOptionError(name, 'has no host')
  // A "/" in the password ends the authority early: the rest, password and host, would be
  // taken for the database, and shown wherever the database is. (With a user parsed, an "@"
  // in the path is the database's own.)
  if (url.username === '' && url.pathname.includes('@')) {
    throw new InvalidOptionError(
      name,
      'has an unencoded "/" in its user or password: URL-encode it (%2F), and "@" (%40)',
    )
  }
  const database = decodeUriPart(name, url.pathname.replace(/^\//, ''))
  if (database === '' || database.includes('/')) {
    throw new InvalidOptionError(
      name,
      'must name one database in its path, e.g. mysql://host/sessions',
    )
  }
  const port = url.port === '' ? 3306 : Number(url.port)
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1')
  const options: PoolOptions = { host, port, database }
  if (url.username !== '') options.user = decodeUriPart(name, url.username)
  if (url.password !== '') options.password = decodeUriPart(name, url.password)
  return options
}

function decodeUriPart(name: string, part: string): string {
  try {
    return decodeURIComponent(part)
  } catch {
    // Never echo the part: it may be the password.
    throw new InvalidOptionError(name, 'has a malformed %-escape')
  }
}
