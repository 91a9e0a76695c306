import t from 'tap'
import { IdSigner } from '../lib/ids.js'
import { startTestCluster } from './helpers/cluster.js'
import { startManager } from './helpers/manager.js'

// acceptUnsignedIds: ids from before signing was turned on keep working. Such an id may hold
// a "." (the id rules allow it, and stores being migrated from made such ids): only an id
// shaped like a signed one (32 characters, ".", 43 characters) is held to its signature.
const SECRET = 'ids-test-secret-0123456789-0123456789-abcdef'
const LEGACY = [
  'legacy.session.id.0001',
  'a.b.c.d.e.f.g.h.i.j',
  '.starts-with-a-dot-123',
  'ends-with-a-dot-1234.',
  `${'x'.repeat(32)}.${'y'.repeat(42)}`, // one character short of a signature
  `${'x'.repeat(31)}.${'y'.repeat(43)}`,
  `${'x'.repeat(32)}.${'y'.repeat(43)}.z`,
]

function refusal(verify: () => void): Error | undefined {
  try {
    verify()
  } catch (error) {
    return error as Error
  }
  return undefined
}

t.test('with acceptUnsignedIds, an unsigned id with dots is accepted', async (t) => {
  const lenient = new IdSigner([SECRET], true)
  for (const id of LEGACY)
    t.equal(
      refusal(() => lenient.verify(id)),
      undefined,
      id,
    )
  t.equal(
    refusal(() => lenient.verify('no-dot-at-all-0123')),
    undefined,
    'and without',
  )
  t.equal(
    refusal(() => lenient.verify(lenient.generate())),
    undefined,
    'signed ids verify',
  )
})

t.test('an id shaped like a signed one is held to its signature, always', async (t) => {
  const lenient = new IdSigner([SECRET], true)
  const signed = lenient.generate()
  const forged = `${signed.slice(0, 32)}.${'A'.repeat(43)}`
  const error = refusal(() => lenient.verify(forged))
  t.match(error, { code: 'INVALID_SESSION_ID' }, 'a bad signature is refused')
  t.notMatch(error?.message, forged.slice(0, 32), 'the id is not echoed')
  const other = new IdSigner(['another-secret-0123456789-0123456789-abc'], true).generate()
  t.match(
    refusal(() => lenient.verify(other)),
    { code: 'INVALID_SESSION_ID' },
    'another secret',
  )
})

t.test('without acceptUnsignedIds, unsigned ids are refused, dots or not', async (t) => {
  const strict = new IdSigner([SECRET], false)
  for (const id of [...LEGACY, 'no-dot-at-all-0123']) {
    const error = refusal(() => strict.verify(id))
    t.match(error, { code: 'INVALID_SESSION_ID' }, id)
    t.notMatch(error?.message, id, 'the id is not echoed')
  }
})

t.test('a manager with acceptUnsignedIds reads a legacy id with dots', async (t) => {
  const cluster = await startTestCluster(t, { stores: 2 })
  const before = await startManager(t, cluster, { copies: 2, table: 'ids_legacy' })
  const legacyId = 'legacy.session.id.0001'
  await before.writeSession(legacyId, { user: 'ada' })
  const lenient = await startManager(t, cluster, {
    copies: 2,
    table: 'ids_legacy',
    secrets: [SECRET],
    acceptUnsignedIds: true,
  })
  t.same(await lenient.readSession(legacyId), { user: 'ada' }, 'still logged in')
  await lenient.writeSession(legacyId, { user: 'ada', visits: 2 })
  t.same(await before.readSession(legacyId), { user: 'ada', visits: 2 })
  const strict = await startManager(t, cluster, {
    copies: 2,
    table: 'ids_legacy',
    secrets: [SECRET],
  })
  await t.rejects(strict.readSession(legacyId), { code: 'INVALID_SESSION_ID' })
})
