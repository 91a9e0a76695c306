import t from 'tap'
import { createCipheriv, randomBytes } from 'node:crypto'
import { deserialize, serialize } from 'node:v8'
import { deflateRawSync } from 'node:zlib'
import { SessionTooLargeError } from '../lib/index.js'
import type { SessionCodec, SessionData } from '../lib/index.js'
import { startTestCluster } from './helpers/cluster.js'
import { rowsOnStores, startManager } from './helpers/manager.js'
import { waitFor } from './helpers/wait.js'

// Compression and encryption at rest, against real stores: the raw rows, tampering, key
// rotation, and rows written under another configuration.
const cluster = await startTestCluster(t, { stores: 3 })
const MARKER = 'plaintext-marker-4242'
const oldKey = { id: 'k1', key: randomBytes(32) }
const newKey = { id: 'k2', key: randomBytes(32).toString('base64') }
const big = (n: number): SessionData => ({
  marker: MARKER,
  items: Array.from({ length: n }, (_, i) => ({ sku: `item-${i}`, qty: i % 7, note: MARKER })),
})

/** The stored bytes of a session's copies, from the stores themselves. */
async function storedBytes(id: string, table: string): Promise<Buffer[]> {
  const rows = await rowsOnStores(cluster, id, table)
  return [...rows.values()].flatMap((row) => (row?.data ? [row.data] : []))
}

t.test('encrypted rows hold no plaintext; the other key ids read; rotation', async (t) => {
  const table = 'at_rest_keys'
  const first = await startManager(t, cluster, { copies: 2, table, encryption: { keys: [oldKey] } })
  const id = await first.createSession(big(20))
  const stored = await storedBytes(id, table)
  t.ok(stored.length >= 2, 'both copies (a hedge around a slow store may add a third)')
  for (const bytes of stored) {
    t.notOk(bytes.includes(MARKER), 'no plaintext in the row')
    t.notOk(bytes.includes('"items"'), 'not even the keys')
  }
  t.same(await first.readSession(id), big(20))

  // Rotation: the new key first; rows under the old key still read, new writes use the new one.
  const rotated = await startManager(t, cluster, {
    copies: 2,
    table,
    encryption: { keys: [newKey, oldKey] },
  })
  t.same(await rotated.readSession(id), big(20), 'an old-key row reads after rotation')
  await rotated.writeSession(id, { rotated: true })
  for (const bytes of await storedBytes(id, table)) t.ok(bytes.includes('k2'), 'rewritten under k2')

  // Once the old key is dropped, a row still under it is unreadable, never garbage.
  const oldOnly = await startManager(t, cluster, {
    copies: 2,
    table,
    encryption: { keys: [oldKey] },
  })
  const unreadable: unknown[] = []
  oldOnly.on('unreadable-copy', (event) => unreadable.push(event))
  t.equal(await oldOnly.readSession(id), null, 'a key it lacks: no session, no garbage')
  t.ok(unreadable.length >= 1, 'reported as unreadable-copy')
})

t.test('a tampered row is an unreadable copy; the intact copy answers', async (t) => {
  const table = 'at_rest_tamper'
  const manager = await startManager(t, cluster, {
    copies: 2,
    table,
    readQuorum: 1,
    encryption: { keys: [oldKey] },
  })
  const id = await manager.createSession({ user: 'ada', role: 'admin' })
  const [firstStore, secondStore] = manager.locate(id)
  const flipLastByte = async (storeId: string): Promise<void> => {
    const store = cluster.stores.find((s) => s.id === storeId)!
    await store.query(
      `UPDATE \`${table}\` SET data = CONCAT(LEFT(data, LENGTH(data) - 1), CHAR(ASCII(RIGHT(data, 1)) ^ 1)) WHERE id = ?`,
      [id],
    )
  }
  const unreadable: { storeId: string | null }[] = []
  manager.on('unreadable-copy', (event) => unreadable.push(event))
  await flipLastByte(firstStore!)
  t.same(await manager.readSession(id), { user: 'ada', role: 'admin' }, 'the other copy answers')
  // Reported when it was read (a hedged read may have been answered by the other copy first).
  t.ok(
    unreadable.every((event) => event.storeId === firstStore),
    'only the tampered copy is reported',
  )
  const dataOn = async (storeId: string): Promise<Buffer> => {
    const store = cluster.stores.find((s) => s.id === storeId)!
    const [row] = await store.query<{ data: Buffer }>(
      `SELECT data FROM \`${table}\` WHERE id = ?`,
      [id],
    )
    return row!.data
  }
  // Read repair writes the intact copy's bytes over the tampered one (same version).
  await waitFor('read repair to mend the tampered copy', async () =>
    (await dataOn(firstStore!)).equals(await dataOn(secondStore!)),
  )
  await flipLastByte(firstStore!)
  await flipLastByte(secondStore!)
  t.equal(await manager.readSession(id), null, 'both tampered: no session, never garbage')
  t.ok(unreadable.length >= 1, 'reported as unreadable-copy')
})

