import { spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { rmSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { freePort } from '../../lib/local-cluster/free-port.js'

/** A `redis-server` started by {@link startRedisServer}. */
export interface LocalRedis {
  port: number
  /** `redis://127.0.0.1:<port>` */
  url: string
  /** What the server reports as its version, e.g. `7.0.15`. */
  version: string
  /** Stops the server (SIGTERM, SIGKILL after 5 s) and removes its directory; idempotent. */
  stop(): Promise<void>
}

/** Options of {@link startRedisServer}. */
export interface RedisServerOptions {
  /** @default '/usr/bin/redis-server', or `$REDIS_SERVER` */
  binary?: string
  /** @default 10000 */
  startTimeoutMillis?: number
  /**
   * What the server persists: nothing (the default, how most session setups run it), or an
   * append-only file flushed to disk once a second (`everysec`) or before every reply (`always`),
   * the settings under which a write survives a crash as the library's writes do.
   * @default 'none'
   */
  persistence?: RedisPersistence
}

/** See {@link RedisServerOptions.persistence}. */
export type RedisPersistence = 'none' | 'everysec' | 'always'

const ATTEMPTS = 5

/**
 * Starts a throwaway `redis-server` on a free 127.0.0.1 port, the way people run it for
 * sessions: nothing persisted (`--save ""`, `--appendonly no`) unless `persistence` asks for an
 * append-only file, its working directory a new temporary one. Never touches another server.
 * The server is SIGKILLed when this process exits without having stopped it (an uncaught
 * error, `process.exit` from a signal handler), and a Ctrl-C reaches it with the rest of the
 * foreground process group.
 *
 * @example
 * const redis = await startRedisServer()
 * try { ... } finally { await redis.stop() }
 */
export async function startRedisServer(options: RedisServerOptions = {}): Promise<LocalRedis> {
  const binary = options.binary ?? process.env.REDIS_SERVER ?? '/usr/bin/redis-server'
  const timeoutMillis = options.startTimeoutMillis ?? 10_000
  const dir = await mkdtemp(path.join(os.tmpdir(), 'session-shards-bench-redis-'))
  let lastError: unknown
  for (let attempt = 1; attempt <= ATTEMPTS; attempt++) {
    const port = await freePort()
    try {
      return await launch(binary, port, dir, timeoutMillis, options.persistence ?? 'none')
    } catch (error) {
      lastError = error
      // Another process may have taken the port between freePort() and the bind: try another.
      if (!(error instanceof PortTakenError)) break
    }
  }
  await rm(dir, { recursive: true, force: true })
  throw new Error(`Could not start ${binary}.`, { cause: lastError })
}

class PortTakenError extends Error {}

async function launch(
  binary: string,
  port: number,
  dir: string,
  timeoutMillis: number,
  persistence: RedisPersistence,
): Promise<LocalRedis> {
  const settings = {
    port: String(port),
    bind: '127.0.0.1',
    save: '',
    appendonly: persistence === 'none' ? 'no' : 'yes',
    ...(persistence === 'none' ? {} : { appendfsync: persistence }),
    dir,
    daemonize: 'no',
    logfile: '', // stdout, read below until the server is ready
  }
  const child = spawn(
    binary,
    Object.entries(settings).flatMap(([name, value]) => [`--${name}`, value]),
    { stdio: ['ignore', 'pipe', 'pipe'] },
  )
  const killOnExit = (): void => {
    child.kill('SIGKILL')
    rmSync(dir, { recursive: true, force: true })
  }
  process.on('exit', killOnExit)

  let log = ''
  let ready = false
  const version = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      reject(new Error(`redis-server did not get ready within ${timeoutMillis} ms:\n${log}`))
    }, timeoutMillis)
    const onData = (chunk: Buffer): void => {
      if (ready) return
      log += chunk.toString('utf8')
      if (log.includes('Ready to accept connections')) {
        ready = true
        clearTimeout(timer)
        resolve(/version=([\d.]+)/.exec(log)?.[1] ?? 'unknown')
      }
    }
    child.stdout.on('data', onData)
    child.stderr.on('data', onData)
    child.once('error', (error) => {
      clearTimeout(timer)
      reject(error)
    })
    child.once('exit', (code, signal) => {
      clearTimeout(timer)
      const message = `redis-server exited with ${signal ?? code} before it was ready:\n${log}`
      reject(/address already in use/i.test(log) ? new PortTakenError(message) : new Error(message))
    })
  }).catch((error: unknown) => {
    process.off('exit', killOnExit)
    throw error
  })

  let stopping: Promise<void> | undefined
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    version,
    stop: () => (stopping ??= stop(child, dir, killOnExit)),
  }
}

async function stop(child: ChildProcess, dir: string, killOnExit: () => void): Promise<void> {
  if (child.exitCode === null && child.signalCode === null) {
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
    child.kill('SIGTERM')
    const timer = setTimeout(() => child.kill('SIGKILL'), 5000)
    await exited
    clearTimeout(timer)
  }
  process.off('exit', killOnExit)
  await rm(dir, { recursive: true, force: true })
}
