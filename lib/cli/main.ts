#!/usr/bin/env node
/**
 * The `session-shards` command: operations on a configured cluster (schema, status, locate,
 * show, sweep, repair, rebalance), the session server, and a self-contained demo. See
 * docs/cli.md.
 */
import { parseArgs } from 'node:util'
import { debug } from '../debug.js'
import { InvalidSessionIdError, SessionShardsError } from '../errors.js'
import type { Command, CommandContext, OptionSpecs } from './command.js'
import { parseArgsMessage, UsageError } from './command.js'
import { ConfigError, COPIES_VARIABLE, STORES_VARIABLE } from './config.js'
import { EXIT_OK, EXIT_PROBLEM, EXIT_USAGE, oneLine, Output } from './output.js'
import { packageVersion } from './package-info.js'

/** A command as the top-level help lists it; its module is imported only when it is asked for. */
interface CommandEntry {
  name: string
  /** One line for the top-level help. */
  summary: string
  load(): Promise<Command>
}

// Loading a command loads what it needs (most need the driver, mysql2), and the top-level help
// and an unknown command's error load none. `--help` took 0.32x the CPU of loading every
// command up front (15 runs each, in turn), a command's own `--help` 0.68x.
const COMMANDS: readonly CommandEntry[] = [
  {
    name: 'schema',
    summary: 'schema apply: create the session tables on every store (idempotent)',
    load: async () => (await import('./commands/schema.js')).schemaCommand,
  },
  {
    name: 'status',
    summary: 'each store: up/down, probe latency, rows (live, expired, tombstones), circuit state',
    load: async () => (await import('./commands/status.js')).statusCommand,
  },
  {
    name: 'locate',
    summary: "locate <id>: the stores a session's copies prefer, in order",
    load: async () => (await import('./commands/locate.js')).locateCommand,
  },
  {
    name: 'show',
    summary: 'show <id>: every copy of a session on every store',
    load: async () => (await import('./commands/show.js')).showCommand,
  },
  {
    name: 'sweep',
    summary: 'delete expired sessions and spent tombstones on every store',
    load: async () => (await import('./commands/sweep.js')).sweepCommand,
  },
  {
    name: 'repair',
    summary: "put every session's copies where they belong (after an outage)",
    load: async () => (await import('./commands/repair.js')).repairCommand,
  },
  {
    name: 'rebalance',
    summary: 'move every session to its stores after a change of the store list',
    load: async () => (await import('./commands/rebalance.js')).rebalanceCommand,
  },
  {
    name: 'import',
    summary: 'import express-mysql-session: copy its live sessions in, so a switch logs nobody out',
    load: async () => (await import('./commands/import.js')).importCommand,
  },
  {
    name: 'serve',
    summary: 'a session server for other languages: line protocol and HTTP/JSON API',
    load: async () => (await import('./commands/serve.js')).serveCommand,
  },
  {
    name: 'bench',
    summary: 'how to run the benchmark (it lives in the repository, not in the package)',
    load: async () => (await import('./commands/bench.js')).benchCommand,
  },
  {
    name: 'demo',
    summary: 'boot 3 local stores, run traffic, SIGKILL one, restart it, repair, report',
    load: async () => (await import('./commands/demo.js')).demoCommand,
  },
]

