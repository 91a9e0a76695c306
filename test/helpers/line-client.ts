import { connect } from 'node:net'
import type { AddressInfo, Socket } from 'node:net'

/** One answer of the session server's line protocol. */
export type LineAnswer =
  | { ok: true; word?: string; kind?: 's' | 'b' | 'j'; payload?: Buffer; text?: string }
  | { ok: false; code: string; message: string }

/**
 * A line-protocol client over a real TCP socket, for tests: `request()` sends one command (and
 * its payload) and resolves its answer; `write()` + `answer()` allow pipelining and raw bytes.
 */
export class LineClient {
  readonly socket: Socket
  #buffer = Buffer.alloc(0)
  readonly #waiting: ((answer: LineAnswer | null) => void)[] = []
  #ended = false
  /** Resolves when the server closes the connection. */
  readonly closed: Promise<void>

  private constructor(socket: Socket) {
    this.socket = socket
    socket.on('data', (chunk: Buffer) => {
      this.#buffer = Buffer.concat([this.#buffer, chunk])
      this.#deliver()
    })
    this.closed = new Promise((resolve) =>
      socket.on('close', () => {
        this.#ended = true
        for (const waiter of this.#waiting.splice(0)) waiter(null)
        resolve()
      }),
    )
    socket.on('error', () => {})
  }

  static connect(address: AddressInfo): Promise<LineClient> {
    return new Promise((resolve, reject) => {
      const socket = connect({ port: address.port, host: address.address })
      socket.once('connect', () => {
        socket.off('error', reject)
        resolve(new LineClient(socket))
      })
      socket.once('error', reject)
    })
  }

  /** Sends `line` (and `payload` with its byte count, for put / put_all) and resolves the answer. */
  async request(line: string, payload?: Buffer | string): Promise<LineAnswer> {
    this.write(frame(line, payload))
    const answer = await this.answer()
    if (answer === null)
      throw new Error(
        `the server closed the connection instead of answering "${line.slice(0, 40)}"`,
      )
    return answer
  }

  /** Like request, but expects `ok` and returns it; throws with the err line otherwise. */
  async ok(line: string, payload?: Buffer | string): Promise<LineAnswer & { ok: true }> {
    const answer = await this.request(line, payload)
    if (!answer.ok)
      throw new Error(`"${line.slice(0, 40)}" answered err ${answer.code} ${answer.message}`)
    return answer
  }

  write(bytes: Buffer | string): void {
    this.socket.write(bytes)
  }

  /** The next answer, or null once the server has closed the connection. */
  answer(): Promise<LineAnswer | null> {
    return new Promise((resolve) => {
      this.#waiting.push(resolve)
      this.#deliver()
      if (this.#ended) for (const waiter of this.#waiting.splice(0)) waiter(null)
    })
  }

  end(): Promise<void> {
    this.socket.end()
    return this.closed
  }

  destroy(): void {
    this.socket.destroy()
  }

  #deliver(): void {
    while (this.#waiting.length > 0) {
      const answer = this.#parse()
      if (answer === undefined) return
      ;(this.#waiting.shift() as (answer: LineAnswer) => void)(answer)
    }
  }

  /** One complete answer off the buffer, or undefined when it has not fully arrived. */
  #parse(): LineAnswer | undefined {
    const lf = this.#buffer.indexOf(0x0a)
    if (lf === -1) return undefined
    const line = this.#buffer.subarray(0, lf).toString('utf8')
    const payloadHead = /^ok ([sbj]) (\d+)$/.exec(line)
    if (payloadHead !== null) {
      const length = Number(payloadHead[2])
      if (this.#buffer.length < lf + 1 + length + 1) return undefined
      const payload = Buffer.from(this.#buffer.subarray(lf + 1, lf + 1 + length))
      this.#buffer = this.#buffer.subarray(lf + 1 + length + 1)
      return {
        ok: true,
        kind: payloadHead[1] as 's' | 'b' | 'j',
        payload,
        text: payload.toString('utf8'),
      }
    }
    this.#buffer = this.#buffer.subarray(lf + 1)
    if (line === 'ok') return { ok: true }
    if (line.startsWith('ok ')) return { ok: true, word: line.slice(3) }
    const err = /^err (\S+) ?(.*)$/.exec(line)
    if (err !== null) return { ok: false, code: err[1] as string, message: err[2] as string }
    throw new Error(`unexpected answer line: ${JSON.stringify(line)}`)
  }
}

/** The bytes of one request: the line, and for a payload its byte count, the bytes and LF. */
export function frame(line: string, payload?: Buffer | string): Buffer {
  if (payload === undefined) return Buffer.from(`${line}\n`)
  const bytes = typeof payload === 'string' ? Buffer.from(payload, 'utf8') : payload
  return Buffer.concat([Buffer.from(`${line} ${bytes.length}\n`), bytes, Buffer.from('\n')])
}
