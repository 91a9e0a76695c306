import t from 'tap'
import { randomBytes } from 'node:crypto'
import { performance } from 'node:perf_hooks'
import { PayloadAnnouncement, announcedPayload } from '../lib/server/payload-announcement.js'
import { startTestCluster } from './helpers/cluster.js'
import { proxiesFor } from './helpers/gray.js'
import { LineClient, frame } from './helpers/line-client.js'
import { createManager, idWithOrderPrefix, startManager } from './helpers/manager.js'
import { startServer, statementsSent } from './helpers/session-server.js'
import { sleep, waitFor } from './helpers/wait.js'

const cluster = await startTestCluster(t, { stores: 3 })
const manager = await startManager(t, cluster)

t.test('the whole command set, checked against the library', async (t) => {
  const server = await startServer(t, manager)
  const client = await LineClient.connect(server.lineAddress)
  t.teardown(() => client.destroy())

  const created = await client.ok('new')
  const id = created.word as string
  t.match(id, /^[A-Za-z0-9_-]{32}$/, 'new answers a fresh id')
  t.same(await manager.readSession(id), {}, 'new writes the session at once')
  t.same(await client.ok('exists'), { ok: true, word: '1' })

  await client.ok('put user', 'ada')
  await client.ok('put_all', '{"visits":3,"roles":["admin"]}')
  await client.ok('put_all {"inline": true}')
  await client.ok('put doomed', 'x')
  await client.ok('remove doomed')
  await client.ok('remove never-there')
  t.same(await client.ok('get user'), {
    ok: true,
    kind: 's',
    payload: Buffer.from('ada'),
    text: 'ada',
  })
  t.equal((await client.ok('get visits')).text, '3', 'a non-string value comes back as JSON')
  t.equal((await client.ok('get visits')).kind, 'j')
  t.same(JSON.parse((await client.ok('keys')).text as string), [
    'user',
    'visits',
    'roles',
    'inline',
  ])
  const expected = { user: 'ada', visits: 3, roles: ['admin'], inline: true }
  t.same(JSON.parse((await client.ok('get_all')).text as string), expected)
  t.same(await manager.readSession(id), {}, 'changes are buffered until commit')

  await client.ok('commit')
  t.same(await manager.readSession(id), expected, 'commit writes them')
  await client.ok('put after', 'commit')
  await client.ok('close')
  t.same(await manager.readSession(id), expected, 'close drops what was not committed')

  const reader = await client.ok(`open ${id} r`)
  t.same(reader, { ok: true })
  t.equal((await client.ok('get user')).text, 'ada')
  for (const write of [
    'put user',
    'remove user',
    'commit',
    'destroy',
    'regenerate_id',
    'put_all {}',
  ]) {
    const answer = await client.request(write, write === 'put user' ? 'eve' : undefined)
    t.match(answer, { ok: false, code: 'READ_ONLY' }, `${write} on an r session`)
  }
  t.match(await client.request('new'), { ok: false, code: 'SESSION_ALREADY_OPEN' })
  t.match(await client.request(`open ${id} w`), { ok: false, code: 'SESSION_ALREADY_OPEN' })
  await client.ok('close')
  await client.ok('close')
  t.match(await client.request('get user'), { ok: false, code: 'NO_OPEN_SESSION' })
  t.same(
    await client.ok(`exists ${id}`),
    { ok: true, word: '1' },
    'exists <id> needs no open session',
  )

  await client.ok(`open ${id} w`)
  await client.ok('put step', 'before regenerate')
  const regenerated = (await client.ok('regenerate_id')).word as string
  t.not(regenerated, id)
  t.equal(await manager.readSession(id), null, 'the old id is gone')
  t.same(await manager.readSession(regenerated), { ...expected, step: 'before regenerate' })
  await client.ok('put step', 'after regenerate')
  await client.ok('commit')
  t.same(await manager.readSession(regenerated), { ...expected, step: 'after regenerate' })
  await client.ok('destroy')
  t.equal(await manager.readSession(regenerated), null, 'destroy ends the session')
  t.match(await client.request('get step'), { ok: false, code: 'NO_OPEN_SESSION' }, 'and closes it')
  t.same(await client.ok(`exists ${regenerated}`), { ok: true, word: '0' })

  const fresh = manager.generateId()
  await client.ok(`open ${fresh} w`)
  t.same(
    JSON.parse((await client.ok('get_all')).text as string),
    {},
    'a missing session opens empty',
  )
  t.same(await client.ok('exists'), { ok: true, word: '0' })
  await client.ok('put_all {"from":"line"}')
  await client.ok('commit')
  await client.ok('close')
  t.same(await manager.readSession(fresh), { from: 'line' }, 'commit creates it')

  const written = await manager.createSession({ from: 'library' })
  await client.ok(`open ${written}`)
  t.equal((await client.ok('get from')).text, 'library', 'open without a mode is read-only')
  t.match(await client.request('get missing'), { ok: false, code: 'KEY_NOT_FOUND' })
  await client.ok('close')
})