const COMMON_OPTIONS: OptionSpecs = {
  config: { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
}

function topLevelHelp(): string {
  const width = Math.max(...COMMANDS.map((entry) => entry.name.length))
  return `Usage: session-shards <command> [options]

Commands:
${COMMANDS.map((entry) => `  ${entry.name.padEnd(width)}  ${entry.summary}`).join('\n')}

Options of every command:
  --config <file>  createSessionManager options from a .json file or an .mjs default export
  --json           one JSON document on stdout, for scripts
  -h, --help       the command's help

Configuration, the first found: --config; session-shards.config.json or
session-shards.config.mjs in the current directory; the environment:
  ${STORES_VARIABLE}="store-a=mysql://user:pass@host:3306/db,store-b=mysql://..."
  ${COPIES_VARIABLE}=2   (optional)
The demo and bench commands need none.

Exit codes: 0 ok, 1 the command found a problem (a store down, a failed repair, a lost
write), 2 usage or configuration error, 130 stopped by Ctrl-C.

session-shards <command> --help for more; docs/cli.md for all of it.`
}

/** Runs the CLI with `argv` (without node and the script); resolves the exit code. */
async function main(
  argv: readonly string[],
  out = new Output(argv.includes('--json')),
): Promise<number> {
  const [name, ...rest] = argv
  if (name === undefined) {
    process.stderr.write(topLevelHelp() + '\n')
    return EXIT_USAGE
  }
  if (name === '--help' || name === '-h' || name === 'help') {
    const entry = COMMANDS.find((c) => c.name === rest[0])
    process.stdout.write((entry === undefined ? topLevelHelp() : (await entry.load()).help) + '\n')
    return EXIT_OK
  }
  if (name === '--version' || name === '-v') {
    process.stdout.write(packageVersion() + '\n')
    return EXIT_OK
  }
  const entry = COMMANDS.find((c) => c.name === name)
  if (entry === undefined) {
    // The name is not echoed in full: it could be a mistyped URI with a password.
    const shown =
      name.startsWith('-') || name.length > 20 || name.includes(':') ? 'that' : `"${name}"`
    out.failure(
      `session-shards: unknown command ${shown}; run session-shards --help for the list`,
      'USAGE',
    )
    return EXIT_USAGE
  }
  const command = await entry.load()
  let context: CommandContext
  try {
    const specs = { ...COMMON_OPTIONS, ...command.options }
    const { values, positionals } = parseArgs({
      args: dashIdsAsPositionals(rest, specs),
      options: specs,
      allowPositionals: true,
      strict: true,
    })
    if (values['help'] === true) {
      process.stdout.write(command.help + '\n')
      return EXIT_OK
    }
    const configPath = values['config']
    context = {
      values: values as CommandContext['values'],
      positionals,
      configPath: typeof configPath === 'string' ? configPath : undefined,
      out,
    }
  } catch (error) {
    out.failure(
      `session-shards ${entry.name}: ${parseArgsMessage(error)}; see session-shards ${entry.name} --help`,
      'USAGE',
    )
    return EXIT_USAGE
  }
  try {
    return await command.run(context)
  } catch (error) {
    if (
      error instanceof UsageError ||
      error instanceof ConfigError ||
      error instanceof InvalidSessionIdError
    ) {
      out.failure(`session-shards ${entry.name}: ${error.message}`, errorCode(error, 'USAGE'))
      return EXIT_USAGE
    }
    debug('cli: %s failed: %O', entry.name, error)
    out.failure(
      `session-shards ${entry.name}: ${oneLine(error instanceof Error ? error.message : String(error))}`,
      errorCode(error, 'FAILED'),
    )
    return EXIT_PROBLEM
  }
}

/**
 * Session ids are base64url and may begin with "-" (1 in 64 generated ids does, 1 in 4,096
 * with "--"). This CLI's short options are single letters, so a token of one "-" and more than
 * one character is an argument, not a group of short options; so is a token of "--" that
 * names no option, has no "=" and is as long as a session id (16 characters at least). Both go
 * after "--", where parseArgs takes them as positionals. The value of a string option
 * (`--config -x.json`) is left where it is.
 */
function dashIdsAsPositionals(args: readonly string[], specs: OptionSpecs): string[] {
  const options: string[] = []
  const moved: string[] = []
  for (const [index, arg] of args.entries()) {
    if (arg === '--') return [...options, ...args.slice(index), ...moved]
    const previous = index > 0 ? (args[index - 1] as string) : ''
    const isValue = previous.startsWith('--') && specs[previous.slice(2)]?.type === 'string'
    const dashedId =
      /^-[^-]./.test(arg) || (/^--[^=]{14,}$/.test(arg) && specs[arg.slice(2)] === undefined)
    if (dashedId && !isValue) moved.push(arg)
    else options.push(arg)
  }
  return moved.length === 0 ? options : [...options, '--', ...moved]
}

/** The library's stable code of an error (a SessionShardsError's), else `fallback`. */
function errorCode(error: unknown, fallback: string): string {
  const code = (error as { code?: unknown } | null)?.code
  return error instanceof SessionShardsError && typeof code === 'string' ? code : fallback
}

const out = new Output(process.argv.includes('--json'))
const exitCode = await main(process.argv.slice(2), out)
process.exitCode = exitCode
// Everything the commands open is closed; should a driver socket linger, do not hang on it,
// but leave only once stdout and stderr have taken everything (a pipe may be slow to read).
setTimeout(() => void out.flushed().then(() => process.exit(exitCode)), 2000).unref()
