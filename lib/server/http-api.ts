/** The session server's HTTP/JSON API: sessions as resources, errors as JSON, every buffer and wait bounded. */
import { STATUS_CODES, createServer } from 'node:http'
import type { IncomingMessage, Server, ServerResponse } from 'node:http'
import type { AddressInfo, Socket } from 'node:net'
import type { SessionData } from '../codec.js'
import { PROMETHEUS_CONTENT_TYPE } from '../metrics/prometheus.js'
import type { SessionManager } from '../session-manager.js'
import { checkKey } from '../session-values.js'
import type { AccessControl } from './access.js'
import { drain, hasBody, readBody } from './http-body.js'
import { PipelinedRequests } from './http-pipelining.js'
import { KEEPALIVE_DELAY_MILLIS, listenOn, REFUSAL_HEADROOM } from './listen.js'
import { parseClientJson } from './client-json.js'
import { RequestError, errorReply, sessionDestroyed } from './request-error.js'

/** What the HTTP API needs from {@link startSessionServer}'s options, resolved. */
export interface HttpApiSettings {
  manager: SessionManager
  access: AccessControl
  maxBodyBytes: number
  maxConnections: number
  idleTimeoutMillis: number
  requestTimeoutMillis: number
  /** The manager's and the server's metrics in the Prometheus text format, for `/metrics`. */
  metrics: () => string
}

const utf8 = new TextDecoder('utf-8', { fatal: true })

/** A matched route: what to do, and the methods the path takes (for 405). */
interface Route {
  methods: readonly string[]
  /** Methods that carry out If-Match / If-None-Match (any other change refuses them). */
  conditional?: readonly string[]
  /** Methods that read a body; any other's is dropped first (bounded: {@link drain}). */
  readsBody?: readonly string[]
  run: (request: IncomingMessage, response: ServerResponse, method: string) => Promise<void>
}

/**
 * The HTTP/JSON API (see docs/server.md): sessions as resources under `/sessions`, errors as
 * `{ error: { code, message } }`. The allow-list and the connection limit are applied per
 * connection, the token per request, the id before the body is read.
 */