t.test('values survive a put/get round trip: newlines, every byte value, unicode', async (t) => {
  const server = await startServer(t, manager)
  const client = await LineClient.connect(server.lineAddress)
  t.teardown(() => client.destroy())
  const id = (await client.ok('new')).word as string
  const allBytes = Buffer.from(Array.from({ length: 256 }, (_, i) => i))
  const values: Record<string, Buffer> = {
    newlines: Buffer.from('line 1\nline 2\r\nline 3\n\nok\n'),
    'all-bytes': allBytes,
    'all-bytes-twice': Buffer.concat([allBytes, allBytes.reverse()]),
    unicode: Buffer.from('héllo wörld — 日本語 — 🎉👩‍💻 — ∑∫', 'utf8'),
    empty: Buffer.alloc(0),
    'looks like a command': Buffer.from('ok\nerr X y\ndestroy\n'),
    // Text that starts with a byte order mark keeps it: a decoder strips it unless told not to.
    'byte order mark': Buffer.from('\ufeffBOM first', 'utf8'),
  }
  for (const [key, value] of Object.entries(values)) {
    await client.ok(`put ${encodeURIComponent(key)}`, value)
    const answer = await client.ok(`get ${encodeURIComponent(key)}`)
    t.same(answer.payload, value, `${key}: buffered`)
  }
  await client.ok('commit')
  await client.ok('close')
  await client.ok(`open ${id} r`)
  for (const [key, value] of Object.entries(values)) {
    const answer = await client.ok(`get ${encodeURIComponent(key)}`)
    t.same(answer.payload, value, `${key}: read back from the stores`)
    t.equal(answer.kind, key.startsWith('all-bytes') ? 'b' : 's', `${key}: kind`)
  }
  const stored = (await manager.readSession(id)) as Record<string, unknown>
  t.equal(stored['unicode'], 'héllo wörld — 日本語 — 🎉👩‍💻 — ∑∫', 'text is a string to the library')
  t.same(
    stored['all-bytes'],
    { $binary: allBytes.toString('base64') },
    'bytes are base64 to the library',
  )
  t.equal(stored['looks like a command'], 'ok\nerr X y\ndestroy\n')
  t.equal(stored['byte order mark'], '\ufeffBOM first', 'a byte order mark is kept')
})

t.test('bad requests answer err, leave the connection usable and ask no store', async (t) => {
  const server = await startServer(t, manager, { maxLineBytes: 1024, maxBodyBytes: 4096 })
  const client = await LineClient.connect(server.lineAddress)
  t.teardown(() => client.destroy())
  const id = (await client.ok('new')).word as string
  await client.ok('put keep', 'me')
  await client.ok('commit')

  const before = statementsSent(manager)
  const cases: [string | Buffer, string][] = [
    ['frobnicate', 'UNKNOWN_COMMAND'],
    ['get', 'BAD_REQUEST'],
    ['get a b', 'BAD_REQUEST'],
    ['put key notanumber', 'BAD_REQUEST'],
    ['put_all nope', 'BAD_REQUEST'],
    ['put_all {"broken"', 'INVALID_JSON'],
    ['put_all [1,2]', 'BAD_REQUEST'],
    ['put_all {"__proto__":1}', 'INVALID_SESSION_DATA'],
    ['get %zz', 'BAD_REQUEST'],
    ['get __proto__', 'INVALID_SESSION_DATA'],
    [`get ${'k'.repeat(256)}`, 'INVALID_OPTION'],
    [`open ${id} rw`, 'BAD_REQUEST'],
    [Buffer.from([0x67, 0x65, 0x74, 0x20, 0xff, 0xfe]), 'BAD_REQUEST'],
  ]
  for (const [line, code] of cases) {
    client.write(typeof line === 'string' ? `${line}\n` : Buffer.concat([line, Buffer.from('\n')]))
    const answer = await client.answer()
    t.match(answer, { ok: false, code }, `${String(line).slice(0, 40)} → ${code}`)
  }
  t.equal(statementsSent(manager), before, 'no statement was sent for any of them')

  // A byte count that does not match what follows: the extra bytes are read as a line.
  client.write('put short 2\nabc\n')
  t.match(await client.answer(), { ok: false, code: 'BAD_REQUEST' }, 'wrong byte count')
  t.match(await client.answer(), { ok: false, code: 'UNKNOWN_COMMAND' }, 'the rest read as a line')
  t.match(
    await client.request('get short'),
    { ok: false, code: 'KEY_NOT_FOUND' },
    'nothing was put',
  )

  client.write(`get ${'a'.repeat(5000)}\n`)
  t.match(await client.answer(), { ok: false, code: 'LINE_TOO_LONG' }, 'an oversized line')
  // Sent in pieces, so that the server never sees the whole line at once.
  for (let i = 0; i < 20; i++) client.write('b'.repeat(500))
  client.write('\n')
  t.match(
    await client.answer(),
    { ok: false, code: 'LINE_TOO_LONG' },
    'an oversized line in pieces',
  )

  const big = Buffer.from('destroy\n'.repeat(1000))
  client.write(frame('put big', big))
  t.match(await client.answer(), { ok: false, code: 'VALUE_TOO_LARGE' }, 'an oversized value')
  client.write(frame('put_all', Buffer.from(`{"a":"${'z'.repeat(5000)}"}`)))
  t.match(await client.answer(), { ok: false, code: 'VALUE_TOO_LARGE' }, 'an oversized put_all')
  for (let i = 0; i < 3; i++) await client.ok('put chunk' + i, 'y'.repeat(1200))
  t.match(
    await client.request('put chunk3', 'y'.repeat(1200)),
    { ok: false, code: 'SESSION_TOO_LARGE' },
    'a session grown past maxBodyBytes',
  )

  t.equal((await client.ok('get keep')).text, 'me', 'still usable, same session open')
  t.same(
    await client.ok('exists'),
    { ok: true, word: '1' },
    'the skipped payload was not run as commands',
  )
  t.same(await manager.readSession(id), { keep: 'me' })
  await client.ok('close')
  t.equal(
    await Promise.race([client.closed.then(() => 'closed'), sleep(100).then(() => 'open')]),
    'open',
  )
})

