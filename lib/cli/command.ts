/** The shape of a CLI command, and the parsing of its arguments. */
import type { ParseArgsConfig } from 'node:util'
import { MAX_BATCH_SIZE } from '../call-arguments.js'
export { MAX_BATCH_SIZE }
import type { Output } from './output.js'
import { formatCount, oneLine } from './output.js'

/** Options of one command, in `node:util` parseArgs form. */
export type OptionSpecs = NonNullable<ParseArgsConfig['options']>

/** What a command gets when it runs. */
export interface CommandContext {
  /** Option values by name (strings and booleans, as parseArgs gives them). */
  values: Record<string, string | boolean | undefined>
  /** Arguments after the command name (for `schema apply`, `['apply']`). */
  positionals: string[]
  /** `--config`, when given. */
  configPath: string | undefined
  out: Output
}

/**
 * One `session-shards <name>` command; each lives in `lib/cli/commands/<name>.ts`, and
 * `lib/cli/main.ts` lists it by name.
 */
export interface Command {
  /** The full `--help` text. */
  help: string
  /** Options besides the common `--config`, `--json` and `--help`. */
  options: OptionSpecs
  /** Resolves the exit code (see output.ts). */
  run(context: CommandContext): Promise<number>
}

/**
 * An argument error's message in one line: parseArgs' first sentence (it names the option, not
 * its value; the sentences after it suggest a fix that would quote the argument), or ours.
 */
export function parseArgsMessage(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error)
  const first = oneLine(message).split(/\.\s/, 1)[0] ?? message
  return first.replace(/\.$/, '')
}

/** Bad arguments: the CLI prints the message and exits with code 2. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'UsageError'
  }
}

/** A whole number from `min` to `max` from a string option; throws {@link UsageError} otherwise. */
export function integerArgument(
  name: string,
  value: string | boolean | undefined,
  min: number,
  max = Number.MAX_SAFE_INTEGER,
): number | undefined {
  if (value === undefined) return undefined
  const number = Number(value)
  if (
    typeof value !== 'string' ||
    !/^\d+$/.test(value) ||
    !Number.isSafeInteger(number) ||
    number < min ||
    number > max
  ) {
    const range =
      max === Number.MAX_SAFE_INTEGER ? `of at least ${min}` : `from ${min} to ${formatCount(max)}`
    throw new UsageError(`--${name} must be a whole number ${range}`)
  }
  return number
}

/**
 * `--batch-size`: a whole number from 1 to the library's {@link MAX_BATCH_SIZE}; throws
 * {@link UsageError} otherwise, checked here so that a bad value is a usage error before any
 * store is asked, not the library's refusal once every store has been.
 */
export function batchSizeArgument(value: string | boolean | undefined): number | undefined {
  const size = integerArgument('batch-size', value, 1)
  if (size !== undefined && size > MAX_BATCH_SIZE) {
    throw new UsageError(`--batch-size must be at most ${formatCount(MAX_BATCH_SIZE)}`)
  }
  return size
}

/**
 * A share above 0 and at most 1 from a string option (`0.2`, `1`); throws {@link UsageError}
 * otherwise. The message names the option, never the value given.
 */
export function shareArgument(
  name: string,
  value: string | boolean | undefined,
): number | undefined {
  if (value === undefined) return undefined
  const number = Number(value)
  if (
    typeof value !== 'string' ||
    !/^(?:0|1)?(?:\.\d+)?$/.test(value) ||
    !(number > 0 && number <= 1)
  ) {
    throw new UsageError(`--${name} must be a number above 0 and at most 1`)
  }
  return number
}

/** The single positional argument a command takes (`locate <id>`), or a {@link UsageError}. */
export function singlePositional(context: CommandContext, command: string, what: string): string {
  const [value, ...rest] = context.positionals
  if (value === undefined)
    throw new UsageError(`${command} needs a ${what}: session-shards ${command} <${what}>`)
  if (rest.length > 0)
    throw new UsageError(
      `${command} takes one ${what}; got ${context.positionals.length} arguments`,
    )
  return value
}

/** Throws a {@link UsageError} when a command that takes no arguments got some. */
export function noPositionals(context: CommandContext, command: string): void {
  if (context.positionals.length > 0) {
    // The argument is not echoed: it could be a mistyped URI with a password.
    throw new UsageError(`${command} takes no arguments; got ${context.positionals.length}`)
  }
}