export class HttpApi {
  readonly #settings: HttpApiSettings
  readonly #server: Server
  readonly #sockets = new Set<Socket>()
  /** Connections refused (outside the allow-list, or over the limit): answered and closed. */
  readonly #refused = new WeakSet<Socket>()
  /** Each connection's requests, run one at a time. */
  readonly #pipelined = new PipelinedRequests((request, response) => {
    void this.#handle(request, response)
  })
  #closing: Promise<void> | undefined

  constructor(settings: HttpApiSettings) {
    this.#settings = settings
    const requestTimeout = settings.requestTimeoutMillis
    this.#server = createServer(
      {
        requestTimeout,
        headersTimeout: Math.min(requestTimeout, 10_000),
        // How often Node looks for requests past those timeouts (its default is 30 s).
        connectionsCheckingInterval: Math.max(100, Math.min(1000, requestTimeout / 4)),
        // A vanished client is noticed by the OS even when idleTimeoutMillis is 0.
        keepAlive: true,
        keepAliveInitialDelay: KEEPALIVE_DELAY_MILLIS,
      },
      (request, response) => this.#pipelined.enqueue(request, response),
    )
    this.#server.timeout = settings.idleTimeoutMillis
    this.#server.keepAliveTimeout = Math.min(settings.idleTimeoutMillis || 60_000, 60_000)
    this.#server.maxConnections = settings.maxConnections + REFUSAL_HEADROOM
    this.#server.on('connection', (socket: Socket) => this.#accept(socket))
  }

  /** Connections open now, and the bytes of answers they have not taken yet. */
  get connections(): number {
    return this.#sockets.size
  }

  get bufferedBytes(): number {
    let bytes = 0
    for (const socket of this.#sockets) bytes += socket.writableLength
    return bytes
  }

  listen(port: number, host: string): Promise<AddressInfo> {
    return listenOn(this.#server, port, host)
  }

  /**
   * Stops accepting connections, closes idle keep-alive connections, lets requests in flight
   * finish (each answered with `Connection: close`), and cuts whatever is still open after
   * `graceMillis`.
   */
  close(graceMillis: number): Promise<void> {
    this.#closing ??= new Promise<void>((resolve) => {
      const cut = setTimeout(() => this.#server.closeAllConnections(), graceMillis)
      cut.unref()
      this.#server.close(() => {
        clearTimeout(cut)
        resolve()
      })
      this.#server.closeIdleConnections()
    })
    return this.#closing
  }

  #accept(socket: Socket): void {
    if (!this.#settings.access.allowsAddress(socket.remoteAddress)) {
      this.#refuse(
        socket,
        new RequestError('FORBIDDEN', "Your address is not in the session server's allow-list."),
      )
    } else if (this.#sockets.size >= this.#settings.maxConnections) {
      this.#refuse(
        socket,
        new RequestError(
          'TOO_MANY_CONNECTIONS',
          `The session server has its maximum of ${this.#settings.maxConnections} connections (maxConnections); retry later.`,
        ),
      )
    } else {
      this.#sockets.add(socket)
      socket.once('close', () => this.#sockets.delete(socket))
    }
  }

  /**
   * Answers a refused connection with one response and closes it at once, whatever the client
   * sends (or does not send): it holds no slot and no parser state.
   */
  #refuse(socket: Socket, error: RequestError): void {
    this.#refused.add(socket)
    const { code, message, status } = errorReply(error)
    const body = JSON.stringify({ error: { code, message } })
    socket.end(
      `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\n` +
        'Content-Type: application/json; charset=utf-8\r\n' +
        `Content-Length: ${Buffer.byteLength(body)}\r\n` +
        (status === 503 ? 'Retry-After: 1\r\n' : '') +
        'Connection: close\r\n\r\n' +
        body,
    )
    setTimeout(() => socket.destroy(), 1000).unref()
  }

  async #handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    closeWhenShuttingDown(response, () => this.#closing !== undefined)
    response.on('finish', () => {
      if (this.#closing !== undefined) this.#server.closeIdleConnections()
    })
    if (this.#refused.has(request.socket)) {
      // Already answered by #refuse; nothing more goes out on this connection.
      request.socket.destroy()
      return
    }
    try {
      if (this.#closing !== undefined) {
        throw new RequestError('SHUTTING_DOWN', 'The session server is shutting down.')
      }
      if (!this.#settings.access.allowsHostHeader(request.headers.host)) {
        throw new RequestError(
          'FORBIDDEN',
          'Without a token this session server answers only requests for a loopback host name.',
        )
      }
      if (!this.#settings.access.tokenMatches(bearerToken(request))) {
        throw new RequestError(
          'UNAUTHORIZED',
          'This session server needs its token: send "Authorization: Bearer <token>".',
        )
      }
      const method = request.method ?? 'GET'
      const route = this.#route(request.url ?? '/')
      if (!route.methods.includes(method)) {
        response.setHeader('Allow', route.methods.join(', '))
        throw new RequestError(
          'METHOD_NOT_ALLOWED',
          `${method} is not allowed here; use ${route.methods.join(', ')}.`,
        )
      }
      if (method !== 'GET' && !(route.conditional ?? []).includes(method)) {
        refuseConditions(request)
      }
      // A body nobody needs is dropped before the request is carried out, up to a bound: left
      // to Node, all of it would be read, however large.
      const unneeded = !(route.readsBody ?? []).includes(method) && hasBody(request)
      if (unneeded && !(await drain(request, this.#settings.maxBodyBytes))) return
      await route.run(request, response, method)
    } catch (error) {
      this.#sendError(request, response, error)
    }
  }

  /** Finds the route of a path; ids and keys are checked here, before any body is read. */
  #route(url: string): Route {
    const path = url.split('?', 1)[0] as string
    const segments = path.split('/').slice(1)
    if (segments.length > 1 && segments[segments.length - 1] === '') segments.pop()
    const parts = segments.map(decodeSegment)
    const [root, id, sub, key, ...rest] = parts
    if (root === 'metrics' && id === undefined) {
      return { methods: ['GET'], run: (_request, response) => this.#metrics(response) }
    }
    if (root !== 'sessions' || rest.length > 0) throw notFound()
    if (id === undefined) {
      return {
        methods: ['POST'],
        readsBody: ['POST'],
        run: (request, response) => this.#create(request, response),
      }
    }
    // Any id is accepted; one that breaks the manager's rules is kept under a derived key.
    const session = { id, key: this.#settings.manager.sessionKey(id) }
    // With secrets, an unsigned id is refused here (locate checks it, no I/O), not after the body.
    this.#settings.manager.locate(session.key)
    if (sub === undefined) {
      return {
        methods: ['GET', 'PUT', 'PATCH', 'DELETE'],
        conditional: ['PUT'],
        readsBody: ['PUT', 'PATCH'],
        run: (request, response, method) => this.#session(request, response, method, session),
      }
    }
    if (sub === 'regenerate' && key === undefined) {
      return {
        methods: ['POST'],
        run: (_request, response) => this.#regenerate(response, session.key),
      }
    }
    if (sub === 'keys' && key !== undefined) {
      checkKey(key)
      return {
        methods: ['GET', 'PUT', 'DELETE'],
        readsBody: ['PUT'],
        run: (request, response, method) =>
          this.#value(request, response, method, session.key, key),
      }
    }
    throw notFound()
  }

  /** `/metrics`: what Prometheus scrapes (behind the token, like every route). */
  async #metrics(response: ServerResponse): Promise<void> {
    const text = this.#settings.metrics()
    response.writeHead(200, {
      'Content-Type': PROMETHEUS_CONTENT_TYPE,
      'Content-Length': Buffer.byteLength(text),
      'Cache-Control': 'no-store',
    })
    response.end(text)
  }

  async #create(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const body = await this.#readJson(request, false)
    // No body is an empty session; a body of JSON null is not an object, and is refused.
    const id = await this.#settings.manager.createSession(
      (body === undefined ? {} : body) as SessionData,
    )
    response.setHeader('Location', `/sessions/${id}`)
    sendJson(response, 201, { id })
  }

  async #session(
    request: IncomingMessage,
    response: ServerResponse,
    method: string,
    { id, key }: { id: string; key: string },
  ): Promise<void> {
    const { manager } = this.#settings
    switch (method) {
      case 'GET': {
        const current = await manager.readSession(key, { withVersion: true })
        if (current === null) throw sessionNotFound()
        response.setHeader('ETag', `"${current.version}"`)
        sendJson(response, 200, { id, version: current.version, data: current.data })
        return
      }
      case 'PUT': {
        const expectedVersion = expectedVersionOf(request)
        const body = await this.#readJson(request, true)
        const result = await manager.writeSession(
          key,
          body as SessionData,
          expectedVersion === undefined ? {} : { expectedVersion },
        )
        if (result.dropped) throw sessionDestroyed()
        response.setHeader('ETag', `"${result.version}"`)
        sendJson(response, 200, { id, version: result.version })
        return
      }
      case 'PATCH':
        await manager.putAll(key, (await this.#readJson(request, true)) as SessionData)
        sendEmpty(response)
        return
      default:
        if (!(await drain(request, this.#settings.maxBodyBytes))) return
        await manager.destroySession(key)
        sendEmpty(response)
    }
  }

  async #value(
    request: IncomingMessage,
    response: ServerResponse,
    method: string,
    id: string,
    key: string,
  ): Promise<void> {
    const { manager } = this.#settings
    switch (method) {
      case 'GET': {
        const data = await manager.readSession(id)
        if (data === null) throw sessionNotFound()
        if (!Object.hasOwn(data, key)) {
          throw new RequestError('KEY_NOT_FOUND', 'The session has no value at this key.')
        }
        sendJson(response, 200, data[key])
        return
      }
      case 'PUT':
        await manager.setValue(id, key, await this.#readJson(request, true))
        sendEmpty(response)
        return
      default:
        if (!(await drain(request, this.#settings.maxBodyBytes))) return
        await manager.removeValue(id, key)
        sendEmpty(response)
    }
  }

  async #regenerate(response: ServerResponse, id: string): Promise<void> {
    const newId = await this.#settings.manager.regenerateSession(id)
    if (newId === null) throw sessionNotFound()
    response.setHeader('Location', `/sessions/${newId}`)
    sendJson(response, 200, { id: newId })
  }

  /** The body as JSON; undefined when it is empty and not `required`. */
  async #readJson(request: IncomingMessage, required: boolean): Promise<unknown> {
    const type = request.headers['content-type']
    if (type !== undefined && !/^application\/([\w.+-]+\+)?json\b/i.test(type)) {
      await drain(request, this.#settings.maxBodyBytes)
      throw new RequestError(
        'UNSUPPORTED_MEDIA_TYPE',
        `The body must be JSON (Content-Type: application/json), not ${type.split(';', 1)[0]}.`,
      )
    }
    const body = await readBody(request, this.#settings.maxBodyBytes)
    if (body.length === 0) {
      if (!required) return undefined
      throw new RequestError('INVALID_JSON', 'The body is empty; send a JSON value.')
    }
    let text: string
    try {
      text = utf8.decode(body)
    } catch {
      // Replacing bad bytes with U+FFFD would store something the client never sent.
      throw new RequestError('INVALID_JSON', 'The body is not valid UTF-8.')
    }
    return parseClientJson(text, 'The body is not valid JSON.')
  }

  #sendError(request: IncomingMessage, response: ServerResponse, error: unknown): void {
    const { code, message, status } = errorReply(error)
    if (response.headersSent) {
      response.destroy()
      return
    }
    if (status === 401) response.setHeader('WWW-Authenticate', 'Bearer realm="session-shards"')
    if (status === 503) response.setHeader('Retry-After', '1')
    // A body not read to its end (or a refused connection) leaves nothing worth keeping alive.
    if (!request.complete || this.#closing !== undefined) {
      response.setHeader('Connection', 'close')
    }
    sendJson(response, status, { error: { code, message } })
  }
}

function sendJson(response: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body)
  response.writeHead(status, {
    'Content-Type': 'application/json; charset=utf-8',
    'Content-Length': Buffer.byteLength(text),
    'Cache-Control': 'no-store',
  })
  response.end(text)
}

function sendEmpty(response: ServerResponse): void {
  response.writeHead(204, { 'Cache-Control': 'no-store' })
  response.end()
}

/** Answers sent while the server shuts down tell the client not to reuse the connection. */
function closeWhenShuttingDown(response: ServerResponse, closing: () => boolean): void {
  const writeHead = response.writeHead.bind(response) as (...args: unknown[]) => ServerResponse
  response.writeHead = ((...args: unknown[]) => {
    if (closing()) response.setHeader('Connection', 'close')
    return writeHead(...args)
  }) as ServerResponse['writeHead']
}

function bearerToken(request: IncomingMessage): string | undefined {
  const header = request.headers.authorization
  if (header === undefined) return undefined
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header)
  return match?.[1]
}

/**
 * `If-Match: "7"` → write only at version 7; `If-None-Match: *` → only if the session does not
 * exist. Any other condition is refused rather than dropped, which would write unconditionally.
 */
function expectedVersionOf(request: IncomingMessage): number | undefined {
  const ifMatch = request.headers['if-match']
  const ifNoneMatch = request.headers['if-none-match']
  if (ifNoneMatch !== undefined) {
    if (ifNoneMatch.trim() !== '*' || ifMatch !== undefined) {
      throw new RequestError(
        'BAD_REQUEST',
        'If-None-Match takes only *, and not with If-Match: If-None-Match: * creates a session only if there is none.',
      )
    }
    return 0
  }
  if (ifMatch !== undefined) {
    const match = /^\s*"?(\d{1,16})"?\s*$/.exec(ifMatch)
    if (match === null || !Number.isSafeInteger(Number(match[1]))) {
      throw new RequestError(
        'BAD_REQUEST',
        'If-Match takes one version from an ETag, e.g. If-Match: "7".',
      )
    }
    return Number(match[1])
  }
  return undefined
}

/**
 * A change that does not carry out conditions refuses them, before its body is read: dropped,
 * the condition would let the change through whatever version the session is at, the lost
 * update the client asked to be kept from. (A read changes nothing; it ignores them.)
 */
function refuseConditions(request: IncomingMessage): void {
  if (request.headers['if-match'] !== undefined || request.headers['if-none-match'] !== undefined) {
    throw new RequestError(
      'BAD_REQUEST',
      'Only PUT /sessions/:id carries out If-Match and If-None-Match; send this request without them.',
    )
  }
}

function decodeSegment(segment: string): string {
  try {
    return decodeURIComponent(segment)
  } catch {
    throw new RequestError('BAD_REQUEST', 'The path is not valid percent-encoding.')
  }
}

function notFound(): RequestError {
  return new RequestError(
    'NOT_FOUND',
    'No such route: the API is /sessions, /sessions/:id, /sessions/:id/keys/:key, /sessions/:id/regenerate and /metrics.',
  )
}

function sessionNotFound(): RequestError {
  return new RequestError('SESSION_NOT_FOUND', 'No live session has this id.')
}