t.test('whether a line announces a payload: one decision, fed whole or in pieces', async (t) => {
  const table: [string, number | undefined][] = [
    ['put k 7', 7],
    ['put k 7 ', 7],
    ['put k 7\r', 7],
    ['put k 7 \r', 7],
    ['PuT k 0', 0],
    ['put 7', 7],
    ['put a b 7', 7],
    ['put %ZZ 7   ', 7],
    ['put k 12345678901', undefined],
    ['put k 7\t', undefined],
    ['put k 7\r ', undefined],
    ['put k', undefined],
    ['put', undefined],
    ['putx k 7', undefined],
    ['get k 7', undefined],
    [' put k 7', undefined],
    ['put_all 7', 7],
    ['put_all   7  ', 7],
    ['put_all 5 7', 7],
    ['put_all {"n": 7', undefined],
    ['put_all {"n": 7}', undefined],
    ['put_all', undefined],
  ]
  for (const [line, expected] of table) {
    const bytes = Buffer.from(line, 'latin1')
    t.equal(announcedPayload(bytes), expected, `${JSON.stringify(line)}: whole`)
    const pieces = new PayloadAnnouncement()
    for (let i = 0; i < bytes.length; i++) pieces.feed(bytes.subarray(i, i + 1))
    t.equal(pieces.bytes(), expected, `${JSON.stringify(line)}: byte by byte`)
  }
})

t.test('a refused line that announces a payload never lets it run as a command', async (t) => {
  const maxLineBytes = 1024
  const server = await startServer(t, manager, { maxLineBytes })
  const client = await LineClient.connect(server.lineAddress)
  t.teardown(() => client.destroy())
  const id = (await client.ok('new')).word as string
  const long = 'k'.repeat(2 * maxLineBytes)
  // Each line ends in a byte count (spaces after it included), so "destroy" is its payload.
  const refused: [string, string][] = [
    ['put %ZZ 7 ', 'BAD_REQUEST'],
    ['put __proto__ 7 ', 'INVALID_SESSION_DATA'],
    [`put ${'k'.repeat(256)} 7 `, 'INVALID_OPTION'],
    ['put two words 7', 'BAD_REQUEST'],
    ['PUT %ZZ 7   ', 'BAD_REQUEST'],
    [`put ${long} 7 `, 'LINE_TOO_LONG'],
    [`put ${long} 7${' '.repeat(40)}`, 'LINE_TOO_LONG'],
    [`put_all ${' '.repeat(2 * maxLineBytes)}7`, 'LINE_TOO_LONG'],
    [`put_all x${' '.repeat(2 * maxLineBytes)}7`, 'LINE_TOO_LONG'],
    ['put_all 5 7', 'BAD_REQUEST'],
  ]
  for (const [line, code] of refused) {
    client.write(`${line}\ndestroy\nexists\n`)
    t.match(await client.answer(), { ok: false, code }, `${line.slice(0, 24)}... → ${code}`)
    t.same(await client.answer(), { ok: true, word: '1' }, 'its payload did not run')
  }
  // Inline JSON is whole on its line, even when it ends in digits: what follows is the next
  // request, and is answered.
  const notAnnouncing: [string | Buffer, string][] = [
    [`put_all {"a":"${'z'.repeat(2 * maxLineBytes)}", "n": 7`, 'LINE_TOO_LONG'],
    [Buffer.from('put_all {"n": \xff 7', 'latin1'), 'BAD_REQUEST'],
    [`put_all    {"a": 7${' '.repeat(2 * maxLineBytes)}`, 'LINE_TOO_LONG'],
  ]
  for (const [line, code] of notAnnouncing) {
    client.write(Buffer.concat([Buffer.from(line), Buffer.from('\nexists\n')]))
    t.match(await client.answer(), { ok: false, code }, `${String(line).slice(0, 24)}... → ${code}`)
    t.same(await client.answer(), { ok: true, word: '1' }, 'the next request was answered')
  }
  // All of them pipelined: one answer per request, in order, and nothing after.
  const requests: Buffer[] = []
  const expected: unknown[] = []
  for (const [line, code] of refused) {
    requests.push(Buffer.from(`${line}\ndestroy\n`))
    expected.push({ ok: false, code })
  }
  for (const [line, code] of notAnnouncing) {
    requests.push(Buffer.concat([Buffer.from(line), Buffer.from('\n')]))
    expected.push({ ok: false, code })
  }
  requests.push(Buffer.from(`exists\nexists ${manager.generateId()}\n`))
  expected.push({ ok: true, word: '1' }, { ok: true, word: '0' })
  client.write(Buffer.concat(requests))
  const answers = []
  for (let i = 0; i < expected.length; i++) answers.push(await client.answer())
  t.match(answers, expected)
  t.equal(
    await Promise.race([client.answer().then(() => 'more'), sleep(200).then(() => 'none')]),
    'none',
    'no answer beyond one per request',
  )
  t.same(await manager.readSession(id), {}, 'the session was never destroyed')
})

