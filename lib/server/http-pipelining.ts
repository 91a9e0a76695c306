/** HTTP requests pipelined on one connection, run one at a time. */
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Socket } from 'node:net'
import { debug } from '../debug.js'

/**
 * Pipelined requests one connection may have waiting behind the one running; a connection
 * that sends more is closed. Node parses a whole chunk of pipelined requests at once, and
 * stops reading only once answers pile up unsent (never while a request waits for a store),
 * so without a bound a stream of tiny requests would become that many waiting handlers.
 */
export const MAX_PIPELINED = 64

/** One connection's requests: one runs, the others wait in order. */
interface Lane {
  running: boolean
  waiting: (() => void)[]
}

/**
 * Runs each connection's requests one at a time. Node calls the request handler at once for
 * every request a client pipelines, and each would read its session and hold its answer (in
 * Node's queue of answers waiting their turn) while the client may read none. Here the next
 * request starts once the answer before it has been handed to the OS ('finish'), or the
 * connection is gone: a client that stops reading holds one answer at most, and runs nothing
 * more until it reads.
 */
export class PipelinedRequests {
  readonly #lanes = new WeakMap<Socket, Lane>()
  readonly #handle: (request: IncomingMessage, response: ServerResponse) => void

  constructor(handle: (request: IncomingMessage, response: ServerResponse) => void) {
    this.#handle = handle
  }

  /** Runs the request now if its connection runs none, else once those before it are answered. */
  enqueue(request: IncomingMessage, response: ServerResponse): void {
    const socket = request.socket
    let lane = this.#lanes.get(socket)
    if (lane === undefined) {
      lane = { running: false, waiting: [] }
      this.#lanes.set(socket, lane)
    }
    const run = (): void => this.#run(lane, request, response)
    if (!lane.running) {
      run()
    } else if (lane.waiting.length < MAX_PIPELINED) {
      lane.waiting.push(run)
    } else {
      debug('http client %s: over %d pipelined requests', socket.remoteAddress, MAX_PIPELINED)
      lane.waiting.length = 0
      socket.destroy()
    }
  }

  #run(lane: Lane, request: IncomingMessage, response: ServerResponse): void {
    lane.running = true
    let settled = false
    const next = (): void => {
      if (settled) return
      settled = true
      lane.running = false
      lane.waiting.shift()?.()
    }
    response.once('finish', next)
    response.once('close', next)
    if (request.socket.destroyed) {
      // Gone while it waited: nothing to answer, no store to ask.
      next()
      return
    }
    this.#handle(request, response)
  }
}
