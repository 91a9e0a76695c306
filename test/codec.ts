import { inspect } from 'node:util'
import t from 'tap'
import type { SessionCodec, SessionData } from '../lib/index.js'
import { InvalidSessionDataError } from '../lib/index.js'
import { startTestCluster } from './helpers/cluster.js'
import { rowsOnStores, startManager } from './helpers/manager.js'

const cluster = await startTestCluster(t, { stores: 3 })

t.test('a pluggable codec encodes once per write and decodes what it wrote', async (t) => {
  let encodes = 0
  const codec: SessionCodec = {
    encode: (data) => {
      encodes++
      return Buffer.from(`v1:${JSON.stringify(data)}`)
    },
    decode: (bytes) => JSON.parse(bytes.toString().slice(3)),
  }
  const manager = await startManager(t, cluster, { copies: 3, codec })
  const id = await manager.createSession({ a: 1 })
  t.equal(encodes, 1, 'three copies, one encoding')
  const rows = await rowsOnStores(cluster, id)
  t.equal([...rows.values()][0]!.data!.toString(), 'v1:{"a":1}')
  t.same(await manager.readSession(id), { a: 1 })
})

t.test('a codec that throws gives a typed error and writes nothing', async (t) => {
  const manager = await startManager(t, cluster, {
    codec: {
      encode: (data) => {
        if ('bad' in data) throw new Error('cannot encode')
        return JSON.stringify(data)
      },
      decode: (bytes) => JSON.parse(bytes.toString()),
    },
  })
  const id = await manager.createSession({ good: 1 })
  await t.rejects(manager.writeSession(id, { bad: 1 }), InvalidSessionDataError)
  t.same(await manager.readSession(id), { good: 1 }, 'the stored session is unchanged')
})

t.test('a copy that cannot be decoded counts as missing: the next copy answers', async (t) => {
  const manager = await startManager(t, cluster, { copies: 2 })
  const id = await manager.createSession({ intact: true })
  const [first] = manager.locate(id) as [string]
  await cluster
    .store(first)
    .query('UPDATE sessions SET data = ? WHERE id = ?', [Buffer.from('{not json'), id])
  const events: { storeId: string | null }[] = []
  manager.on('unreadable-copy', (event) => events.push(event))
  t.same(await manager.readSession(id), { intact: true })
  t.equal(events.length, 1)
  t.equal(events[0]!.storeId, first)
})

t.test(
  'an unreadable copy at the newest version is written over from one that decodes',
  async (t) => {
    const manager = await startManager(t, cluster, { copies: 2 })
    const corrupt = async (
      data: SessionData,
    ): Promise<{ id: string; bad: string; good: string }> => {
      const id = await manager.createSession(data)
      const [bad, good] = manager.locate(id) as [string, string]
      await cluster
        .store(bad)
        .query('UPDATE sessions SET data = ? WHERE id = ?', [Buffer.from('{not json'), id])
      return { id, bad, good }
    }
    const dataOn = async (storeId: string, id: string): Promise<string | undefined> =>
      (await rowsOnStores(cluster, id)).get(storeId)?.data?.toString()

    // A read serves the copy that decodes, and its repair writes it over the unreadable one.
    const read = await corrupt({ user: 'read' })
    const repaired = new Promise<{ storeIds: string[] }>((resolve) =>
      manager.once('read-repair', resolve),
    )
    t.same(await manager.readSession(read.id), { user: 'read' })
    t.same((await repaired).storeIds, [read.bad], 'read repair names the store it wrote')
    t.equal(await dataOn(read.bad, read.id), '{"user":"read"}', 'the read repaired it')

    // repair() does too, with no read.
    const scanned = await corrupt({ user: 'scan' })
    await manager.repair()
    t.equal(await dataOn(scanned.bad, scanned.id), '{"user":"scan"}', 'repair() repaired it')

    // With no copy that decodes, nothing is written over.
    const lost = await corrupt({ user: 'lost' })
    await cluster
      .store(lost.good)
      .query('UPDATE sessions SET data = ? WHERE id = ?', [Buffer.from('{also bad'), lost.id])
    t.equal(await manager.readSession(lost.id), null, 'nothing decodes: no session')
    await manager.repair()
    t.equal(await dataOn(lost.bad, lost.id), '{not json', 'one copy is left as it was')
    t.equal(await dataOn(lost.good, lost.id), '{also bad', 'and so is the other')
  },
)

t.test('an unreadable copy of a 9 MB session is written over too', async (t) => {
  // The statement names the bad bytes by digest: sent whole beside the good ones, two copies
  // of a large session passed the server's 16 MB packet limit, and repair() never finished.
  const manager = await startManager(t, cluster, {
    copies: 2,
    maxSessionBytes: 16_000_000,
    queryTimeoutMillis: 20_000,
  })
  const id = await manager.createSession({ big: 'x'.repeat(9_000_000) })
  const [bad] = manager.locate(id) as [string, string]
  await cluster
    .store(bad)
    .query('UPDATE sessions SET data = CONCAT(?, SUBSTRING(data, 2)) WHERE id = ?', ['#', id])
  const result = await manager.repair()
  t.equal(result.failed, 0, 'no session failed')
  t.ok(result.done, 'the repair finished')
  const [row] = await cluster
    .store(bad)
    .query<{ head: string }>('SELECT LEFT(data, 8) AS head FROM sessions WHERE id = ?', [id])
  t.equal(String(row?.head), '{"big":"', 'the corrupt copy was written over')
})

t.test(
  'a copy that decodes to no object (null, a number, an array) counts as unreadable',
  async (t) => {
    const manager = await startManager(t, cluster, { copies: 3 })
    for (const stored of ['null', '5', '[1,2]', '"text"']) {
      const id = await manager.createSession({ intact: stored })
      const [first, second] = manager.locate(id) as [string, string]
      for (const storeId of [first, second]) {
        await cluster
          .store(storeId)
          .query('UPDATE sessions SET data = ? WHERE id = ?', [stored, id])
      }
      const events: { storeId: string | null }[] = []
      const listener = (event: { storeId: string | null }): number => events.push(event)
      manager.on('unreadable-copy', listener)
      t.same(
        await manager.readSession(id),
        { intact: stored },
        `${stored}: the intact copy answers`,
      )
      manager.off('unreadable-copy', listener)
      t.ok(events.length >= 1, `${stored}: reported as unreadable`)
    }
  },
)

t.test('an unreadable copy is reported without quoting its data', async (t) => {
  const manager = await startManager(t, cluster, { copies: 2 })
  const id = await manager.createSession({ a: 1 })
  // A row another codec wrote (a PHP session being migrated, say): its bytes hold the
  // session's secrets, and JSON.parse's own message would quote them.
  const secret = 'hunter2'
  for (const store of cluster.stores) {
    await store.query('UPDATE sessions SET data = ? WHERE id = ?', [`pw|s:7:"${secret}";`, id])
  }
  const reported: unknown[] = []
  manager.on('unreadable-copy', (event) => reported.push(event))
  t.equal(await manager.readSession(id), null, 'no copy decodes: no session')
  for await (const found of manager.find('a', 1)) t.not(found, id, 'the listing skips it')
  t.ok(reported.length >= 2, 'reported by the read and by the listing')
  for (const event of reported) t.notMatch(inspect(event, { depth: 5 }), secret)
})
