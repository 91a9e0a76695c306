/** A TCP proxy in front of one store for one client: latency, blackholes, resets, stalls and hung statements on demand. */
import { connect, createServer } from 'node:net'
import type { AddressInfo, Server, Socket } from 'node:net'

/**
 * A gray fault between one client (a session manager) and one store, so that other clients
 * that reach the store directly see nothing wrong:
 * - `latency`: every chunk is held back this long, per direction;
 * - `blackhole`: connections are accepted, nothing is ever forwarded either way;
 * - `reset`: every connection (open or new) is reset;
 * - `stall`: forwarding stops for `stallMillis` out of every `periodMillis`;
 * - `hang-data`: prepared statements (the library's data path) hang, while text queries (a
 *   `SHOW GLOBAL STATUS` liveness probe) still answer.
 */
export type Fault =
  | { kind: 'none' }
  | { kind: 'latency'; toStoreMillis: number; toClientMillis: number }
  | { kind: 'blackhole' }
  | { kind: 'reset' }
  | { kind: 'stall'; stallMillis: number; periodMillis: number }
  | { kind: 'hang-data' }

/** MySQL commands that prepare and execute statements: the binary protocol's data path. */
const COM_STMT_PREPARE = 0x16
const COM_STMT_EXECUTE = 0x17
/** Bytes held for one direction of one connection at most; beyond that it is reset. */
const MAX_HELD_BYTES = 64 * 1024 * 1024

/** A wait for the store's answer to a request that matches: see {@link FaultProxy.answered}. */
interface AnswerWatch {
  matches: (request: Buffer) => boolean
  /** The connection the matching request came on, once it came. */
  connection: ProxiedConnection | undefined
  resolve: () => void
}

/** A chunk a `latency` fault holds back, and when it is due. */
interface Delayed {
  chunk: Buffer
  due: number
}

/** One proxied connection: the client's socket, the store's, and what each direction holds back. */
class ProxiedConnection {
  readonly client: Socket
  readonly store: Socket
  readonly #proxy: FaultProxy
  /** Client → store bytes not yet split into MySQL packets (for `hang-data`). */
  #pending = Buffer.alloc(0)
  /** A statement of the data path was held: everything after it waits too (`hang-data`). */
  #hung = false
  readonly #held: { toStore: Buffer[]; toClient: Buffer[] } = { toStore: [], toClient: [] }
  #heldBytes = 0
  /**
   * Chunks a `latency` fault delays, with when each is due, per direction. Chunks that arrive
   * after the fault ends queue behind them: TCP delivers bytes in order, however late.
   */
  readonly #delayed: { toStore: Delayed[]; toClient: Delayed[] } = { toStore: [], toClient: [] }

  constructor(client: Socket, store: Socket, proxy: FaultProxy) {
    this.client = client
    this.store = store
    this.#proxy = proxy
    client.on('data', (chunk: Buffer) => {
      proxy.sawRequest(this, chunk)
      this.#fromClient(chunk)
    })
    store.on('data', (chunk: Buffer) => {
      proxy.sawAnswer(this)
      this.#forward('toClient', chunk)
    })
    const end = (): void => this.destroy()
    for (const socket of [client, store]) {
      socket.on('error', end)
      socket.on('close', end)
    }
  }

  destroy(reset = false): void {
    if (reset) this.client.resetAndDestroy()
    else this.client.destroy()
    this.store.destroy()
    this.#proxy.forget(this)
  }

  /** Sends what a stall or a blackhole held back, once the fault is over. */
  flush(): void {
    if (this.#proxy.fault.kind === 'blackhole') return
    for (const direction of ['toStore', 'toClient'] as const) {
      const chunks = this.#held[direction].splice(0)
      for (const chunk of chunks) this.#write(direction, chunk)
    }
    this.#heldBytes = 0
  }

  #fromClient(chunk: Buffer): void {
    if (this.#proxy.fault.kind !== 'hang-data' && !this.#hung) {
      this.#forward('toStore', chunk)
      return
    }
    // Split the stream into packets: 3-byte length, 1-byte sequence id, payload. A command
    // starts a new sequence (id 0); its first payload byte says which command it is.
    this.#pending = Buffer.concat([this.#pending, chunk])
    while (this.#pending.length >= 4) {
      const length = this.#pending.readUIntLE(0, 3)
      if (this.#pending.length < 4 + length) break
      const packet = this.#pending.subarray(0, 4 + length)
      this.#pending = this.#pending.subarray(4 + length)
      const command = packet[3] === 0 ? packet[4] : undefined
      if (command === COM_STMT_PREPARE || command === COM_STMT_EXECUTE) this.#hung = true
      if (this.#hung) this.#hold('toStore', packet)
      else this.#forward('toStore', packet)
    }
  }

  #forward(direction: 'toStore' | 'toClient', chunk: Buffer): void {
    const fault = this.#proxy.fault
    const delayed = this.#delayed[direction]
    switch (fault.kind) {
      case 'blackhole':
        return
      case 'latency': {
        const delay = direction === 'toStore' ? fault.toStoreMillis : fault.toClientMillis
        this.#delay(direction, chunk, performance.now() + delay)
        return
      }
      case 'none':
        if (delayed.length > 0) return this.#delay(direction, chunk, performance.now())
        return this.#write(direction, chunk)
      case 'stall':
        if (this.#proxy.stalled) return this.#hold(direction, chunk)
        return this.#write(direction, chunk)
      default:
        return this.#write(direction, chunk)
    }
  }

  /** Queues `chunk` to be written at `due` (or after the chunks queued before it). */
  #delay(direction: 'toStore' | 'toClient', chunk: Buffer, due: number): void {
    const delayed = this.#delayed[direction]
    delayed.push({ chunk, due })
    this.#heldBytes += chunk.length
    if (this.#heldBytes > MAX_HELD_BYTES) return this.destroy(true)
    if (delayed.length === 1) this.#release(direction)
  }

  /** Writes the delayed chunks that are due, in order, and waits for the next one. */
  #release(direction: 'toStore' | 'toClient'): void {
    const delayed = this.#delayed[direction]
    while (delayed.length > 0 && (delayed[0] as Delayed).due <= performance.now()) {
      const { chunk } = delayed.shift() as Delayed
      this.#heldBytes -= chunk.length
      this.#write(direction, chunk)
    }
    const next = delayed[0]
    if (next !== undefined) {
      setTimeout(() => this.#release(direction), next.due - performance.now()).unref()
    }
  }

  #hold(direction: 'toStore' | 'toClient', chunk: Buffer): void {
    this.#held[direction].push(chunk)
    this.#heldBytes += chunk.length
    if (this.#heldBytes > MAX_HELD_BYTES) this.destroy(true)
  }

  #write(direction: 'toStore' | 'toClient', chunk: Buffer): void {
    const socket = direction === 'toStore' ? this.store : this.client
    if (!socket.destroyed) socket.write(chunk)
  }
}

/**
 * A TCP proxy in front of one store, for one client: point that client at {@link port} and
 * change the {@link Fault} at any time; it applies to open connections and new ones alike.
 */
export class FaultProxy {
  readonly #server: Server
  readonly #target: { host: string; port: number }
  readonly #connections = new Set<ProxiedConnection>()
  readonly #answerWatches = new Set<AnswerWatch>()
  #fault: Fault = { kind: 'none' }
  #stallTimer: NodeJS.Timeout | undefined
  #stalled = false

