/** Where the CLI finds its configuration (a file or the environment), checked like the library's options. */
import path from 'node:path'
import { pathToFileURL } from 'node:url'
import { InvalidOptionError } from '../errors.js'
import type { ResolvedOptions, SessionManagerOptions } from '../options.js'
import type { ResolvedStore, StoreOptions } from '../store-options.js'
import { resolveOptions } from '../options.js'
import { readTextAtMost } from './bounded-file.js'
import type { CommandContext } from './command.js'

/** Environment variables the CLI reads its configuration from when there is no file. */
export const STORES_VARIABLE = 'SESSION_SHARDS_STORES'
export const COPIES_VARIABLE = 'SESSION_SHARDS_COPIES'

/** File names looked for in the working directory, in this order. */
export const CONFIG_FILES = ['session-shards.config.json', 'session-shards.config.mjs'] as const

/** The configuration is missing or invalid: the CLI prints the message and exits with code 2. */
export class ConfigError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'ConfigError'
  }
}

/** The options the CLI runs with, checked like `createSessionManager` checks them. */
export interface LoadedConfig {
  /** For `createSessionManager`: the options as configured (see {@link oneShotOptions}). */
  options: SessionManagerOptions
  /** The same, resolved: defaults applied, store URIs parsed. */
  resolved: ResolvedOptions
  /** Where they came from: a file path or `SESSION_SHARDS_STORES`. */
  source: string
  /** Store passwords, so that output can mask them should one ever slip into a message. */
  passwords: string[]
}

/** Every option of createSessionManager: the type makes the compiler list each one. */
const OPTION_NAMES: Record<keyof SessionManagerOptions, true> = {
  stores: true,
  copies: true,
  minCopies: true,
  maxReadStores: true,
  table: true,
  ttlSeconds: true,
  connectTimeoutMillis: true,
  queryTimeoutMillis: true,
  connectionsPerStore: true,
  codec: true,
  maxSessionBytes: true,
  compression: true,
  encryption: true,
  orderCacheSize: true,
  maxOperationsInFlight: true,
  failThreshold: true,
  healthCheckIntervalMillis: true,
  hintWindowMillis: true,
  transientRetries: true,
  readQuorum: true,
  readLeaseMillis: true,
  placement: true,
  previousStores: true,
  previousPlacement: true,
  batching: true,
  ownerKey: true,
  secrets: true,
  acceptUnsignedIds: true,
  sweepIntervalSeconds: true,
  sweepGraceSeconds: true,
  tombstoneTtlSeconds: true,
  clock: true,
  meterProvider: true,
}

/**
 * Finds the configuration: `--config <path>` (`.json`, or `.mjs` with a default export), else
 * `session-shards.config.json` / `.mjs` in `cwd`, else `SESSION_SHARDS_STORES`
 * (`id=mysql://user:pass@host:port/db,...`) with an optional `SESSION_SHARDS_COPIES`.
 *
 * @throws {@link ConfigError} with a one-line message that never repeats a URI or password.
 */
export async function loadConfig(
  configPath: string | undefined,
  env: NodeJS.ProcessEnv = process.env,
  cwd: string = process.cwd(),
): Promise<LoadedConfig> {
  let raw: unknown
  let source: string
  if (configPath !== undefined) {
    // Not named in errors: a value given for an option is never shown (a URI pasted there
    // would hold a password).
    source = 'the --config file'
    raw = await readConfigFile(path.resolve(cwd, configPath), source, true)
  } else {
    const found = await firstConfigFile(cwd)
    if (found !== null) {
      source = found.name
      raw = found.options
    } else if ((env[STORES_VARIABLE] ?? '') !== '') {
      source = STORES_VARIABLE
      raw = optionsFromEnv(env)
    } else {
      throw new ConfigError(
        `no configuration: pass --config <file>, create ${CONFIG_FILES.join(' or ')} here, or set ${STORES_VARIABLE}="id=mysql://user:pass@host:port/db,..."`,
      )
    }
  }
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    throw new ConfigError(`${source} must hold an object of createSessionManager options`)
  }
  // A misspelt option would otherwise run with its default: a repair placing copies by the
  // wrong `copies` or store list, removing the copies it then counts as extra.
  const unknown = Object.keys(raw).find((key) => !Object.hasOwn(OPTION_NAMES, key))
  if (unknown !== undefined) {
    throw new ConfigError(
      `${source}: "${unknown.slice(0, 40)}" is not an option of createSessionManager`,
    )
  }
  const options = raw as SessionManagerOptions
  let resolved: ResolvedOptions
  try {
    resolved = resolveOptions(options)
  } catch (error) {
    if (error instanceof InvalidOptionError) throw new ConfigError(`${source}: ${error.message}`)
    throw error
  }
  const passwords = allStores(resolved).flatMap((store) => {
    const password = store.poolOptions.password
    return typeof password === 'string' && password !== '' ? [password] : []
  })
  return { options, resolved, source, passwords }
}

