/** Exit codes of every command. */
export const EXIT_OK = 0
/** The command ran and found a problem: a store down, a repair that failed, a lost write. */
export const EXIT_PROBLEM = 1
/** Stopped by Ctrl-C (128 + SIGINT, as a shell reports it). */
export const EXIT_INTERRUPTED = 130
/** Bad arguments or configuration; nothing was done. */
export const EXIT_USAGE = 2

/** C0 controls but tab and newline, DEL, and C1 controls (ESC and CSI start escapes). */
const CONTROL_CHARACTERS = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/g

/** A column of {@link formatTable}. */
export interface Column {
  header: string
  align?: 'left' | 'right'
}

/**
 * Where a command's output goes: human lines and tables on stdout, or (with `--json`) one JSON
 * document on stdout; notes and errors on stderr. Every write passes through a filter that
 * masks the configured passwords, as a last line of defence: nothing the CLI prints is meant to
 * hold one in the first place. Lines for people also lose their control characters: a name
 * from a config file or the command line, quoted in an error, could otherwise carry terminal
 * escapes that clear the screen or rewrite what it shows.
 */
export class Output {
  readonly json: boolean
  readonly #secrets = new Set<string>()
  readonly #stdout: NodeJS.WritableStream
  readonly #stderr: NodeJS.WritableStream
  #resultWritten = false

  constructor(
    json: boolean,
    streams: { stdout?: NodeJS.WritableStream; stderr?: NodeJS.WritableStream } = {},
  ) {
    this.json = json
    this.#stdout = streams.stdout ?? process.stdout
    this.#stderr = streams.stderr ?? process.stderr
  }

  /** Strings never to print (store passwords); each is masked as `***`. */
  addSecrets(secrets: Iterable<string | undefined>): void {
    for (const secret of secrets) {
      if (secret === undefined || secret.length < 3) continue
      this.#secrets.add(secret)
      this.#secrets.add(encodeURIComponent(secret))
    }
  }

  /** A line of human output on stdout; nothing in `--json` mode. */
  line(text = ''): void {
    if (!this.json) this.#stdout.write(this.#printable(text) + '\n')
  }

  /** A progress or timeline note: stdout for people, stderr in `--json` mode (stdout stays JSON). */
  note(text: string): void {
    ;(this.json ? this.#stderr : this.#stdout).write(this.#printable(text) + '\n')
  }

  /** A table on stdout; nothing in `--json` mode. */
  table(columns: readonly Column[], rows: readonly (readonly string[])[]): void {
    this.line(formatTable(columns, rows))
  }

  /** The JSON document of `--json` mode; nothing otherwise. */
  result(value: unknown): void {
    if (!this.json) return
    this.#resultWritten = true
    // The strings masked, not the document: a secret that is also JSON text (`true`, a
    // number, part of a key) must not break it.
    const masked = (_key: string, field: unknown) =>
      typeof field === 'string' ? this.mask(field) : field
    this.#stdout.write(JSON.stringify(value, masked, 2) + '\n')
  }

  /** One line on stderr, in both modes. */
  error(text: string): void {
    this.#stderr.write(this.#printable(oneLine(text)) + '\n')
  }

  /**
   * A command that could not run or failed: one line on stderr and, in `--json` mode, a JSON
   * document on stdout (`{ ok: false, error: { code, message } }`) unless the command already
   * printed its own, so that a script always gets a document to parse.
   */
  failure(text: string, code: string): void {
    this.error(text)
    if (this.json && !this.#resultWritten)
      this.result({ ok: false, error: { code, message: oneLine(text) } })
  }

  /** Resolves once stdout and stderr have handed everything written to them to the OS. */
  flushed(): Promise<void> {
    const flush = (stream: NodeJS.WritableStream): Promise<void> =>
      new Promise((resolve) => stream.write('', () => resolve()))
    return Promise.all([flush(this.#stdout), flush(this.#stderr)]).then(() => undefined)
  }

  /** {@link mask}, and every control character but newline and tab shown as "?". */
  #printable(text: string): string {
    return this.mask(text).replace(CONTROL_CHARACTERS, '?')
  }

  mask(text: string): string {
    let masked = text
    for (const secret of this.#secrets) masked = masked.replaceAll(secret, '***')
    return masked
  }
}

/** Columns padded to their widest cell, two spaces apart, a header line first. */
export function formatTable(
  columns: readonly Column[],
  rows: readonly (readonly string[])[],
): string {
  const widths = columns.map((column, index) =>
    Math.max(column.header.length, ...rows.map((row) => (row[index] ?? '').length)),
  )
  const render = (cells: readonly string[]): string =>
    columns
      .map((column, index) => {
        const cell = cells[index] ?? ''
        const width = widths[index] ?? 0
        return column.align === 'right' ? cell.padStart(width) : cell.padEnd(width)
      })
      .join('  ')
      .trimEnd()
  return [render(columns.map((column) => column.header)), ...rows.map(render)].join('\n')
}

/** Collapses a (possibly multi-line) message to its first line. */
export function oneLine(text: string): string {
  return text.split('\n', 1)[0]?.trim() ?? ''
}

/** `1234567` → `1,234,567`. */
export function formatCount(value: number): string {
  return value.toLocaleString('en-US')
}

/** Milliseconds with a precision that suits them: `0.42`, `3.1`, `250`. */
export function formatMillis(value: number): string {
  if (value < 1) return value.toFixed(2)
  if (value < 10) return value.toFixed(1)
  return value.toFixed(0)
}