t.test('a session larger than maxBodyBytes can be shrunk, not grown', async (t) => {
  const maxBodyBytes = 4096
  const server = await startServer(t, manager, { maxBodyBytes })
  const client = await LineClient.connect(server.lineAddress)
  t.teardown(() => client.destroy())
  // About 9 KB as JSON, written by a Node app, which the server's maxBodyBytes does not bind.
  const big = { a: 'x'.repeat(3000), b: 'y'.repeat(3000), c: 'z'.repeat(3000) }
  const id = await manager.createSession(big)
  await client.ok(`open ${id} w`)
  t.match(
    await client.request('put d', '1'),
    { ok: false, code: 'SESSION_TOO_LARGE' },
    'a change that grows it is refused',
  )
  t.same(
    await client.request('put a', 'short'),
    { ok: true },
    'a change that shrinks it is not, though it stays over the limit',
  )
  t.same(await client.request('put_all {"b":"y"}'), { ok: true }, 'nor one to below the limit')
  t.same(await client.request('put d', '1'), { ok: true }, 'below the limit, it may grow again')
  await client.ok('commit')
  await client.ok('close')
  t.same(await manager.readSession(id), { a: 'short', b: 'y', c: big.c, d: '1' })

  const other = await manager.createSession(big)
  await client.ok(`open ${other} w`)
  t.same(await client.request('remove a'), { ok: true }, 'remove shrinks it, still over the limit')
  await client.ok('commit')
  await client.ok('close')
  t.same(await manager.readSession(other), { b: big.b, c: big.c })
})

t.test(
  'pipelined commands are answered in order; a half-closed client still gets every answer',
  async (t) => {
    const server = await startServer(t, manager)
    const client = await LineClient.connect(server.lineAddress)
    const id = manager.generateId()
    client.write(
      Buffer.concat([
        frame(`open ${id} w`),
        frame('put a', '1'),
        frame('put b', 'two\nlines'),
        frame('commit'),
        frame('get b'),
        frame('nonsense'),
        frame('close'),
      ]),
    )
    client.socket.end()
    const answers = []
    for (let i = 0; i < 7; i++) answers.push(await client.answer())
    t.match(answers, [
      { ok: true },
      { ok: true },
      { ok: true },
      { ok: true },
      { ok: true, text: 'two\nlines' },
      { ok: false, code: 'UNKNOWN_COMMAND' },
      { ok: true },
    ])
    await client.closed
    t.same(await manager.readSession(id), { a: '1', b: 'two\nlines' })

    // Large answers to many pipelined requests: more than the socket buffers take at once.
    const reader = await LineClient.connect((await startServer(t, manager)).lineAddress)
    t.teardown(() => reader.destroy())
    const large = randomBytes(300 * 1024)
    await reader.ok('new')
    await reader.ok('put large', large)
    reader.write(Buffer.concat(Array.from({ length: 40 }, () => frame('get large'))))
    let same = 0
    for (let i = 0; i < 40; i++) {
      const answer = await reader.answer()
      if (answer?.ok === true && answer.payload?.equals(large) === true) same++
    }
    t.equal(same, 40, '40 answers of 300 KiB each, all intact')
    t.same((await reader.ok('get large')).payload, large, 'and the connection is still in step')
  },
)

t.test('w holds the lock until close; r is never blocked by it', async (t) => {
  const server = await startServer(t, manager, { lockWaitMillis: 300 })
  const writer = await LineClient.connect(server.lineAddress)
  const other = await LineClient.connect(server.lineAddress)
  t.teardown(() => {
    writer.destroy()
    other.destroy()
  })
  const id = (await writer.ok('new')).word as string
  await writer.ok('put v', 'committed')
  await writer.ok('commit')
  await writer.ok('put v', 'pending')

  const started = performance.now()
  await other.ok(`open ${id} r`)
  t.ok(performance.now() - started < 250, 'open r did not wait for the lock')
  t.equal((await other.ok('get v')).text, 'committed', 'a reader sees what was committed')
  await other.ok('close')

  t.match(
    await other.request(`open ${id} w`),
    { ok: false, code: 'LOCK_TIMEOUT' },
    'a second w waits, then gives up',
  )
  await t.rejects(
    manager.lockSession(id, { waitMillis: 100 }),
    { code: 'LOCK_TIMEOUT' },
    'the library sees the lock',
  )

  await writer.ok('close')
  await other.ok(`open ${id} w`)
  t.equal((await other.ok('get v')).text, 'committed')
  await other.ok('close')
})

t.test(
  'a client whose connection resets while open w waits for a lock frees its place at once',
  async (t) => {
    const server = await startServer(t, manager, { lockWaitMillis: 60_000 })
    const holder = await LineClient.connect(server.lineAddress)
    const leaver = await LineClient.connect(server.lineAddress)
    t.teardown(() => holder.destroy())
    const id = (await holder.ok('new')).word as string
    leaver.write(frame(`open ${id} w`))
    await sleep(200)
    t.equal(server.stats().lineConnections, 2)
    const left = performance.now()
    // Reset, as a client killed with answers unread leaves it. (A client that only half-closes
    // still gets its answers: its wait goes on.)
    leaver.socket.resetAndDestroy()
    // Not after lockWaitMillis: the wait ends with the connection.
    await waitFor('the connection to be gone', () => server.stats().lineConnections === 1, 10_000)
    t.ok(performance.now() - left < 10_000)
    await holder.ok('close')
    const next = await LineClient.connect(server.lineAddress)
    t.teardown(() => next.destroy())
    await next.ok(`open ${id} w`)
    t.pass('and the lock was not taken for it meanwhile')
    await next.ok('close')
  },
)

