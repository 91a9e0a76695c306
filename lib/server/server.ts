/** startSessionServer: the options of the session server, checked, and its two listeners. */
import type { AddressInfo } from 'node:net'
import { InvalidOptionError } from '../errors.js'
import type { SessionManagerOptions } from '../options.js'
import { SessionManager, createSessionManager } from '../session-manager.js'
import { AccessControl, checkAllowList, checkToken, isLoopbackHost } from './access.js'
import { HttpApi } from './http-api.js'
import { LineServer } from './line-server.js'
import { PrometheusRegistry } from '../metrics/prometheus.js'
import { millisOption, secondsOption, wholeNumber } from '../validate.js'

/** What a line client sends before its token (line-protocol.ts); the two must fit in a line. */
const AUTH_LINE_PREFIX = 'auth '

/** Options of {@link startSessionServer}. */
export interface SessionServerOptions {
  /**
   * The manager whose sessions are served, or the options to create one; a manager created
   * here is closed by {@link SessionServer.close}, one passed in is left open.
   */
  manager: SessionManager | SessionManagerOptions
  /** TCP port of the line protocol; 0 picks a free one (see {@link SessionServer.lineAddress}). */
  port: number
  /**
   * Address to listen on. Anything but a loopback address (`127.0.0.1`, `::1`, `localhost`)
   * requires {@link token}.
   * @default '127.0.0.1'
   */
  host?: string
  /** TCP port of the HTTP/JSON API; 0 picks a free one. Without it there is no HTTP API. */
  httpPort?: number
  /**
   * Shared secret clients must present: `auth <token>` on the line protocol,
   * `Authorization: Bearer <token>` over HTTP. At least 16 characters, no whitespace.
   * @default none (only allowed on a loopback host)
   */
  token?: string
  /**
   * Client addresses allowed to connect: single addresses or CIDR ranges, IPv4 or IPv6
   * (`['10.0.0.0/8', '::1']`). Others get `FORBIDDEN` (403).
   * @default every client that can reach `host`
   */
  allow?: string[]
  /**
   * Longest command line of the line protocol, in bytes; longer lines are skipped and answered
   * `LINE_TOO_LONG`.
   * @default 65536
   */
  maxLineBytes?: number
  /**
   * Largest line-protocol payload and HTTP body, in bytes (`VALUE_TOO_LARGE`, 413), and the
   * largest session a line client may build up before it commits (one already larger may be
   * shrunk, not grown).
   * @default 1048576
   */
  maxBodyBytes?: number
  /**
   * Open connections per listener; a client over the limit gets `TOO_MANY_CONNECTIONS` (503).
   * @default 1024
   */
  maxConnections?: number
  /**
   * A connection without traffic for this long is closed (its lock released). 0 never closes
   * (a client whose machine vanished is still found out by TCP keepalive, probing after 30 s).
   * @default 60000
   */
  idleTimeoutMillis?: number
  /**
   * With a `token`, a line client must send `auth <token>` within this long, or it is
   * disconnected (`AUTH_TIMEOUT`): unauthenticated clients cannot hold connection slots.
   * @default 10000
   */
  authTimeoutMillis?: number
  /**
   * A client that leaves its answers unread for this long (the server's send buffer for it
   * stays full) is disconnected, and the lock its open session holds is released.
   * @default 10000
   */
  sendTimeoutMillis?: number
  /**
   * An HTTP request must arrive whole (headers and body) within this long, its headers within
   * ten seconds at most; slower clients get 408 and are disconnected.
   * @default 30000
   */
  requestTimeoutMillis?: number
  /**
   * Lease of the lock that `open <id> w` takes. The server renews it while the connection
   * holds the session; the lease only matters if the server process dies.
   * @default 10000
   */
  lockLeaseMillis?: number
  /**
   * How long `open <id> w` waits for another holder before `LOCK_TIMEOUT`.
   * @default 5000
   */
  lockWaitMillis?: number
  /**
   * A line-protocol `commit` that changes nothing but the session's expiry, and would move it
   * by less than this many seconds, is not written (connect-mongo's `touchAfter`): a PHP app
   * commits on every request, and with `copies: 2` each commit is two writes. The stored expiry
   * then lags by less than this, never more. 0 writes every commit.
   * @default 0
   */
  touchAfterSeconds?: number
  /**
   * How long {@link SessionServer.close} lets HTTP requests in flight finish before cutting
   * their connections.
   * @default 10000
   */
  shutdownTimeoutMillis?: number
}