  private constructor(server: Server, target: { host: string; port: number }) {
    this.#server = server
    this.#target = target
  }

  /** Starts a proxy on a free port of 127.0.0.1 in front of `target`. */
  static async start(target: { host: string; port: number }): Promise<FaultProxy> {
    let proxy: FaultProxy | undefined
    const server = createServer((client) => proxy?.accept(client))
    proxy = new FaultProxy(server, target)
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(0, '127.0.0.1', () => resolve())
    })
    return proxy
  }

  /** The port clients connect to. */
  get port(): number {
    return (this.#server.address() as AddressInfo).port
  }

  get fault(): Fault {
    return this.#fault
  }

  /** During a `stall` fault: whether forwarding is stopped right now. */
  get stalled(): boolean {
    return this.#stalled
  }

  /** Connections open through the proxy now. */
  get connections(): number {
    return this.#connections.size
  }

  /** Applies `fault` from now on, to open connections and new ones. */
  setFault(fault: Fault): void {
    clearInterval(this.#stallTimer)
    this.#stalled = false
    this.#fault = fault
    if (fault.kind === 'reset') {
      for (const connection of [...this.#connections]) connection.destroy(true)
    }
    if (fault.kind === 'stall') {
      const cycle = (): void => {
        this.#stalled = true
        setTimeout(() => {
          this.#stalled = false
          for (const connection of this.#connections) connection.flush()
        }, fault.stallMillis).unref()
      }
      cycle()
      this.#stallTimer = setInterval(cycle, fault.periodMillis)
      this.#stallTimer.unref()
    }
    if (fault.kind === 'none') {
      for (const connection of [...this.#connections]) connection.flush()
    }
  }

  /**
   * Ends the fault. Connections that a blackhole or a hung statement held stay stuck (as they
   * would behind a real one): they are reset, so that clients reconnect.
   */
  heal(): void {
    const stuck = this.#fault.kind === 'blackhole' || this.#fault.kind === 'hang-data'
    this.setFault({ kind: 'none' })
    if (stuck) for (const connection of [...this.#connections]) connection.destroy(true)
  }

  /** @internal */
  accept(client: Socket): void {
    if (this.#fault.kind === 'reset') {
      client.on('error', () => {})
      client.resetAndDestroy()
      return
    }
    const store = connect(this.#target)
    this.#connections.add(new ProxiedConnection(client, store, this))
  }

  /**
   * Resolves once the store has answered (its answer reached the proxy, before any fault
   * holds it back) the first request from the client that `matches` (a chunk as the client
   * sent it: a statement's parameters, say). For tests that must act at one point of a
   * conversation, such as between a statement's run and its answer's arrival.
   */
  answered(matches: (request: Buffer) => boolean): Promise<void> {
    return new Promise((resolve) => {
      this.#answerWatches.add({ matches, connection: undefined, resolve })
    })
  }

  /** @internal */
  sawRequest(connection: ProxiedConnection, chunk: Buffer): void {
    for (const watch of this.#answerWatches) {
      if (watch.connection === undefined && watch.matches(chunk)) watch.connection = connection
    }
  }

  /** @internal */
  sawAnswer(connection: ProxiedConnection): void {
    for (const watch of this.#answerWatches) {
      if (watch.connection !== connection) continue
      this.#answerWatches.delete(watch)
      watch.resolve()
    }
  }

  /** @internal */
  forget(connection: ProxiedConnection): void {
    this.#connections.delete(connection)
  }

  /** Stops listening and closes every connection. */
  async close(): Promise<void> {
    clearInterval(this.#stallTimer)
    for (const connection of [...this.#connections]) connection.destroy()
    await new Promise<void>((resolve) => this.#server.close(() => resolve()))
  }
}