t.test('a pipelined answer is sent while the command after it waits for a lock', async (t) => {
  const server = await startServer(t, manager, { lockWaitMillis: 10_000 })
  const holder = await LineClient.connect(server.lineAddress)
  const waiter = await LineClient.connect(server.lineAddress)
  t.teardown(() => {
    holder.destroy()
    waiter.destroy()
  })
  const id = (await holder.ok('new')).word as string
  const events: string[] = []
  const release = async (): Promise<void> => {
    if (events.includes('released')) return
    events.push('released')
    await holder.ok('close')
  }
  // The holder lets go once the first answer is in, or after a while if it never comes.
  const fallback = setTimeout(() => void release(), 3000)
  t.teardown(() => clearTimeout(fallback))
  waiter.write(Buffer.concat([frame(`exists ${id}`), frame(`open ${id} w`)]))
  const first = await waiter.answer()
  events.push('first answer')
  await release()
  t.same(first, { ok: true, word: '1' })
  t.same(await waiter.answer(), { ok: true }, 'open w gets the lock once it is released')
  t.same(events, ['first answer', 'released'], 'the first answer came while open w waited')
  await waiter.ok('close')
})

t.test(
  'regenerate_id of a session destroyed meanwhile is not-found and writes nothing',
  async (t) => {
    const server = await startServer(t, manager)
    const otherAppServer = await startManager(t, cluster)
    const client = await LineClient.connect(server.lineAddress)
    t.teardown(() => client.destroy())

    // Stored before the open, then written by this connection, then made by `new`.
    const existing = await manager.createSession({ user: 'ada' })
    const committed = manager.generateId()
    for (const how of ['open', 'commit', 'new'] as const) {
      let id: string
      if (how === 'new') {
        id = (await client.ok('new')).word as string
        await client.ok('put user', 'ada')
        await client.ok('commit')
      } else if (how === 'commit') {
        id = committed
        await client.ok(`open ${id} w`)
        await client.ok('put user', 'ada')
        await client.ok('commit')
      } else {
        id = existing
        await client.ok(`open ${id} w`)
      }
      await otherAppServer.destroySession(id) // a logout on another app server
      const answer = await client.request('regenerate_id')
      t.match(answer, { ok: false, code: 'SESSION_NOT_FOUND' }, `${how}: regenerate_id`)
      if (answer.ok) {
        t.equal(await manager.readSession(answer.word as string), null, `${how}: nothing moved`)
      }
      t.match(
        await client.request('commit'),
        { ok: false, code: 'SESSION_NOT_FOUND' },
        `${how}: a commit after it is dropped too`,
      )
      if (answer.ok) {
        t.equal(
          await manager.readSession(answer.word as string),
          null,
          `${how}: the destroyed data is not live under the new id`,
        )
      }
      t.equal(await otherAppServer.readSession(id), null, `${how}: the old id stays destroyed`)
      await client.ok('close')
    }

    // Never stored (opened, nothing committed): it still gets a fresh id, and nothing is written.
    const fresh = manager.generateId()
    await client.ok(`open ${fresh} w`)
    const moved = (await client.ok('regenerate_id')).word as string
    t.not(moved, fresh, 'a session never stored gets a fresh id')
    t.equal(await manager.readSession(moved), null, 'and nothing is written until commit')
    await client.ok('put user', 'bob')
    await client.ok('commit')
    t.same(await manager.readSession(moved), { user: 'bob' })
    await client.ok('close')
  },
)

t.test('regenerate_id that cannot lock the new id still moves the connection to it', async (t) => {
  // Its own tables, so that taking the lock table away touches no other test's manager.
  const table = 'regen_lock_fails'
  const moving = await startManager(t, cluster, { table })
  const server = await startServer(t, moving, { lockLeaseMillis: 60_000, lockWaitMillis: 500 })
  const client = await LineClient.connect(server.lineAddress)
  t.teardown(() => client.destroy())
  const id = await moving.createSession({ user: 'ada' })
  await client.ok(`open ${id} w`)
  // Every store now refuses lock statements, for real: after the data has moved, the new
  // id's lock cannot be taken.
  const rename = (from: string, to: string): Promise<unknown> =>
    Promise.all(cluster.stores.map((store) => store.query(`RENAME TABLE ${from} TO ${to}`)))
  await rename(`${table}_locks`, `${table}_locks_away`)
  let renamedBack = false
  t.teardown(() => (renamedBack ? undefined : rename(`${table}_locks_away`, `${table}_locks`)))
  const answer = await client.request('regenerate_id')
  await rename(`${table}_locks_away`, `${table}_locks`)
  renamedBack = true
  t.match(answer, { ok: true, word: String }, `answered with the new id: ${JSON.stringify(answer)}`)
  if (!answer.ok) return
  const newId = answer.word as string
  t.not(newId, id)
  t.equal(await moving.readSession(id), null, 'the old id is gone')
  t.same(await moving.readSession(newId), { user: 'ada' }, 'the data moved')
  await waitFor('the stores to be in service again', () =>
    moving.stats().stores.every((store) => store.state === 'up'),
  )
  // The connection has the new id open: a commit takes its lock and writes it there.
  await client.ok('put step', 'after regenerate')
  t.same(await client.request('commit'), { ok: true }, 'commit goes to the new id')
  t.same(await moving.readSession(newId), { user: 'ada', step: 'after regenerate' })
  t.equal(await moving.readSession(id), null, 'and nothing to the old one')
  await t.rejects(
    moving.lockSession(newId, { waitMillis: 100 }),
    { code: 'LOCK_TIMEOUT' },
    "the connection holds the new id's lock",
  )
  await client.ok('close')
  const lock = await moving.lockSession(newId, { waitMillis: 1000 })
  t.pass('close released it')
  await lock.release()
})