/** What {@link SessionServer.stats} reports. */
export interface SessionServerStats {
  /** Open connections of the line protocol and of the HTTP API. */
  lineConnections: number
  httpConnections: number
  /**
   * Bytes held for clients: line requests read ahead and answers the OS has not taken yet.
   * Bounded per connection by about twice `maxBodyBytes`.
   */
  bufferedBytes: number
  /** Line requests parsed ahead of the one each connection runs: at most 64 per connection. */
  queuedRequests: number
}

/** A running session server, from {@link startSessionServer}. */
export interface SessionServer {
  /** Where the line protocol listens. */
  readonly lineAddress: AddressInfo
  /** Where the HTTP API listens; null without `httpPort`. */
  readonly httpAddress: AddressInfo | null
  /** Connections and buffered bytes now. */
  stats(): SessionServerStats
  /**
   * Graceful shutdown: stops accepting connections, lets commands and requests in flight
   * finish, releases every lock connections hold, then closes the manager if the server
   * created it. Safe to call more than once.
   */
  close(): Promise<void>
}

/**
 * Serves a {@link SessionManager}'s sessions to programs in any language: a line protocol
 * over TCP (open, lock, get, put, commit; modelled on HTTP_SessionServer) and, with
 * `httpPort`, an HTTP/JSON API. See docs/server.md for both.
 *
 * @example
 * const server = await startSessionServer({ manager, port: 6870, httpPort: 6871 })
 * // ... later, e.g. on SIGTERM:
 * await server.close()
 *
 * @throws {@link InvalidOptionError} naming the option, before anything listens (e.g. a
 * non-loopback `host` without `token`), or when `host` cannot be listened on.
 */
export async function startSessionServer(options: SessionServerOptions): Promise<SessionServer> {
  const settings = resolveServerOptions(options)
  const ownsManager = !(options.manager instanceof SessionManager)
  const manager =
    options.manager instanceof SessionManager
      ? options.manager
      : createSessionManager(options.manager)
  const access = new AccessControl({ token: settings.token, allow: settings.allow })
  const serverMetrics = serverRegistry(() => stats())
  const metrics = (): string => manager.prometheusMetrics() + serverMetrics.render()
  const shared = { manager, access, metrics, ...settings }
  const line = new LineServer(shared)
  const http = settings.httpPort === undefined ? null : new HttpApi(shared)
  const stats = (): SessionServerStats => ({
    lineConnections: line.connections,
    httpConnections: http?.connections ?? 0,
    bufferedBytes: line.bufferedBytes + (http?.bufferedBytes ?? 0),
    queuedRequests: line.queuedRequests,
  })
  let lineAddress: AddressInfo
  let httpAddress: AddressInfo | null = null
  try {
    lineAddress = await line.listen(settings.port, settings.host)
    if (http !== null) httpAddress = await http.listen(settings.httpPort as number, settings.host)
  } catch (error) {
    await Promise.allSettled([line.close(), http?.close(0)])
    if (ownsManager) await manager.close()
    throw hostError(error)
  }
  let closing: Promise<void> | undefined
  return {
    lineAddress,
    httpAddress,
    stats,
    close() {
      closing ??= (async () => {
        await Promise.all([line.close(), http?.close(settings.shutdownTimeoutMillis)])
        if (ownsManager) await manager.close()
      })()
      return closing
    },
  }
}

type ResolvedServerOptions = Required<
  Omit<SessionServerOptions, 'manager' | 'httpPort' | 'token' | 'allow'>
> &
  Pick<SessionServerOptions, 'httpPort' | 'token' | 'allow'>

