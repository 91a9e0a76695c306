/** The line protocol's TCP server: accepting clients, and each connection's flow of requests and answers. */
import { createServer } from 'node:net'
import type { AddressInfo, Server, Socket } from 'node:net'
import { debug } from '../debug.js'
import type { SessionManager } from '../session-manager.js'
import type { AccessControl } from './access.js'
import { KEEPALIVE_DELAY_MILLIS, listenOn, REFUSAL_HEADROOM } from './listen.js'
import type { Frame } from './line-protocol.js'
import { errorAnswer, okAnswer } from './line-answers.js'
import { LineParser, WRONG_TOKEN } from './line-protocol.js'
import { LineSession } from './line-session.js'
import { RequestError, errorReply } from './request-error.js'

/** What the line server needs from {@link startSessionServer}'s options, resolved. */
export interface LineServerSettings {
  manager: SessionManager
  access: AccessControl
  maxLineBytes: number
  maxBodyBytes: number
  maxConnections: number
  idleTimeoutMillis: number
  authTimeoutMillis: number
  sendTimeoutMillis: number
  lockLeaseMillis: number
  lockWaitMillis: number
  touchAfterSeconds: number
}

/** Requests parsed ahead of the one running; beyond this the socket stops reading until they are answered. */
const MAX_QUEUED = 64

/**
 * The line protocol over TCP (see docs/server.md): one {@link LineConnection} per client, each
 * with at most one open session. Refuses clients outside the allow-list and clients over
 * `maxConnections` with one `err` line.
 */
export class LineServer {
  readonly #settings: LineServerSettings
  readonly #server: Server
  readonly #connections = new Set<LineConnection>()
  #closing: Promise<void> | undefined

  constructor(settings: LineServerSettings) {
    this.#settings = settings
    // Half-open: a client may send its commands, end its side, and still read every answer.
    this.#server = createServer({ allowHalfOpen: true }, (socket) => this.#accept(socket))
    // A refused connection lingers up to a second (its answer, then a close): bounded too.
    this.#server.maxConnections = settings.maxConnections + REFUSAL_HEADROOM
  }

  /** Connections open now. */
  get connections(): number {
    return this.#connections.size
  }

