/** Starts a server listening and resolves its address. */
import type { AddressInfo, Server } from 'node:net'

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