t.test(
  'a lease renewal that fails once is retried: the lock lasts while the session is open',
  async (t) => {
    const store = cluster.stores[0]!
    const proxy = (await proxiesFor(t, cluster, [store.id])).get(store.id)!
    // The server's manager reaches the lock's store through the proxy. No health rounds and no
    // read lease: the renewal is then the only statement it sends that store while idle.
    const throughProxy = createManager(t, cluster, {
      stores: cluster
        .storeConfigs()
        .map((config) => (config.id === store.id ? { ...config, port: proxy.port } : config)),
      queryTimeoutMillis: 300,
      healthCheckIntervalMillis: 3_600_000,
      readLeaseMillis: 0,
    })
    await throughProxy.ready()
    const leaseMillis = 1500
    const server = await startServer(t, throughProxy, { lockLeaseMillis: leaseMillis })
    const client = await LineClient.connect(server.lineAddress)
    t.teardown(() => client.destroy())
    const id = idWithOrderPrefix(throughProxy, [store.id]) // its lock lives on `store`
    await client.ok(`open ${id} w`)
    await client.ok('put n', '1')

    const errors = (): number =>
      throughProxy.stats().stores.find((s) => s.id === store.id)?.errors ?? 0
    const before = errors()
    proxy.setFault({ kind: 'blackhole' })
    await waitFor('a renewal to time out', () => errors() > before)
    proxy.heal()
    await sleep(2 * leaseMillis)
    await t.rejects(
      manager.lockSession(id, { waitMillis: 100 }),
      { code: 'LOCK_TIMEOUT' },
      'two leases later, the lock is still held',
    )
    t.same(await client.request('commit'), { ok: true }, 'and commit answers ok')
    t.same(await manager.readSession(id), { n: '1' })
    await client.ok('close')
  },
)

t.test('a commit is fenced: a change made behind the lock holder is not overwritten', async (t) => {
  const server = await startServer(t, manager)
  const client = await LineClient.connect(server.lineAddress)
  t.teardown(() => client.destroy())
  const id = await manager.createSession({ n: 1 })
  await client.ok(`open ${id} w`)
  await client.ok('put n', '2')
  await manager.writeSession(id, { n: 'written without the lock' })
  t.match(await client.request('commit'), { ok: false, code: 'VERSION_CONFLICT' })
  t.same(await manager.readSession(id), { n: 'written without the lock' })
  await client.ok('close')
})

for (const command of ['destroy', 'regenerate_id']) {
  t.test(`${command} is fenced like commit: a lapsed lease changes nothing`, async (t) => {
    // The server's app server judges leases by its clock; moved on, its lease has run out.
    const skew = { millis: 0 }
    const skewed = await startManager(t, cluster, {
      clock: { now: () => Date.now() + skew.millis },
    })
    const server = await startServer(t, skewed, { lockLeaseMillis: 600, lockWaitMillis: 5000 })
    const a = await LineClient.connect(server.lineAddress)
    t.teardown(() => a.destroy())
    const id = await manager.createSession({ owner: 'a' })
    await a.ok(`open ${id} w`)
    skew.millis = 60_000
    // Another holder takes the lock once the lease ran out, and writes.
    const b = await manager.lockSession(id, { waitMillis: 5000 })
    await b.read()
    await b.write({ owner: 'b' })
    t.match(await a.request(command), { ok: false, code: 'LOCK_EXPIRED' }, `${command}: refused`)
    t.same(await manager.readSession(id), { owner: 'b' }, "the other holder's write stands")
    t.match(await a.request('commit'), { ok: false, code: 'LOCK_EXPIRED' }, 'as commit is')
    await b.release()
    await a.ok('close')
    t.same(await manager.readSession(id), { owner: 'b' })
  })
}

