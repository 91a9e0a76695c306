/** `session-shards serve`: the session server for programs in other languages. */
import { lookup } from 'node:dns/promises'
import type { AddressInfo } from 'node:net'
import { createSessionManager } from '../../session-manager.js'
import { InvalidOptionError } from '../../errors.js'
import { resolveServerOptions, startSessionServer } from '../../server/server.js'
import type { Command, CommandContext } from '../command.js'
import { readTextAtMost } from '../bounded-file.js'
import { UsageError, integerArgument, noPositionals } from '../command.js'
import { loadCommandConfig } from '../config.js'
import { EXIT_OK } from '../output.js'

/** Where `serve` takes the token from (a command-line flag would show it in `ps`). */
export const TOKEN_VARIABLE = 'SESSION_SHARDS_SERVER_TOKEN'

export const serveCommand: Command = {
  help: `Usage: session-shards serve --port P [--http-port Q] [--host 127.0.0.1]
                           [--allow 10.0.0.0/8,::1] [--token-file <file>]
                           [--max-connections N] [--touch-after-seconds S]
                           [--config <file>] [--json]

Serves the configured cluster's sessions to programs in any language: the line protocol on
port P (new, open <id> r|w, get, put, commit, close, ...) and, with --http-port, an HTTP/JSON
API (/sessions/:id). Runs until SIGTERM or SIGINT, then stops accepting connections, lets
commands in flight finish, releases every lock and exits. See docs/server.md.

  --port P             TCP port of the line protocol (0: any free port)
  --http-port Q        TCP port of the HTTP API (default: no HTTP API)
  --host ADDRESS       address to listen on (default 127.0.0.1); any non-loopback address
                       needs a token
  --allow LIST         client addresses or CIDR ranges allowed, comma-separated
                       (default: any client that can reach --host)
  --token-file FILE    the token clients must present, read from FILE; or set
                       ${TOKEN_VARIABLE}
  --max-connections N  open connections per listener (default 1024)
  --touch-after-seconds S
                       a line commit that changes nothing but the expiry, and would move
                       it by less than S seconds, is not written (default 0: every commit)

Exit code: 0 after a clean shutdown, 2 usage or configuration error.`,
  options: {
    port: { type: 'string' },
    'http-port': { type: 'string' },
    host: { type: 'string' },
    allow: { type: 'string' },
    'token-file': { type: 'string' },
    'max-connections': { type: 'string' },
    'touch-after-seconds': { type: 'string' },
  },
  run: runServe,
}

/** `session-shards serve`: resolves the exit code once the server has shut down after a signal. */
export async function runServe(context: CommandContext): Promise<number> {
  noPositionals(context, 'serve')
  const { values, out } = context
  const port = integerArgument('port', values['port'], 0)
  if (port === undefined) throw new UsageError('serve needs --port <port> for the line protocol')
  const httpPort = integerArgument('http-port', values['http-port'], 0)
  const maxConnections = integerArgument('max-connections', values['max-connections'], 1)
  const touchAfterSeconds = integerArgument('touch-after-seconds', values['touch-after-seconds'], 0)
  const host = typeof values['host'] === 'string' ? values['host'] : '127.0.0.1'
  const allow =
    typeof values['allow'] === 'string'
      ? values['allow'].split(',').map((entry) => entry.trim())
      : undefined
  const token = await readToken(values['token-file'])
  const config = await loadCommandConfig(context)
  if (token !== undefined) out.addSecrets([token])
  const serverOptions = {
    port,
    host,
    ...(httpPort === undefined ? {} : { httpPort }),
    ...(token === undefined ? {} : { token }),
    ...(allow === undefined ? {} : { allow }),
    ...(maxConnections === undefined ? {} : { maxConnections }),
    ...(touchAfterSeconds === undefined ? {} : { touchAfterSeconds }),
  }
  try {
    // Checked before any store is contacted: a refused host or allow-list is a usage error.
    resolveServerOptions({ manager: config.options, ...serverOptions })
    // A host name that does not resolve, too (one no interface has shows only when it binds).
    await lookup(host).catch(() => {
      throw new InvalidOptionError(
        'host',
        'must be an address of this machine, or a name that resolves to one (it does not resolve)',
      )
    })
  } catch (error) {
    if (error instanceof InvalidOptionError) throw new UsageError(error.message)
    throw error
  }
  // A server runs for long: the configured background sweep applies (one-shot commands turn it off).
  const manager = createSessionManager(config.options)
  manager.on('store-down', ({ storeId }: { storeId: string }) =>
    out.note(`store ${storeId} is down`),
  )
  manager.on('store-up', ({ storeId }: { storeId: string }) => out.note(`store ${storeId} is up`))
  let server
  try {
    server = await startSessionServer({ manager, ...serverOptions })
  } catch (error) {
    await manager.close()
    if (error instanceof InvalidOptionError) throw new UsageError(error.message)
    throw error
  }
  const addresses = {
    line: address(server.lineAddress),
    http: server.httpAddress && address(server.httpAddress),
  }
  out.result({ listening: addresses, stores: config.resolved.stores.map((store) => store.id) })
  out.note(`session server: line protocol on ${addresses.line}`)
  if (addresses.http !== null) out.note(`session server: HTTP API on http://${addresses.http}`)
  const signal = await new Promise<NodeJS.Signals>((resolve) => {
    process.once('SIGTERM', resolve)
    process.once('SIGINT', resolve)
  })
  out.note(`${signal}: finishing requests in flight, releasing locks...`)
  await server.close()
  await manager.close()
  out.note('session server stopped')
  return EXIT_OK
}

/** A token is a line of base64, not a file's worth (a bound on what is read). */
const MAX_TOKEN_FILE_BYTES = 4096

async function readToken(file: string | boolean | undefined): Promise<string | undefined> {
  if (typeof file === 'string') {
    let text: string | null
    try {
      text = await readTextAtMost(file, MAX_TOKEN_FILE_BYTES)
    } catch (error) {
      throw new UsageError(
        `cannot read --token-file (${(error as NodeJS.ErrnoException).code ?? 'error'})`,
      )
    }
    if (text === null) {
      throw new UsageError(`--token-file is larger than ${MAX_TOKEN_FILE_BYTES} bytes`)
    }
    return text.trim()
  }
  const fromEnv = process.env[TOKEN_VARIABLE]
  return fromEnv === undefined || fromEnv === '' ? undefined : fromEnv
}

function address(info: AddressInfo): string {
  return info.family === 'IPv6' ? `[${info.address}]:${info.port}` : `${info.address}:${info.port}`
}
