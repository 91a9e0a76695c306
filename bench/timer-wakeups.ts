/**
 * What a timer beside a lone statement costs the client: `SELECT 1` through plain mysql2 at 1
 * in flight, for a fixed count, with one of the ways a hedge timer can be kept beside it, in a
 * process of its own (timed whole by `farm-bench --vs`, against the stores that
 * `bench/ab-processes.ts hold` keeps). docs/performance.md ("Reads") has the figures: on this
 * virtual machine a timer's wakeup costs far more than the JavaScript around the statement.
 *
 * Usage:
 *   node --import tsx bench/ab-processes.ts hold --state /tmp/ab.json &   # prints "ready"
 *   farm-bench -n 10 --timeout 300 \
 *     --vs 'node --import tsx bench/timer-wakeups.ts --state /tmp/ab.json --timer none' \
 *     -- node --import tsx bench/timer-wakeups.ts --state /tmp/ab.json --timer fired
 */
import { readFileSync } from 'node:fs'
import { parseArgs } from 'node:util'
import { createPool } from 'mysql2/promise'
import type { StoreOptions } from '../lib/index.js'

const USAGE = `node --import tsx bench/timer-wakeups.ts --state FILE [options]

  --state FILE      the stores bench/ab-processes.ts hold saved (required; the first is used)
  --timer MODE      none      no timer
                    fired     one timer, set again each time it fires (the deadline tracker's
                              way while a lone read is always pending)
                    interval  a setInterval
                    refresh   one timer pushed back with refresh() before every statement
                    each      a timer set before and cleared after every statement   [fired]
  --millis N        the timer's delay                                         [2]
  --statements N    statements sent, one at a time, after 1,000 untimed ones   [30000]`

const TIMERS = ['none', 'fired', 'interval', 'refresh', 'each'] as const
type TimerMode = (typeof TIMERS)[number]

const { values } = parseArgs({
  options: {
    state: { type: 'string' },
    timer: { type: 'string', default: 'fired' },
    millis: { type: 'string', default: '2' },
    statements: { type: 'string', default: '30000' },
    help: { type: 'boolean', short: 'h', default: false },
  },
})
const mode = values.timer as TimerMode
const millis = Number(values.millis)
const statements = Number(values.statements)
if (
  values.help ||
  values.state === undefined ||
  !TIMERS.includes(mode) ||
  !(millis >= 1) ||
  !Number.isSafeInteger(statements)
) {
  console.log(USAGE)
  process.exit(values.help ? 0 : 2)
}

const { stores } = JSON.parse(readFileSync(values.state, 'utf8')) as { stores: StoreOptions[] }
const { host, port, user, password, database } = stores[0]!
const pool = createPool({ host, port, user, password, database, connectionLimit: 1 })
const noop = (): void => {}

let stop = noop
if (mode === 'fired') {
  let timer: NodeJS.Timeout
  const set = (): void => {
    timer = setTimeout(set, millis).unref()
  }
  set()
  stop = () => clearTimeout(timer)
} else if (mode === 'interval') {
  const timer = setInterval(noop, millis).unref()
  stop = () => clearInterval(timer)
}
const refreshed = mode === 'refresh' ? setTimeout(noop, millis).unref() : undefined

const send = async (): Promise<void> => {
  if (mode === 'each') {
    const timer = setTimeout(noop, millis)
    await pool.execute('SELECT 1')
    clearTimeout(timer)
    return
  }
  refreshed?.refresh()
  await pool.execute('SELECT 1')
}
for (let i = 0; i < 1000; i++) await send()
for (let i = 0; i < statements; i++) await send()
stop()
clearTimeout(refreshed)
await pool.end()