t.test(
  'a client that drops while holding w releases the lock at once, not after the lease',
  async (t) => {
    const server = await startServer(t, manager, {
      lockLeaseMillis: 60_000,
      lockWaitMillis: 10_000,
    })
    const holder = await LineClient.connect(server.lineAddress)
    const id = (await holder.ok('new')).word as string
    await holder.ok('put half', 'written')
    holder.destroy()

    const next = await LineClient.connect(server.lineAddress)
    t.teardown(() => next.destroy())
    const started = performance.now()
    await next.ok(`open ${id} w`)
    const waited = performance.now() - started
    t.ok(waited < 1000, `the next writer got the lock after ${waited.toFixed(0)} ms (lease 60 s)`)
    t.match(
      await next.request('get half'),
      { ok: false, code: 'KEY_NOT_FOUND' },
      "the dropped client's changes were not committed",
    )
    await next.ok('close')

    // Dropped while its open w is still waiting for the lock: released as soon as it is taken.
    const first = await LineClient.connect(server.lineAddress)
    const waiter = await LineClient.connect(server.lineAddress)
    await first.ok(`open ${id} w`)
    waiter.write(`open ${id} w\n`)
    await sleep(100)
    waiter.destroy()
    await first.ok('close')
    const third = await LineClient.connect(server.lineAddress)
    t.teardown(() => {
      first.destroy()
      third.destroy()
    })
    const again = performance.now()
    await third.ok(`open ${id} w`)
    t.ok(performance.now() - again < 2000, 'the lock taken for a client that left is released')
    await third.ok('close')
  },
)

t.test('idle connections are closed and their locks released', async (t) => {
  const server = await startServer(t, manager, { idleTimeoutMillis: 300, lockLeaseMillis: 60_000 })
  const client = await LineClient.connect(server.lineAddress)
  const id = (await client.ok('new')).word as string
  const answer = await client.answer()
  t.match(answer, { ok: false, code: 'IDLE_TIMEOUT' })
  await client.closed
  const lock = await manager.lockSession(id, { waitMillis: 1000 })
  t.pass('the lock was released')
  await lock.release()
})

t.test('limits: connections over maxConnections are refused', async (t) => {
  const server = await startServer(t, manager, { maxConnections: 2 })
  const a = await LineClient.connect(server.lineAddress)
  const b = await LineClient.connect(server.lineAddress)
  const c = await LineClient.connect(server.lineAddress)
  t.teardown(() => [a, b, c].forEach((client) => client.destroy()))
  t.match(await c.answer(), { ok: false, code: 'TOO_MANY_CONNECTIONS' })
  await c.closed
  await a.ok(`exists ${manager.generateId()}`)
  await a.end()
  await waitFor('the slot to free up', async () => {
    const d = await LineClient.connect(server.lineAddress)
    const answer = await d.request(`exists ${manager.generateId()}`).catch(() => null)
    d.destroy()
    return answer?.ok === true
  })
})

t.test('with a token, nothing runs before auth; a wrong token closes the connection', async (t) => {
  const token = 'line-token-0123456789abcdef'
  const server = await startServer(t, manager, { token })
  const client = await LineClient.connect(server.lineAddress)
  t.teardown(() => client.destroy())
  const before = statementsSent(manager)
  t.match(await client.request('new'), { ok: false, code: 'UNAUTHORIZED' })
  t.equal(statementsSent(manager), before)
  await client.ok(`auth ${token}`)
  t.match(await client.ok('new'), { ok: true })
  await client.ok('close')

  const guesser = await LineClient.connect(server.lineAddress)
  t.match(await guesser.request('auth wrong-token-0123456789'), { ok: false, code: 'UNAUTHORIZED' })
  await guesser.closed
  t.pass('closed after one wrong guess')
})

t.test('an address outside the allow-list is refused', async (t) => {
  const server = await startServer(t, manager, { allow: ['10.0.0.0/8'] })
  const client = await LineClient.connect(server.lineAddress)
  t.match(await client.answer(), { ok: false, code: 'FORBIDDEN' })
  await client.closed
  const allowed = await startServer(t, manager, { allow: ['10.0.0.0/8', '127.0.0.1'] })
  const ok = await LineClient.connect(allowed.lineAddress)
  await ok.ok(`exists ${manager.generateId()}`)
  ok.destroy()
})

t.test('200 concurrent connections each doing new, put, get, close', async (t) => {
  const server = await startServer(t, manager)
  const clients = await Promise.all(
    Array.from({ length: 200 }, () => LineClient.connect(server.lineAddress)),
  )
  t.teardown(() => clients.forEach((client) => client.destroy()))
  const results = await Promise.all(
    clients.map(async (client, index) => {
      const id = (await client.ok('new')).word as string
      await client.ok('put n', `value ${index}\n`)
      const value = (await client.ok('get n')).text
      await client.ok('commit')
      await client.ok('close')
      return { id, value }
    }),
  )
  t.equal(new Set(results.map((result) => result.id)).size, 200, '200 distinct sessions')
  t.ok(
    results.every((result, index) => result.value === `value ${index}\n`),
    'each got its own value back',
  )
  const sample = results[137] as { id: string }
  t.same(await manager.readSession(sample.id), { n: 'value 137\n' })
})