/** Applies defaults and checks every option; throws {@link InvalidOptionError} naming the option. */
export function resolveServerOptions(options: SessionServerOptions): ResolvedServerOptions {
  if (options === null || typeof options !== 'object') {
    throw new InvalidOptionError('options', 'must be an object')
  }
  if (options.manager === null || typeof options.manager !== 'object') {
    throw new InvalidOptionError(
      'manager',
      'must be a SessionManager or createSessionManager options',
    )
  }
  const host = options.host ?? '127.0.0.1'
  if (typeof host !== 'string' || host === '') {
    throw new InvalidOptionError('host', 'must be an address to listen on, e.g. 127.0.0.1')
  }
  const token = checkToken(options.token)
  if (token === undefined && !isLoopbackHost(host)) {
    throw new InvalidOptionError(
      'token',
      'is required when host is not a loopback address (127.0.0.0/8, ::1, localhost): anyone who can reach the port could read every session',
    )
  }
  const port = portOption('port', options.port)
  const httpPort =
    options.httpPort === undefined ? undefined : portOption('httpPort', options.httpPort)
  if (httpPort !== undefined && httpPort !== 0 && httpPort === port) {
    throw new InvalidOptionError('httpPort', 'must differ from port')
  }
  const maxLineBytes = wholeNumber('maxLineBytes', options.maxLineBytes, 65_536, {
    min: 64,
    max: 16_777_216,
    unit: 'bytes',
  })
  if (token !== undefined && AUTH_LINE_PREFIX.length + token.length > maxLineBytes) {
    // Named without the token's length: nothing about a secret goes into an error.
    throw new InvalidOptionError(
      'maxLineBytes',
      'must leave room for the "auth <token>" line (5 bytes more than the token)',
    )
  }
  return {
    host,
    port,
    httpPort,
    token,
    allow: checkAllowList(options.allow),
    maxLineBytes,
    maxBodyBytes: wholeNumber('maxBodyBytes', options.maxBodyBytes, 1_048_576, {
      min: 1,
      max: 16_777_216,
      unit: 'bytes',
    }),
    maxConnections: wholeNumber('maxConnections', options.maxConnections, 1024, {
      min: 1,
      max: 100_000,
    }),
    idleTimeoutMillis: millisOption(
      'idleTimeoutMillis',
      options.idleTimeoutMillis,
      60_000,
      0,
      86_400_000,
    ),
    authTimeoutMillis: millisOption(
      'authTimeoutMillis',
      options.authTimeoutMillis,
      10_000,
      1,
      3_600_000,
    ),
    sendTimeoutMillis: millisOption(
      'sendTimeoutMillis',
      options.sendTimeoutMillis,
      10_000,
      1,
      3_600_000,
    ),
    requestTimeoutMillis: millisOption(
      'requestTimeoutMillis',
      options.requestTimeoutMillis,
      30_000,
      1,
      3_600_000,
    ),
    lockLeaseMillis: millisOption(
      'lockLeaseMillis',
      options.lockLeaseMillis,
      10_000,
      100,
      86_400_000,
    ),
    lockWaitMillis: millisOption('lockWaitMillis', options.lockWaitMillis, 5_000, 0, 3_600_000),
    touchAfterSeconds: secondsOption(
      'touchAfterSeconds',
      options.touchAfterSeconds,
      0,
      0,
      31_536_000,
    ),
    shutdownTimeoutMillis: millisOption(
      'shutdownTimeoutMillis',
      options.shutdownTimeoutMillis,
      10_000,
      0,
      3_600_000,
    ),
  }
}

/** The server's own gauges, after the manager's metrics on `/metrics`. */
function serverRegistry(stats: () => SessionServerStats): PrometheusRegistry {
  const registry = new PrometheusRegistry()
  registry.gauge('session_shards_server_connections', 'Open connections, by protocol.', () => [
    { labels: { protocol: 'line' }, value: stats().lineConnections },
    { labels: { protocol: 'http' }, value: stats().httpConnections },
  ])
  registry.gauge(
    'session_shards_server_buffered_bytes',
    'Bytes held for clients: requests read ahead and answers not yet taken by the OS.',
    () => [{ labels: {}, value: stats().bufferedBytes }],
  )
  return registry
}

/** Listen errors that blame `host`; Node's messages repeat it, and the option's value must not show. */
const HOST_ERROR_CODES = new Set(['ENOTFOUND', 'EAI_AGAIN', 'EAI_FAIL', 'EADDRNOTAVAIL'])

/** A listen error caused by `host` as an {@link InvalidOptionError}; any other error as it is. */
function hostError(error: unknown): unknown {
  const code = (error as { code?: unknown } | null)?.code
  if (typeof code !== 'string' || !HOST_ERROR_CODES.has(code)) return error
  return new InvalidOptionError(
    'host',
    `must be an address of this machine, or a name that resolves to one (listening failed with ${code})`,
  )
}

function portOption(name: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0 || value > 65_535) {
    throw new InvalidOptionError(name, 'must be a TCP port number from 0 to 65535')
  }
  return value
}
