import { createServer } from 'node:net'
import type { AddressInfo, Server, Socket } from 'node:net'
import type { SessionData } from '../codec.js'
import { debug } from '../debug.js'
import { InvalidSessionDataError } from '../errors.js'
import type { SessionLock } from '../session-lock.js'
import type { SessionManager } from '../session-manager.js'
import { withValue, withValues, withoutValue } from '../session-values.js'
import type { AccessControl } from './access.js'
import { listenOn } from './listen.js'
import type { Frame, LineRequest } from './line-protocol.js'
import {
  LineParser,
  errorAnswer,
  jsonPayload,
  okAnswer,
  payloadAnswer,
  storedValue,
  wireValue,
  wordAnswer,
} from './line-protocol.js'
import { RequestError, errorReply, sessionDestroyed } from './request-error.js'

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

/** The session a connection has open. */
interface OpenSession {
  id: string
  mode: 'r' | 'w'
  /** `w`: the data with the uncommitted changes; `r`: what was read at `open`. */
  data: SessionData
  /** Changes not committed yet. */
  dirty: boolean
  /** `w` only: the session's lease lock, renewed while the session is open. */
  lock: SessionLock | undefined
  renewal: NodeJS.Timeout | undefined
  renewing: Promise<void> | undefined
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
  #session: OpenSession | undefined
  #running = false
  #paused = false
  /** Payload bytes of the requests in the queue (a request's payload is at most maxBodyBytes). */
  #queuedBytes = 0
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
    this.#parser = new LineParser(
      settings.maxLineBytes,
      settings.maxBodyBytes,
      settings.access.requiresToken,
    )
    this.#authenticated = !settings.access.requiresToken
    this.finished = new Promise((resolve) => (this.#finish = resolve))
    socket.setNoDelay(true)
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
      if (!this.#running) void this.#close()
    })
  }

  /** Bytes held for this client: requests read ahead and answers not yet taken by the OS. */
  get bufferedBytes(): number {
    return this.#queuedBytes + this.#socket.writableLength
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
    for (const frame of this.#parser.push(chunk)) {
      this.#idleTimer?.refresh()
      this.#queue.push(frame)
      this.#queuedBytes += payloadBytes(frame)
    }
    // Reading stops while the requests read ahead are many or large: at most about one
    // payload is held per connection beyond the one being parsed.
    const full = this.#queue.length >= MAX_QUEUED || this.#queuedBytes > this.#settings.maxBodyBytes
    if (full && !this.#paused) {
      this.#paused = true
      this.#socket.pause()
    }
    void this.#pump()
  }

  async #pump(): Promise<void> {
    if (this.#running) return
    this.#running = true
    try {
      while (this.#queue.length > 0 && !this.#gone && !this.#shuttingDown) {
        const frame = this.#queue.shift() as Frame
        this.#queuedBytes -= payloadBytes(frame)
        if (
          this.#paused &&
          this.#queue.length < MAX_QUEUED / 4 &&
          this.#queuedBytes <= this.#settings.maxBodyBytes / 2
        ) {
          this.#paused = false
          this.#socket.resume()
        }
        if ('error' in frame && frame.hangUp === true) this.#hangUp = true
        const answer = await this.#answer(frame)
        // Answers to pipelined requests leave in one write: corked while more are queued.
        const more = this.#queue.length > 0
        if (more && !this.#socket.writableCorked) this.#socket.cork()
        const flowing = this.#send(answer)
        // Uncorked before waiting for 'drain', which a corked socket never emits.
        if (!more || !flowing) while (this.#socket.writableCorked) this.#socket.uncork()
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
      while (this.#socket.writableCorked) this.#socket.uncork()
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
      return await this.#run(request)
    } catch (error) {
      const { code, message } = errorReply(error)
      return errorAnswer(code, message)
    }
  }

  async #run(request: LineRequest): Promise<Buffer> {
    const { manager } = this.#settings
    switch (request.command) {
      case 'auth':
        if (!this.#settings.access.tokenMatches(request.token)) {
          // One guess per connection: a wrong token closes it.
          this.#hangUp = true
          throw new RequestError('UNAUTHORIZED', 'Wrong token; the connection is closed.')
        }
        this.#authenticated = true
        clearTimeout(this.#authTimer)
        return okAnswer()
      case 'new': {
        this.#checkNoSession()
        const id = manager.generateId()
        const lock = await this.#takeLock(id)
        await this.#releaseOnFailure(lock, () => lock.write({}))
        this.#open({ id, mode: 'w', data: {}, lock })
        return wordAnswer(id)
      }
      case 'open': {
        this.#checkNoSession()
        const { id, mode } = request
        if (mode === 'r') {
          const data = await manager.readSession(id)
          this.#open({ id, mode, data: data ?? {}, lock: undefined })
        } else {
          const lock = await this.#takeLock(id)
          const data = await this.#releaseOnFailure(lock, () => lock.read())
          this.#open({ id, mode, data: data ?? {}, lock })
        }
        return okAnswer()
      }
      case 'close':
        await this.#closeSession()
        return okAnswer()
      case 'commit': {
        const session = this.#writable()
        await this.#commit(session)
        return okAnswer()
      }
      case 'destroy': {
        const session = this.#writable()
        await manager.destroySession(session.id)
        await this.#closeSession()
        return okAnswer()
      }
      case 'exists': {
        const id = request.id ?? this.#current().id
        return wordAnswer((await manager.readSession(id)) === null ? '0' : '1')
      }
      case 'keys':
        return jsonPayload(Object.keys(this.#current().data))
      case 'get': {
        const { data } = this.#current()
        if (!Object.hasOwn(data, request.key)) {
          throw new RequestError('KEY_NOT_FOUND', 'The open session has no value at this key.')
        }
        const { kind, bytes } = wireValue(data[request.key])
        return payloadAnswer(kind, bytes)
      }
      case 'put': {
        const session = this.#writable()
        this.#change(session, withValue(session.data, request.key, storedValue(request.value)))
        return okAnswer()
      }
      case 'remove': {
        const session = this.#writable()
        if (Object.hasOwn(session.data, request.key)) {
          this.#change(session, withoutValue(session.data, request.key))
        }
        return okAnswer()
      }
      case 'get_all':
        return jsonPayload(this.#current().data)
      case 'put_all': {
        const session = this.#writable()
        let values: unknown
        try {
          values = JSON.parse(request.json)
        } catch {
          throw new RequestError(
            'INVALID_JSON',
            'put_all takes a JSON object; this is not valid JSON.',
          )
        }
        this.#change(session, withValues(session.data, values))
        return okAnswer()
      }
      case 'regenerate_id':
        return wordAnswer(await this.#regenerate(this.#writable()))
    }
  }

  /**
   * Moves the open session to a new id: pending changes are committed, the library's
   * regenerateSession copies the data (expiry and timeout too) and destroys the old id, and the
   * new id's lock is taken before the old one is released.
   */
  async #regenerate(session: OpenSession): Promise<string> {
    const { manager } = this.#settings
    const oldLock = session.lock as SessionLock
    if (session.dirty) await this.#commit(session)
    const newId = (await manager.regenerateSession(session.id)) ?? manager.generateId()
    const newLock = await this.#takeLock(newId)
    await this.#stopRenewal(session)
    await oldLock.release().catch((error: Error) => debug('lock release: %s', error.message))
    session.id = newId
    session.lock = newLock
    // The version the new lock's writes are fenced with; a session never written reads as none.
    await this.#releaseOnFailure(newLock, () => newLock.read())
    this.#startRenewal(session)
    return newId
  }

  /** Writes the open session's changes under its lock; a destroyed session is not-found. */
  async #commit(session: OpenSession): Promise<void> {
    const result = await (session.lock as SessionLock).write(session.data)
    if (result.dropped) throw sessionDestroyed()
    session.dirty = false
  }

  #change(session: OpenSession, data: SessionData): void {
    let bytes: number
    try {
      bytes = Buffer.byteLength(JSON.stringify(data))
    } catch (error) {
      // Nested too deeply for the encoder: the same refusal HTTP gets from the library.
      throw new InvalidSessionDataError('it cannot be encoded as JSON', { cause: error })
    }
    if (bytes > this.#settings.maxBodyBytes) {
      throw new RequestError(
        'SESSION_TOO_LARGE',
        `The session would be ${bytes} bytes as JSON, more than the server's maxBodyBytes (${this.#settings.maxBodyBytes}); nothing was changed.`,
      )
    }
    session.data = data
    session.dirty = true
  }

  #current(): OpenSession {
    if (this.#session === undefined) {
      throw new RequestError(
        'NO_OPEN_SESSION',
        'No session is open on this connection: send "open <id> r|w" or "new" first.',
      )
    }
    return this.#session
  }

  #writable(): OpenSession {
    const session = this.#current()
    if (session.mode !== 'w') {
      throw new RequestError(
        'READ_ONLY',
        'The session is open read-only; close it and "open <id> w" to change it.',
      )
    }
    return session
  }

  #checkNoSession(): void {
    if (this.#session !== undefined) {
      throw new RequestError(
        'SESSION_ALREADY_OPEN',
        `Session ${this.#session.id} is open on this connection; send "close" first.`,
      )
    }
  }

  #takeLock(id: string): Promise<SessionLock> {
    return this.#settings.manager.lockSession(id, {
      leaseMillis: this.#settings.lockLeaseMillis,
      waitMillis: this.#settings.lockWaitMillis,
    })
  }

  async #releaseOnFailure<T>(lock: SessionLock, step: () => Promise<T>): Promise<T> {
    try {
      return await step()
    } catch (error) {
      await lock.release().catch(() => {})
      throw error
    }
  }

  #open(session: Omit<OpenSession, 'dirty' | 'renewal' | 'renewing'>): void {
    this.#session = { ...session, dirty: false, renewal: undefined, renewing: undefined }
    this.#startRenewal(this.#session)
  }

  /** Renews the lease at a third of its length, so the lock lasts as long as the connection holds the session. */
  #startRenewal(session: OpenSession): void {
    const lock = session.lock
    if (lock === undefined) return
    session.renewal = setInterval(
      () => {
        if (session.renewing !== undefined) return
        session.renewing = lock
          .renew()
          .catch((error: Error) => {
            // Lost: a later commit fails with LOCK_EXPIRED, which is what the client must learn.
            debug('lock renewal for a line client: %s', error.message)
            clearInterval(session.renewal)
          })
          .finally(() => (session.renewing = undefined))
      },
      Math.max(1, Math.floor(this.#settings.lockLeaseMillis / 3)),
    )
    session.renewal.unref()
  }

  async #stopRenewal(session: OpenSession): Promise<void> {
    clearInterval(session.renewal)
    session.renewal = undefined
    // A renewal in flight could take the lock again after a release: let it land first.
    await session.renewing
  }

  /** Closes the open session (if any), discarding uncommitted changes and releasing its lock. */
  async #closeSession(): Promise<void> {
    const session = this.#session
    if (session === undefined) return
    this.#session = undefined
    await this.#stopRenewal(session)
    await session.lock?.release().catch((error: Error) => debug('lock release: %s', error.message))
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
      await this.#closeSession()
      if (!this.#socket.destroyed) {
        this.#socket.end()
        setTimeout(() => this.#socket.destroy(), 2000).unref()
      }
      this.#finish()
    })()
    return this.#teardown
  }
}

/** Bytes of a request's payload held in memory (put's value, put_all's JSON). */
function payloadBytes(frame: Frame): number {
  if ('error' in frame) return 0
  const { request } = frame
  if (request.command === 'put') return request.value.length
  if (request.command === 'put_all') return request.json.length
  return 0
}

function shuttingDown(): Buffer {
  return errorAnswer(
    'SHUTTING_DOWN',
    'The session server is shutting down; the command was not run.',
  )
}