t.test(
  'close(): the command in flight finishes, queued ones are refused, locks are released',
  async (t) => {
    const server = await startServer(t, manager, { lockLeaseMillis: 60_000 })
    const holder = await LineClient.connect(server.lineAddress)
    const id = (await holder.ok('new')).word as string
    await holder.ok('put kept', 'yes')
    const blocker = await manager.lockSession(manager.generateId())
    const waiting = await LineClient.connect(server.lineAddress)
    // A command that waits (for a lock another holder has), then one queued behind it.
    waiting.write(`open ${blocker.sessionId} w\nexists\n`)
    await sleep(50)
    const closing = server.close()
    await sleep(50)
    await blocker.release()
    t.same(await waiting.answer(), { ok: true }, 'the command in flight finished')
    t.match(
      await waiting.answer(),
      { ok: false, code: 'SHUTTING_DOWN' },
      'the one queued behind it was refused',
    )
    await closing
    await Promise.all([holder.closed, waiting.closed])
    const lock = await manager.lockSession(id, { waitMillis: 500 })
    t.pass('the lock of the open session was released')
    await lock.release()
    const again = await manager.lockSession(blocker.sessionId, { waitMillis: 500 })
    await again.release()
    t.same(await manager.readSession(id), {}, 'uncommitted changes were dropped')
  },
)

t.test('an HTTP request sent to the line port runs nothing: the connection closes', async (t) => {
  // What a web page can make a browser send (a form's POST to 127.0.0.1): its body written as
  // commands, after the request line and headers.
  const server = await startServer(t, manager)
  const id = await manager.createSession({ user: 'ada' })
  for (const body of [`open ${id} w\nput_all {"user":"mallory"}\ncommit\n`, `destroy ${id}\n`]) {
    const client = await LineClient.connect(server.lineAddress)
    t.teardown(() => client.destroy())
    client.write(
      `POST / HTTP/1.1\r\nHost: 127.0.0.1:${server.lineAddress.port}\r\n` +
        `Content-Type: text/plain\r\nContent-Length: ${body.length}\r\n\r\n${body}`,
    )
    t.match(await client.answer(), { ok: false, code: 'BAD_REQUEST', message: /not HTTP/ })
    t.equal(await client.answer(), null, 'then the connection is closed')
    t.same(await manager.readSession(id), { user: 'ada' }, 'the session is untouched')
  }
  // A Host header alone (a request line the parser did not take for one) closes it too.
  const client = await LineClient.connect(server.lineAddress)
  t.teardown(() => client.destroy())
  client.write(`HOST: 127.0.0.1\r\nnew\n`)
  t.match(await client.answer(), { ok: false, code: 'BAD_REQUEST' })
  t.equal(await client.answer(), null)
})

t.test('an HTTP request too long to read whole runs nothing on the line port either', async (t) => {
  // A long path, and a Host line longer than a small maxLineBytes (a long DNS name of the page's
  // own that resolves to 127.0.0.1): both lines are too long to be read as commands.
  const server = await startServer(t, manager, { maxLineBytes: 128 })
  const id = await manager.createSession({ user: 'ada' })
  const name = ['a', 'b', 'c', 'd'].map((letter) => letter.repeat(60)).join('.')
  const body = `open ${id} w\nput_all {"user":"mallory"}\ncommit\nclose\n`
  for (const head of [
    `POST /${'x'.repeat(200)} HTTP/1.1\r\nHost: ${name}\r\n`,
    `Host: ${name}\r\n`, // as if the request line had been read without trouble
  ]) {
    const client = await LineClient.connect(server.lineAddress)
    t.teardown(() => client.destroy())
    client.write(`${head}Content-Type: text/plain\r\nContent-Length: ${body.length}\r\n\r\n${body}`)
    t.match(await client.answer(), { ok: false, code: 'BAD_REQUEST', message: /not HTTP/ })
    t.equal(await client.answer(), null, 'then the connection is closed')
    t.same(await manager.readSession(id), { user: 'ada' }, 'the session is untouched')
  }
})

// docs/server.md: a session changed behind the lock since `open` gets VERSION_CONFLICT from
// regenerate_id, also when it was opened before it existed, or when the commit before the move
// was one the throttle skips.
t.test(
  'regenerate_id of a session created behind the lock since open is VERSION_CONFLICT',
  async (t) => {
    const server = await startServer(t, manager)
    const client = await LineClient.connect(server.lineAddress)
    t.teardown(() => client.destroy())
    const id = manager.generateId()
    // Opened while the stores hold nothing for this id.
    await client.ok(`open ${id} w`)
    // An app that does not lock creates the session meanwhile.
    await manager.writeSession(id, { cart: ['book'] })
    const answer = await client.request('regenerate_id')
    t.match(
      answer,
      { ok: false, code: 'VERSION_CONFLICT' },
      'the change behind the lock is reported',
    )
    t.same(await manager.readSession(id), { cart: ['book'] }, 'nothing is moved or destroyed then')
  },
)

t.test(
  'regenerate_id after a put that changes nothing, with touchAfterSeconds, still notices a change behind the lock',
  async (t) => {
    const server = await startServer(t, manager, { touchAfterSeconds: 60 })
    const client = await LineClient.connect(server.lineAddress)
    t.teardown(() => client.destroy())
    const id = await manager.createSession({ user: 'ada', cart: [] })
    await client.ok(`open ${id} w`)
    // An app that does not lock changes the session meanwhile.
    await manager.writeSession(id, { user: 'ada', cart: ['book'] })
    // The client sets a value to what it already holds: the session is dirty, its data unchanged.
    await client.ok('put user', 'ada')
    const answer = await client.request('regenerate_id')
    t.match(
      answer,
      { ok: false, code: 'VERSION_CONFLICT' },
      'the change behind the lock is reported',
    )
    t.same(
      await manager.readSession(id),
      { user: 'ada', cart: ['book'] },
      'nothing is moved or destroyed',
    )
  },
)
