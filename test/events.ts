import t from 'tap'
import { readFile } from 'node:fs/promises'
import { SESSION_MANAGER_EVENTS } from '../lib/events.js'
import type { SessionManagerEvents } from '../lib/index.js'

// Every event the manager's type declares is documented in docs/errors.md, and nothing else.
t.test('docs/errors.md documents exactly the events SessionManagerEvents declares', async (t) => {
  const doc = await readFile(new URL('../docs/errors.md', import.meta.url), 'utf8')
  const events = doc.slice(doc.indexOf('## Events'))
  const documented = [...events.matchAll(/^\| `([a-z-]+)` \|/gm)].map((match) => match[1])
  t.same([...documented].sort(), [...SESSION_MANAGER_EVENTS].sort())
  // The list in lib/events.ts is the map's keys, no more and no fewer.
  const names: Record<keyof SessionManagerEvents, true> = {
    'store-down': true,
    'store-up': true,
    'repair-needed': true,
    'degraded-write': true,
    'read-repair': true,
    'write-after-destroy': true,
    'session-moved': true,
    'unreadable-copy': true,
    'config-mismatch': true,
  }
  t.same([...SESSION_MANAGER_EVENTS].sort(), Object.keys(names).sort())
})
