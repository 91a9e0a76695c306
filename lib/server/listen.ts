/** Starts a server listening and resolves its address; what its accepted sockets share. */
import type { AddressInfo, Server } from 'node:net'

/**
 * Idle time after which the OS starts probing an accepted connection (TCP keepalive), on both
 * listeners. A client whose machine vanished (no FIN, no RST) would otherwise keep its
 * connection, and the lock of its open session (renewed while the connection lasts), forever
 * when idleTimeoutMillis is 0.
 */
export const KEEPALIVE_DELAY_MILLIS = 30_000

/**
 * Connections beyond `maxConnections` are answered (`TOO_MANY_CONNECTIONS`) and closed; beyond
 * this many more, on either listener, Node drops them unanswered (a flood is not worth an
 * answer, and each refusal holds a socket for a moment).
 */
export const REFUSAL_HEADROOM = 64

/** Starts `server` listening; resolves its address, or rejects with the listen error (port taken...). */
export function listenOn(server: Server, port: number, host: string): Promise<AddressInfo> {
  return new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, host, () => {
      server.off('error', reject)
      resolve(server.address() as AddressInfo)
    })
  })
}
