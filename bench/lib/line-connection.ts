import { connect } from 'node:net'
import type { Socket } from 'node:net'

/**
 * A lean client of the session server's line protocol for benchmarks: one exchange at a time,
 * each a batch of pipelined requests written at once and their answers read back. Rejects on
 * the first `err` answer: a benchmark that hides errors measures the wrong thing.
 */
export class LineConnection {
  readonly #socket: Socket
  #buffer: Buffer = Buffer.alloc(0)
  #pending:
    | {
        answers: number
        payloads: Buffer[]
        resolve: (payloads: Buffer[]) => void
        reject: (error: Error) => void
      }
    | undefined

  private constructor(socket: Socket) {
    this.#socket = socket
    socket.setNoDelay(true)
    socket.on('data', (chunk: Buffer) => {
      this.#buffer = this.#buffer.length === 0 ? chunk : Buffer.concat([this.#buffer, chunk])
      this.#read()
    })
    socket.on('close', () =>
      this.#pending?.reject(new Error('the session server closed the connection')),
    )
  }

  static open(port: number, host = '127.0.0.1'): Promise<LineConnection> {
    return new Promise((resolve, reject) => {
      const socket = connect({ port, host }, () => {
        socket.off('error', reject)
        resolve(new LineConnection(socket))
      })
      socket.once('error', reject)
    })
  }

  /** Writes `requests` (complete request bytes) and resolves the payloads of the `answers` answers that follow. */
  exchange(requests: Buffer, answers: number): Promise<Buffer[]> {
    if (this.#pending !== undefined) throw new Error('one exchange at a time')
    return new Promise((resolve, reject) => {
      this.#pending = { answers, payloads: [], resolve, reject }
      this.#socket.write(requests)
    })
  }

  close(): void {
    this.#socket.destroy()
  }

  #read(): void {
    const pending = this.#pending
    while (pending !== undefined && pending.answers > 0) {
      const lf = this.#buffer.indexOf(0x0a)
      if (lf === -1) return
      // `ok`, `ok <word>`, `ok <kind> <n>` + payload, or `err <code> <message>`.
      if (this.#buffer[0] === 0x65 /* e */) {
        this.#pending = undefined
        pending.reject(
          new Error(`session server: ${this.#buffer.subarray(0, lf).toString('utf8')}`),
        )
        return
      }
      const head = this.#buffer.subarray(0, lf).toString('latin1')
      const payload = /^ok [sbj] (\d+)$/.exec(head)
      if (payload !== null) {
        const length = Number(payload[1])
        if (this.#buffer.length < lf + 2 + length) return
        pending.payloads.push(this.#buffer.subarray(lf + 1, lf + 1 + length))
        this.#buffer = this.#buffer.subarray(lf + 2 + length)
      } else {
        this.#buffer = this.#buffer.subarray(lf + 1)
      }
      pending.answers--
    }
    if (pending !== undefined && pending.answers === 0) {
      this.#pending = undefined
      pending.resolve(pending.payloads)
    }
  }
}
