/** Reading HTTP request bodies: at most a limit kept, a bounded amount more read and dropped. */
import type { IncomingMessage } from 'node:http'
import { ByteBuffer } from './byte-buffer.js'
import { RequestError } from './request-error.js'

/** A body larger than the limit is read and thrown away up to this many times the limit, so the client sees the 413; beyond, the connection is cut. */
const DRAIN_FACTOR = 8

/**
 * Reads the body, at most `maxBytes`. A larger one (by Content-Length or as it streams) is
 * read on and thrown away, so the client gets its 413 rather than a reset; one larger than
 * {@link DRAIN_FACTOR} times the limit gets the connection cut.
 */
export function readBody(request: IncomingMessage, maxBytes: number): Promise<Buffer> {
  const tooLarge = (): RequestError =>
    new RequestError(
      'BODY_TOO_LARGE',
      `The body is larger than the server's maxBodyBytes (${maxBytes}).`,
    )
  const announced = Number(request.headers['content-length'] ?? 0)
  if (announced > maxBytes * DRAIN_FACTOR) return Promise.reject(tooLarge())
  return new Promise((resolve, reject) => {
    // Sized from Content-Length when the body fits; grown as it arrives otherwise (chunked).
    const body = new ByteBuffer(maxBytes, announced <= maxBytes ? announced : 0)
    let bytes = 0
    const onData = (chunk: Buffer): void => {
      bytes += chunk.length
      if (bytes <= maxBytes) {
        body.append(chunk)
        return
      }
      body.clear()
      if (bytes > maxBytes * DRAIN_FACTOR) {
        request.off('data', onData)
        request.pause()
        reject(tooLarge())
      }
    }
    request.on('data', onData)
    request.once('end', () => (bytes > maxBytes ? reject(tooLarge()) : resolve(body.take())))
    // An aborted body ('error', then 'close') is the client's doing, not an internal error.
    const wentAway = (): void =>
      reject(new RequestError('BAD_REQUEST', 'The client went away before sending the whole body.'))
    request.once('error', wentAway)
    request.once('close', wentAway)
  })
}

/** Whether a request carries a body (a length above 0, or chunks). */
export function hasBody(request: IncomingMessage): boolean {
  const { headers } = request
  return headers['transfer-encoding'] !== undefined || Number(headers['content-length'] ?? 0) > 0
}

/**
 * Reads and drops a body nobody needs, so the connection can serve the next request; a body
 * beyond {@link DRAIN_FACTOR} times `maxBytes` is not worth reading: the connection is cut.
 * Resolves whether the body was read to its end: a request whose connection was cut (or that
 * the client abandoned) is not carried out, since nobody can learn its outcome.
 */
export async function drain(request: IncomingMessage, maxBytes: number): Promise<boolean> {
  if (request.complete) return true
  if (Number(request.headers['content-length'] ?? 0) > maxBytes * DRAIN_FACTOR) {
    request.socket.destroy()
    return false
  }
  let bytes = 0
  request.on('data', (chunk: Buffer) => {
    bytes += chunk.length
    if (bytes > maxBytes * DRAIN_FACTOR) request.socket.destroy()
  })
  return new Promise((resolve) => {
    request.once('end', () => resolve(true))
    request.once('close', () => resolve(request.complete))
  })
}