/** {@link loadConfig} for a command: its `--config`, and its output told to mask the passwords. */
export async function loadCommandConfig(context: CommandContext): Promise<LoadedConfig> {
  const config = await loadConfig(context.configPath)
  context.out.addSecrets(config.passwords)
  return config
}

/**
 * Every store the options name: the configured ones, then those only in `previousStores`
 * (retiring during a change of the store list), which may still hold copies.
 */
export function allStores(resolved: ResolvedOptions): ResolvedStore[] {
  const current = new Set(resolved.stores.map((store) => store.id))
  const retiring = (resolved.previousStores ?? []).filter((store) => !current.has(store.id))
  return [...resolved.stores, ...retiring]
}

/** Whether a store is only in `previousStores`. */
export function isRetiring(resolved: ResolvedOptions, storeId: string): boolean {
  return !resolved.stores.some((store) => store.id === storeId)
}

/**
 * The options for a manager that lives for one command: as configured, with the background
 * sweep off (a long-running command such as `serve` uses {@link LoadedConfig.options}).
 */
export function oneShotOptions(config: LoadedConfig): SessionManagerOptions {
  return { ...config.options, sweepIntervalSeconds: 0 }
}

/** `host:port/database` (or `socket/database`) of a store: what the CLI shows, never the user or password. */
export function storeAddress(store: ResolvedStore): string {
  const { host, port, socketPath, database } = store.poolOptions
  const where =
    typeof socketPath === 'string' ? socketPath : `${host ?? 'localhost'}:${port ?? 3306}`
  return `${where}/${database ?? ''}`
}

async function firstConfigFile(cwd: string): Promise<{ name: string; options: unknown } | null> {
  for (const name of CONFIG_FILES) {
    const options = await readConfigFile(path.join(cwd, name), `config file ${name}`, false)
    if (options !== undefined) return { name, options }
  }
  return null
}

/** The most a config file may hold: options, not data (a bound on what is read). */
const MAX_CONFIG_FILE_BYTES = 1024 * 1024

/**
 * The options in a `.json` or `.mjs` file; undefined when it does not exist and need not.
 * `shown` names the file in errors ("config file x.json", "the --config file").
 */
async function readConfigFile(file: string, shown: string, required: boolean): Promise<unknown> {
  const extension = path.extname(file)
  if (extension !== '.json' && extension !== '.mjs') {
    throw new ConfigError(`${shown} must end in .json or .mjs`)
  }
  let text: string | null
  try {
    text = await readTextAtMost(file, MAX_CONFIG_FILE_BYTES)
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code
    if (code === 'ENOENT' && !required) return undefined
    if (code === 'ENOENT') throw new ConfigError(`${shown} not found`)
    throw new ConfigError(
      `cannot read ${shown} (${(error as NodeJS.ErrnoException).code ?? 'error'})`,
    )
  }
  if (text === null) {
    throw new ConfigError(`${shown} is larger than ${MAX_CONFIG_FILE_BYTES / 1024 / 1024} MiB`)
  }
  if (extension === '.json') {
    try {
      return JSON.parse(text) as unknown
    } catch (error) {
      // V8 quotes the offending text in its message, and that text may hold a password.
      const where = /at position \d+(?: \(line \d+ column \d+\))?/.exec((error as Error).message)
      throw new ConfigError(`${shown} is not valid JSON${where === null ? '' : ` (${where[0]})`}`)
    }
  }
  let module: { default?: unknown }
  try {
    module = (await import(pathToFileURL(file).href)) as { default?: unknown }
  } catch (error) {
    const name = error instanceof Error ? error.name : 'Error'
    throw new ConfigError(`cannot load ${shown} (${name}); run it with node to see why`)
  }
  if (module.default === undefined) {
    throw new ConfigError(`${shown} must \`export default\` the createSessionManager options`)
  }
  return module.default
}

/** Options from `SESSION_SHARDS_STORES` and `SESSION_SHARDS_COPIES`; URIs are checked later by resolveOptions. */
function optionsFromEnv(env: NodeJS.ProcessEnv): SessionManagerOptions {
  const entries = (env[STORES_VARIABLE] ?? '')
    .split(',')
    .map((entry) => entry.trim())
    .filter((entry) => entry !== '')
  const stores: StoreOptions[] = entries.map((entry, index) => {
    const equals = entry.indexOf('=')
    if (equals <= 0) {
      throw new ConfigError(
        `${STORES_VARIABLE} entry ${index + 1} must look like id=mysql://user:password@host:port/database`,
      )
    }
    return { id: entry.slice(0, equals).trim(), uri: entry.slice(equals + 1).trim() }
  })
  const options: SessionManagerOptions = { stores }
  const copies = env[COPIES_VARIABLE]
  if (copies !== undefined && copies !== '') {
    if (!/^\d+$/.test(copies.trim())) {
      throw new ConfigError(`${COPIES_VARIABLE} must be a whole number, e.g. 2`)
    }
    options.copies = Number(copies.trim())
  }
  return options
}