t.test("a row moved to another session's id is an unreadable copy there", async (t) => {
  const table = 'at_rest_moved'
  const manager = await startManager(t, cluster, {
    copies: 2,
    table,
    encryption: { keys: [oldKey] },
  })
  const admin = await manager.createSession({ user: 'root', role: 'admin' })
  const visitor = await manager.createSession({ user: 'eve', role: 'visitor' })
  // Someone who can write to the stores (but has no key) gives the visitor's id the admin's row.
  const adminRow = (await storedBytes(admin, table))[0]!
  for (const store of cluster.stores) {
    await store.query(`UPDATE \`${table}\` SET data = ? WHERE id = ?`, [adminRow, visitor])
  }
  const unreadable: unknown[] = []
  manager.on('unreadable-copy', (event) => unreadable.push(event))
  t.equal(await manager.readSession(visitor), null, "never the other session's data")
  t.ok(unreadable.length >= 1, 'reported as unreadable-copy')
  t.same(await manager.readSession(admin), { user: 'root', role: 'admin' }, 'its own id reads')
  const admins: string[] = []
  for await (const id of manager.find('role', 'admin')) admins.push(id)
  t.same(admins, [admin], 'a scan decodes each row under its own id')

  // regenerateSession gives the data a new id: sealed again for it, so it reads there.
  const renamed = await manager.regenerateSession(admin)
  t.same(await manager.readSession(renamed!), { user: 'root', role: 'admin' }, 'new id reads')
  t.equal(await manager.readSession(admin), null, 'the old id is gone')
})

/** A row of the first encrypted format: NUL "ss", 1, compression 0, key id length, key id, IV, body, tag; the header alone authenticated. */
function formatOneRow(json: string): Buffer {
  const head = Buffer.concat([Buffer.from([0, 0x73, 0x73, 1, 0, 2]), Buffer.from('k1')])
  const iv = randomBytes(12)
  const cipher = createCipheriv('aes-256-gcm', oldKey.key, iv)
  cipher.setAAD(head)
  const body = Buffer.concat([cipher.update(json), cipher.final()])
  return Buffer.concat([head, iv, body, cipher.getAuthTag()])
}

/** Gives session `id` the row `row` on every store, as someone who can write to them could. */
async function plantRow(table: string, id: string, row: Buffer | string): Promise<void> {
  for (const store of cluster.stores) {
    await store.query(`UPDATE \`${table}\` SET data = ? WHERE id = ?`, [row, id])
  }
}

