/** JSON sent by a client of the session server, parsed to exactly what it says or refused. */
import { RequestError } from './request-error.js'

/**
 * `text` parsed as JSON; INVALID_JSON with `notJsonMessage` when it is not JSON. A number beyond
 * a double's range (`1e400`) parses to ±Infinity, which the codec's JSON.stringify would store
 * as `null`, a value the client never sent: refused as INVALID_JSON too, as a body that is not
 * UTF-8 is.
 */
export function parseClientJson(text: string, notJsonMessage: string): unknown {
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch {
    throw new RequestError('INVALID_JSON', notJsonMessage)
  }
  // Walked every time: linear in what was parsed, about the parse's own cost, where a textual
  // pre-check either misses forms (a long integer part with a short exponent) or rescans.
  if (holdsInfinity(value)) {
    throw new RequestError(
      'INVALID_JSON',
      'A number in it is beyond the range of a double (it would be stored as null).',
    )
  }
  return value
}

/** Whether a parsed JSON value holds ±Infinity anywhere (walked without recursion: any depth). */
function holdsInfinity(value: unknown): boolean {
  const pending: unknown[] = [value]
  while (pending.length > 0) {
    const next = pending.pop()
    if (typeof next === 'number') {
      if (!Number.isFinite(next)) return true
    } else if (next !== null && typeof next === 'object') {
      for (const inner of Object.values(next)) pending.push(inner)
    }
  }
  return false
}