  /** Bytes held for clients now: requests read ahead and answers not yet taken by the OS. */
  get bufferedBytes(): number {
    let bytes = 0
    for (const connection of this.#connections) bytes += connection.bufferedBytes
    return bytes
  }

  /** Requests parsed ahead of the one each connection runs, over all connections. */
  get queuedRequests(): number {
    let requests = 0
    for (const connection of this.#connections) requests += connection.queuedRequests
    return requests
  }

  listen(port: number, host: string): Promise<AddressInfo> {
    return listenOn(this.#server, port, host)
  }

  /**
   * Stops accepting connections; each connection finishes the command it is running, answers
   * the ones queued behind it with `SHUTTING_DOWN`, releases its lock and is closed.
   */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      const closed = new Promise<void>((resolve) => this.#server.close(() => resolve()))
      await Promise.all([...this.#connections].map((connection) => connection.shutdown()))
      await closed
    })()
    return this.#closing
  }

  #accept(socket: Socket): void {
    socket.on('error', (error) => debug('line client %s: %s', socket.remoteAddress, error.message))
    if (this.#closing !== undefined) {
      refuse(socket, 'SHUTTING_DOWN', 'The session server is shutting down.')
    } else if (!this.#settings.access.allowsAddress(socket.remoteAddress)) {
      refuse(socket, 'FORBIDDEN', "Your address is not in the session server's allow-list.")
    } else if (this.#connections.size >= this.#settings.maxConnections) {
      refuse(
        socket,
        'TOO_MANY_CONNECTIONS',
        `The session server has its maximum of ${this.#settings.maxConnections} connections (maxConnections); retry later.`,
      )
    } else {
      const connection = new LineConnection(socket, this.#settings)
      this.#connections.add(connection)
      void connection.finished.then(() => this.#connections.delete(connection))
    }
  }
}

function refuse(socket: Socket, code: string, message: string): void {
  socket.end(errorAnswer(code, message))
  setTimeout(() => socket.destroy(), 1000).unref()
}

/**
 * One client of the line protocol. Requests run one at a time in the order sent (clients may
 * pipeline). When the client goes away, the lock of its open session is released as soon as
 * the command running (if any) has settled: other clients need not wait for the lease to end.
 */
class LineConnection {
  readonly #socket: Socket
  readonly #settings: LineServerSettings
  readonly #parser: LineParser
  readonly #queue: Frame[] = []
  #authenticated: boolean
  readonly #session: LineSession
  #running = false
  #paused = false
  /** Payload bytes of the requests in the queue (a request's payload is at most maxBodyBytes). */
  #queuedBytes = 0
  /** {@link heldBytes} of the request running, until it is answered. */
  #runningBytes = 0
  readonly #idleTimer: NodeJS.Timeout | undefined
  #authTimer: NodeJS.Timeout | undefined
  /** The client closed the socket (or it broke): nothing more can be sent. */
  #gone = false
  /** The client ended its side: answer what was sent, then close. */
  #ended = false
  #shuttingDown = false
  /** Close the connection once the current answer is sent (a wrong token). */
  #hangUp = false
  #teardown: Promise<void> | undefined
  readonly finished: Promise<void>
  #finish!: () => void

  constructor(socket: Socket, settings: LineServerSettings) {
    this.#socket = socket
    this.#settings = settings
    const { access } = settings
    this.#parser = new LineParser(
      settings.maxLineBytes,
      settings.maxBodyBytes,
      access.requiresToken ? (token) => access.tokenMatches(token) : undefined,
    )
    this.#authenticated = !settings.access.requiresToken
    this.#session = new LineSession(settings)
    this.finished = new Promise((resolve) => (this.#finish = resolve))
    socket.setNoDelay(true)
    socket.setKeepAlive(true, KEEPALIVE_DELAY_MILLIS)
    // Idleness is time without a request, not without bytes: blank lines keep nothing open.
    if (settings.idleTimeoutMillis > 0) {
      this.#idleTimer = setTimeout(() => this.#idle(), settings.idleTimeoutMillis).unref()
    }
    if (!this.#authenticated && settings.authTimeoutMillis > 0) {
      this.#authTimer = setTimeout(() => {
        this.#send(
          errorAnswer(
            'AUTH_TIMEOUT',
            `No "auth <token>" within ${settings.authTimeoutMillis} ms (authTimeoutMillis): closing the connection.`,
          ),
        )
        void this.#close()
      }, settings.authTimeoutMillis).unref()
    }
    socket.on('data', (chunk: Buffer) => this.#receive(chunk))
    socket.on('end', () => {
      this.#ended = true
      if (!this.#running) void this.#close()
    })
    socket.on('close', () => {
      this.#gone = true
      this.#queue.length = 0
      this.#session.abandon()
      if (!this.#running) void this.#close()
    })
  }

  /** Bytes held for this client: requests read ahead (parsed or not) and answers not yet taken by the OS. */
  get bufferedBytes(): number {
    const parsing = this.#parser.unparsedBytes + this.#parser.payloadBytes
    return this.#queuedBytes + this.#runningBytes + parsing + this.#socket.writableLength
  }

  /** Requests parsed and waiting for the one running. */
  get queuedRequests(): number {
    return this.#queue.length
  }

  #idle(): void {
    // A command still running (a lock wait, a slow store) is not idleness: look again later.
    // Its answer cannot keep the connection open for long either: see #send's deadline.
    if (this.#running) {
      this.#idleTimer?.refresh()
      return
    }
    this.#send(
      errorAnswer(
        'IDLE_TIMEOUT',
        `No command for ${this.#settings.idleTimeoutMillis} ms (idleTimeoutMillis): closing the connection.`,
      ),
    )
    void this.#close()
  }

  /** Finishes the running command, answers queued ones with `SHUTTING_DOWN`, releases the lock, closes. */
  shutdown(): Promise<void> {
    this.#shuttingDown = true
    this.#socket.pause()
    if (!this.#running) void this.#close()
    return this.finished
  }

  #receive(chunk: Buffer): void {
    if (this.#shuttingDown || this.#teardown !== undefined) return
    this.#parser.push(chunk)
    this.#readAhead()
    void this.#pump()
  }

  /**
   * Parses requests ahead of the one running, while fewer than {@link MAX_QUEUED} wait and
   * they hold at most about `maxBodyBytes` (payloads, ids and keys): beyond that, what was
   * received stays unparsed in the parser (at most one read of the socket), and the socket is
   * not read until the queue has caught up. So one chunk of a thousand bad lines costs 64 frames, not a
   * thousand errors held at once.
   */
  #readAhead(): void {
    const { maxBodyBytes } = this.#settings
    // The request running counts too: with it, queued requests, and the one being parsed, a
    // connection holds about twice maxBodyBytes at most.
    while (this.#queue.length < MAX_QUEUED && this.#heldBytes() <= maxBodyBytes) {
      const frame = this.#parser.next()
      if (frame === undefined) break
      this.#idleTimer?.refresh()
      this.#queue.push(frame)
      this.#queuedBytes += heldBytes(frame)
    }
    const holding = this.#parser.unparsedBytes > 0
    if (!this.#paused && holding) {
      this.#paused = true
      this.#socket.pause()
    } else if (
      this.#paused &&
      !holding &&
      !this.#shuttingDown &&
      this.#queue.length < MAX_QUEUED / 4 &&
      this.#heldBytes() <= maxBodyBytes / 2
    ) {
      this.#paused = false
      this.#socket.resume()
    }
  }

  /** Bytes of the requests parsed and not answered yet. */
  #heldBytes(): number {
    return this.#queuedBytes + this.#runningBytes
  }

  async #pump(): Promise<void> {
    if (this.#running) return
    this.#running = true
    try {
      while (this.#queue.length > 0 && !this.#gone && !this.#shuttingDown) {
        const frame = this.#queue.shift() as Frame
        this.#queuedBytes -= heldBytes(frame)
        this.#runningBytes = heldBytes(frame)
        if ('error' in frame && frame.hangUp === true) this.#hangUp = true
        const answer = await this.#answer(frame)
        this.#runningBytes = 0
        this.#readAhead()
        // Answers to pipelined requests leave in one write: corked while more are queued, until
        // the end of this tick, so that requests answered without waiting share the write and
        // an answer never waits for a request that does (a lock wait, a store).
        const more = this.#queue.length > 0
        if (more && !this.#socket.writableCorked) {
          this.#socket.cork()
          process.nextTick(() => this.#uncork())
        }
        const flowing = this.#send(answer)
        // Uncorked before waiting for 'drain', which a corked socket never emits.
        if (!more || !flowing) this.#uncork()
        if (!flowing && !(await this.#drained())) {
          // The client does not read its answers: it holds buffers and perhaps a lock.
          debug(
            'line client %s: answers unread for %d ms',
            this.#socket.remoteAddress,
            this.#settings.sendTimeoutMillis,
          )
          this.#socket.destroy()
          break
        }
        this.#idleTimer?.refresh()
        if (this.#hangUp || this.#teardown !== undefined) break
      }
    } finally {
      this.#uncork()
      this.#running = false
    }
    if (
      this.#gone ||
      this.#shuttingDown ||
      this.#hangUp ||
      (this.#ended && this.#queue.length === 0)
    ) {
      void this.#close()
    }
  }

  async #answer(frame: Frame): Promise<Buffer> {
    if ('error' in frame) return errorAnswer(frame.error.code, frame.error.message)
    const { request } = frame
    if (!this.#authenticated && request.command !== 'auth') {
      return errorAnswer(
        'UNAUTHORIZED',
        'This session server needs a token: send "auth <token>" first.',
      )
    }
    try {
      if (request.command === 'auth') return this.#authenticate(request.token)
      return await this.#session.run(request)
    } catch (error) {
      const { code, message } = errorReply(error)
      return errorAnswer(code, message)
    }
  }

  #authenticate(token: string): Buffer {
    if (!this.#settings.access.tokenMatches(token)) {
      // One guess per connection: a wrong token closes it.
      this.#hangUp = true
      throw new RequestError('UNAUTHORIZED', WRONG_TOKEN)
    }
    this.#authenticated = true
    clearTimeout(this.#authTimer)
    return okAnswer()
  }

  #uncork(): void {
    while (this.#socket.writableCorked) this.#socket.uncork()
  }

  #send(answer: Buffer): boolean {
    if (this.#gone || this.#socket.writableEnded) return true
    return this.#socket.write(answer)
  }

  /** Resolves true once the socket drained, false if it did not within `sendTimeoutMillis`. */
  #drained(): Promise<boolean> {
    return new Promise((resolve) => {
      const done = (drained: boolean): void => {
        clearTimeout(deadline)
        this.#socket.off('drain', onDrain)
        this.#socket.off('close', onDrain)
        resolve(drained)
      }
      const onDrain = (): void => done(true)
      const deadline = setTimeout(() => done(false), this.#settings.sendTimeoutMillis)
      this.#socket.on('drain', onDrain)
      this.#socket.on('close', onDrain)
    })
  }

  /** Releases what the connection holds and ends it; runs once. */
  #close(): Promise<void> {
    this.#teardown ??= (async () => {
      clearTimeout(this.#idleTimer)
      clearTimeout(this.#authTimer)
      if (this.#shuttingDown) {
        for (const frame of this.#queue.splice(0)) {
          this.#send(
            'error' in frame ? errorAnswer(frame.error.code, frame.error.message) : shuttingDown(),
          )
        }
      }
      await this.#session.close()
      if (!this.#socket.destroyed) {
        this.#socket.end()
        setTimeout(() => this.#socket.destroy(), 2000).unref()
      }
      this.#finish()
    })()
    return this.#teardown
  }
}

/**
 * Bytes a parsed request holds in memory: its payload (put's value, put_all's JSON) and what its
 * line carried (an id or a key may be up to `maxLineBytes`), or an error's message.
 */
function heldBytes(frame: Frame): number {
  if ('error' in frame) return frame.error.message.length
  let bytes = 0
  for (const value of Object.values(frame.request) as unknown[]) {
    if (typeof value === 'string' || Buffer.isBuffer(value)) bytes += value.length
  }
  return bytes
}

function shuttingDown(): Buffer {
  return errorAnswer(
    'SHUTTING_DOWN',
    'The session server is shutting down; the command was not run.',
  )
}