t.test('with encryption on, rows not sealed for their id are refused by default', async (t) => {
  const table = 'at_rest_plain_refused'
  const manager = await startManager(t, cluster, { table, encryption: { keys: [oldKey] } })
  const migrating = await startManager(t, cluster, {
    table,
    encryption: { keys: [oldKey], acceptPlainRows: true },
  })
  const unreadable: { sessionId: string; error: unknown }[] = []
  manager.on('unreadable-copy', (event) => unreadable.push(event))
  const admin = { userId: 1, role: 'admin' }
  const planted: [string, Buffer | string][] = [
    // Someone who can write to the stores but holds no key plants an administrator's data in
    // their own session: as a plain row, a compressed-only one (format 1 without a key), and a
    // row of the first encrypted format, which is not bound to its id, so one copied from an
    // administrator's session would do the same.
    ['a plain row', JSON.stringify(admin)],
    [
      'a compressed-only row',
      Buffer.concat([Buffer.from([0, 0x73, 0x73, 1, 1, 0]), deflateRawSync(JSON.stringify(admin))]),
    ],
    ['a row of the unbound format 1', formatOneRow(JSON.stringify(admin))],
  ]
  for (const [name, row] of planted) {
    const own = await manager.createSession({ userId: 7, role: 'visitor' })
    await plantRow(table, own, row)
    unreadable.length = 0
    t.equal(await manager.readSession(own), null, `${name}: no session`)
    t.ok(
      unreadable.length >= 1 && unreadable.every((event) => event.sessionId === own),
      `${name}: reported as unreadable-copy`,
    )
    t.match(
      String((unreadable[0]?.error as Error | undefined)?.message),
      /acceptPlainRows/,
      `${name}: the error names the option`,
    )
    t.same(await migrating.readSession(own), admin, `${name}: reads with acceptPlainRows`)
  }
  const admins: string[] = []
  for await (const id of manager.find('role', 'admin')) admins.push(id)
  t.same(admins, [], 'a scan skips them too')

  // A sealed row reads under both settings; one copied from another session reads under neither.
  const sealedAdmin = await manager.createSession(admin)
  const visitor = await manager.createSession({ userId: 7, role: 'visitor' })
  await plantRow(table, visitor, (await storedBytes(sealedAdmin, table))[0]!)
  t.same(await migrating.readSession(sealedAdmin), admin, 'a sealed row reads with the opt-in')
  t.equal(await manager.readSession(visitor), null, 'a copied sealed row: no session')
  t.equal(await migrating.readSession(visitor), null, 'not even with acceptPlainRows')

  // Writing seals the row again: the session is then readable without the opt-in.
  const migrated = await manager.createSession({ placeholder: true })
  await plantRow(table, migrated, JSON.stringify({ user: 'ada' }))
  const read = await migrating.readSession(migrated, { withVersion: true })
  await migrating.writeSession(migrated, read!.data, { expectedVersion: read!.version })
  t.same(await manager.readSession(migrated), { user: 'ada' }, 'rewritten, it reads everywhere')
})

t.test('without encryption, plain and compressed rows read as before', async (t) => {
  const table = 'at_rest_plain_unencrypted'
  const manager = await startManager(t, cluster, { table, compression: 'deflate' })
  const id = await manager.createSession({ placeholder: true })
  await plantRow(table, id, JSON.stringify({ user: 'ada' }))
  t.same(await manager.readSession(id), { user: 'ada' })
})

t.test('compression: big sessions shrink, small ones stay plain, every format reads', async (t) => {
  const table = 'at_rest_compression'
  const plain = await startManager(t, cluster, { table })
  const deflate = await startManager(t, cluster, { table, compression: 'deflate' })
  const brotli = await startManager(t, cluster, {
    table,
    compression: { algorithm: 'brotli', thresholdBytes: 2048 },
  })
  const plainId = await plain.createSession(big(400))
  const plainSize = (await storedBytes(plainId, table))[0]!.length
  for (const [name, manager] of [
    ['deflate', deflate],
    ['brotli', brotli],
  ] as const) {
    const id = await manager.createSession(big(400))
    const size = (await storedBytes(id, table))[0]!.length
    t.ok(size < plainSize / 4, `${name}: ${plainSize} bytes stored as ${size}`)
    for (const reader of [plain, deflate, brotli]) t.same(await reader.readSession(id), big(400))
    t.same(await manager.readSession(plainId), big(400), `${name} reads a plain row`)
  }
  const small = await brotli.createSession({ user: 'ada' })
  t.equal(
    (await storedBytes(small, table))[0]!.toString(),
    '{"user":"ada"}',
    'below the threshold: stored plain, exactly as the codec made it',
  )
})

t.test('compression and encryption together, around a custom codec, across switches', async (t) => {
  const table = 'at_rest_both'
  const v8Codec: SessionCodec = {
    encode: (data) => serialize(data),
    decode: (bytes) => deserialize(bytes) as SessionData,
  }
  const before = await startManager(t, cluster, { table, codec: v8Codec })
  const oldId = await before.createSession({ when: new Date(0), big: big(50) })
  const both = await startManager(t, cluster, {
    table,
    codec: v8Codec,
    compression: { algorithm: 'deflate', thresholdBytes: 0 },
    encryption: { keys: [newKey], acceptPlainRows: true },
  })
  t.same(await both.readSession(oldId), { when: new Date(0), big: big(50) }, 'an older plain row')
  const id = await both.createSession({ when: new Date(1), big: big(300) })
  const stored = (await storedBytes(id, table))[0]!
  t.notOk(stored.includes(MARKER))
  t.ok(stored.length < serialize({ when: new Date(1), big: big(300) }).length / 3, 'compressed')
  t.same(await both.readSession(id), { when: new Date(1), big: big(300) })
  const turnedOff = await startManager(t, cluster, {
    table,
    codec: v8Codec,
    encryption: { keys: [newKey] },
  })
  t.same(await turnedOff.readSession(id), { when: new Date(1), big: big(300) }, 'compression off')
})

