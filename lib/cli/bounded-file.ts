/** Reading a small file the CLI is pointed at (a config file, a token file) with a bound. */
import { open } from 'node:fs/promises'

/**
 * The text of `file` (UTF-8), or null when it is longer than `maxBytes`: only that much (and
 * one byte more) is ever read, so a huge file, or a link to /dev/zero, is refused rather than
 * held whole. Errors opening or reading it are thrown as Node gives them (with their `code`).
 */
export async function readTextAtMost(file: string, maxBytes: number): Promise<string | null> {
  const handle = await open(file, 'r')
  try {
    const buffer = Buffer.alloc(maxBytes + 1)
    let length = 0
    while (length < buffer.length) {
      const { bytesRead } = await handle.read(buffer, length, buffer.length - length, null)
      if (bytesRead === 0) break
      length += bytesRead
    }
    return length > maxBytes ? null : buffer.toString('utf8', 0, length)
  } finally {
    await handle.close()
  }
}