t.test(
  'a row that decompresses past what a store can hold is unreadable, not a memory spike',
  async (t) => {
    const table = 'at_rest_bound'
    const writer = await startManager(t, cluster, { table, compression: 'deflate' })
    const id = await writer.createSession({ filler: 'a'.repeat(200_000) })
    t.ok((await storedBytes(id, table))[0]!.length < 2000, 'highly compressible')
    const bounded = await startManager(t, cluster, { table, maxSessionBytes: 100_000 })
    t.same(await bounded.readSession(id), { filler: 'a'.repeat(200_000) }, 'stored before: reads')
    // A planted bomb: 20 MB of JSON in 20 KB, more than a data column (16 MiB) could have held.
    const bomb = Buffer.from(`{"filler":"${'a'.repeat(20_000_000)}"}`)
    await plantRow(
      table,
      id,
      Buffer.concat([Buffer.from([0, 0x73, 0x73, 1, 1, 0]), deflateRawSync(bomb)]),
    )
    t.equal(await bounded.readSession(id), null, 'refused to inflate beyond the column size')
    await t.rejects(
      bounded.writeSession(id, { filler: 'a'.repeat(200_000) }),
      { code: 'SESSION_TOO_LARGE' },
      'the bound is on the encoding, before compression',
    )
  },
)

t.test('bad options are typed errors that never echo a key', async (t) => {
  const secret = 'c2VjcmV0LWtleS10aGF0LWlzLW5vdC0zMi1ieXRlcw=='
  const cases: [Record<string, unknown>, string][] = [
    [{ compression: 'zip' }, 'compression'],
    [{ compression: { algorithm: 'brotli', thresholdBytes: -1 } }, 'compression.thresholdBytes'],
    [{ encryption: { keys: [] } }, 'encryption.keys'],
    [{ encryption: { keys: [{ id: 'k', key: secret }] } }, 'encryption.keys[0].key'],
    [{ encryption: { keys: [{ id: 'k', key: randomBytes(16) }] } }, 'encryption.keys[0].key'],
    [{ encryption: { keys: [{ id: 'bad id', key: randomBytes(32) }] } }, 'encryption.keys[0].id'],
    [{ encryption: { keys: [oldKey, oldKey] } }, 'encryption.keys[1].id'],
    [{ encryption: { keys: [oldKey], acceptPlainRows: 'yes' } }, 'encryption.acceptPlainRows'],
  ]
  for (const [options, option] of cases) {
    try {
      await startManager(t, cluster, options)
      t.fail(`accepted ${option}`)
    } catch (error) {
      t.match(error, { code: 'INVALID_OPTION', option }, option)
      t.notOk(String((error as Error).message).includes(secret), 'the key is not in the message')
    }
  }
})

// setSessionTimeout writes the session again: sealed as a write today seals it, so that the
// rewrite moves a row out of the plain format or off a retiring key.
const retiringKey = { id: 'k1', key: randomBytes(32) }
const currentKey = { id: 'k2', key: randomBytes(32) }

t.test('setSessionTimeout under acceptPlainRows seals the session in format 2', async (t) => {
  const table = 'zz_input_plain'
  const plain = await startManager(t, cluster, { copies: 2, table })
  const id = await plain.createSession({ user: 'ada' })
  const migrating = await startManager(t, cluster, {
    copies: 2,
    table,
    encryption: { keys: [currentKey], acceptPlainRows: true },
  })
  t.same(await migrating.readSession(id), { user: 'ada' })
  // A write (new version, new expiry) by a manager with encryption on.
  t.equal(await migrating.setSessionTimeout(id, 30 * 86400), true)
  const rows = await rowsOnStores(cluster, id, table)
  for (const [storeId, row] of rows) {
    if (row === null || row.data === null) continue
    t.equal(row.data[0], 0, `${storeId}: the row written is sealed (starts with NUL), not plain`)
  }
  // Migration over: acceptPlainRows removed. The session was written since the switch.
  const sealedOnly = await startManager(t, cluster, {
    copies: 2,
    table,
    encryption: { keys: [currentKey] },
  })
  t.same(await sealedOnly.readSession(id), { user: 'ada' }, 'the session written since still reads')
})

t.test('setSessionTimeout after a key rotation rewrites under the new key', async (t) => {
  const table = 'zz_input_rotate'
  const first = await startManager(t, cluster, {
    copies: 2,
    table,
    encryption: { keys: [retiringKey] },
  })
  const id = await first.createSession({ user: 'bob' })
  const rotated = await startManager(t, cluster, {
    copies: 2,
    table,
    encryption: { keys: [currentKey, retiringKey] },
  })
  t.equal(await rotated.setSessionTimeout(id, 30 * 86400), true)
  const rows = await rowsOnStores(cluster, id, table)
  for (const [storeId, row] of rows) {
    if (row === null || row.data === null) continue
    t.ok(row.data.includes('k2'), `${storeId}: rewritten under k2`)
  }
  // The old key dropped once the rows written under it were rewritten.
  const newOnly = await startManager(t, cluster, {
    copies: 2,
    table,
    encryption: { keys: [currentKey] },
  })
  t.same(await newOnly.readSession(id), { user: 'bob' }, 'the rewritten session reads without k1')
})

t.test(
  'setSessionTimeout on a row over a maxSessionBytes lowered since is refused, never written back plain',
  async (t) => {
    const key = { id: 'k2', key: randomBytes(32) }
    const table = 'at_rest_large'
    const plain = await startManager(t, cluster, { copies: 2, table })
    const id = await plain.createSession({ blob: 'x'.repeat(2000) })
    const before = await rowsOnStores(cluster, id, table)
    // Encryption turned on (migrating), maxSessionBytes lowered meanwhile.
    const migrating = await startManager(t, cluster, {
      copies: 2,
      table,
      maxSessionBytes: 1024,
      encryption: { keys: [key], acceptPlainRows: true },
    })
    t.same(await migrating.readSession(id), { blob: 'x'.repeat(2000) }, 'read while migrating')
    // Written back plain with a fresh expiry, it would outlive the migration unsealed.
    const result = await migrating.setSessionTimeout(id, 30 * 86400).catch((e: unknown) => e)
    t.type(result, SessionTooLargeError, 'refused: encoded again, it is over maxSessionBytes')
    t.same(await rowsOnStores(cluster, id, table), before, 'the rows are left as they were')
  },
)

t.test('a custom codec whose bytes begin like an at-rest header reads back', async (t) => {
  // A binary codec (a version byte 0, then a two-letter tag) may begin with the header's magic
  // bytes: stored as they are, its rows read back as malformed at-rest rows.
  const tagged: SessionCodec = {
    encode: (data) => Buffer.concat([Buffer.from([0x00]), Buffer.from('ss'), serialize(data)]),
    decode: (bytes) => deserialize(bytes.subarray(3)) as SessionData,
  }
  for (const compression of [undefined, 'deflate'] as const) {
    const manager = await startManager(t, cluster, {
      copies: 2,
      table: 'at_rest_magic',
      codec: tagged,
      ...(compression === undefined ? {} : { compression }),
    })
    const unreadable: unknown[] = []
    manager.on('unreadable-copy', (event) => unreadable.push(event))
    const id = manager.generateId()
    await manager.writeSession(id, { user: 'ada' })
    t.same(await manager.readSession(id), { user: 'ada' }, `${compression ?? 'plain'}: reads back`)
    t.same(unreadable, [], `${compression ?? 'plain'}: no copy reported unreadable`)
  }
})

t.test(
  'a lower maxSessionBytes: a compressed session over it reads, as a plain one does',
  async (t) => {
    // Sessions stored before the limit was lowered still read, so that the app can shrink them;
    // a compressed row is no exception (decompression stays bounded by the column's size).
    const table = 'at_rest_lowered'
    const data = { blob: 'y'.repeat(50_000) }
    const options = { copies: 2, table, maxSessionBytes: 100_000 }
    const compressing = await startManager(t, cluster, { ...options, compression: 'deflate' })
    const plain = await startManager(t, cluster, options)
    const [compressedId, plainId] = [compressing.generateId(), compressing.generateId()]
    await compressing.writeSession(compressedId, data)
    await plain.writeSession(plainId, data)
    const lowered = { ...options, maxSessionBytes: 20_000, compression: 'deflate' as const }
    const after = await startManager(t, cluster, lowered)
    t.same(await after.readSession(plainId), data, 'a plain row over the new limit reads')
    t.same(await after.readSession(compressedId), data, 'and so does a compressed one')
    await t.rejects(after.writeSession(compressedId, data), SessionTooLargeError, 'writes obey it')
  },
)
