import t from 'tap'
import { checkOwner, requestedExpiry } from '../lib/call-arguments.js'

// A per-call expiry is refused up front unless a Date can hold it: JavaScript dates reach
// 8.64e15 ms either side of the epoch, and an expiry beyond that, once stored, could not be
// shown as a cookie's `expires` (new Date(x).toISOString() throws a RangeError).
const DATE_LIMIT = 8.64e15

t.test('requestedExpiry: within the Date range, as given, and never before now', async (t) => {
  const now = Date.now()
  t.equal(requestedExpiry({}, now), null)
  t.equal(requestedExpiry({ expiresAt: now + 1000 }, now), now + 1000)
  t.equal(requestedExpiry({ expiresAt: new Date(now + 1000) }, now), now + 1000)
  t.equal(requestedExpiry({ expiresAt: now + 1234.9 }, now), now + 1234, 'truncated to the ms')
  t.equal(requestedExpiry({ expiresAt: DATE_LIMIT }, now), DATE_LIMIT, 'the last Date')
  t.equal(requestedExpiry({ expiresAt: new Date(DATE_LIMIT) }, now), DATE_LIMIT)
  t.equal(requestedExpiry({ expiresAt: now }, now), now, 'now')
  t.equal(requestedExpiry({ expiresAt: now - 1 }, now), now, 'the past is now')
  t.equal(requestedExpiry({ expiresAt: 1234.9 }, now), now)
  t.equal(requestedExpiry({ expiresAt: -DATE_LIMIT }, now), now, 'the first Date')
  // With an earliest expiry (the manager's: half the sweep's grace before now).
  const earliest = now - 150_000
  t.equal(requestedExpiry({ expiresAt: now - 1000 }, now, earliest), now - 1000, 'past, as given')
  t.equal(requestedExpiry({ expiresAt: 0 }, now, earliest), earliest, 'long past: the earliest')
  t.equal(requestedExpiry({ expiresAt: now + 1000 }, now, earliest), now + 1000)
  t.equal(requestedExpiry({ ttlSeconds: 60 }, now), now + 60_000)
})

t.test('requestedExpiry: beyond the Date range, a typed error without the value', async (t) => {
  const now = Date.now()
  for (const expiresAt of [
    8.7e15,
    DATE_LIMIT + 1,
    -DATE_LIMIT - 1,
    Number.MAX_SAFE_INTEGER,
    Infinity,
    -Infinity,
    NaN,
    new Date(NaN),
  ]) {
    let error: unknown
    try {
      requestedExpiry({ expiresAt }, now)
    } catch (caught) {
      error = caught
    }
    t.match(error, { code: 'INVALID_OPTION', option: 'expiresAt' }, String(expiresAt))
    t.notMatch((error as Error).message, /8\.7e|8700|9007199254740991|Infinity|NaN/, 'no value')
  }
})

t.test('requestedExpiry: something that only looks like a Date is refused, typed', async (t) => {
  const now = Date.now()
  const lookalikes: [string, unknown][] = [
    ['Object.create(Date.prototype)', Object.create(Date.prototype)],
    ['a Proxy around a Date', new Proxy(new Date(now + 60_000), {})],
    ['an object with getTime', { getTime: () => now + 60_000 }],
  ]
  for (const [name, expiresAt] of lookalikes) {
    t.throws(
      () => requestedExpiry({ expiresAt: expiresAt as Date }, now),
      { code: 'INVALID_OPTION', option: 'expiresAt' },
      name,
    )
  }
})

t.test('checkOwner: at most 255 bytes, as the owner column and ownerKey values hold', async (t) => {
  t.equal(checkOwner('a'.repeat(255)), 'a'.repeat(255))
  t.equal(checkOwner('€'.repeat(85)), '€'.repeat(85), '255 bytes of 3-byte characters')
  t.equal(checkOwner(42), '42')
  // 86 characters but 258 bytes: no stored owner can be this long (writes refuse it), so the
  // lookup is refused up front like any other owner that cannot be stored.
  for (const owner of ['€'.repeat(86), 'a'.repeat(256), '', null]) {
    t.throws(() => checkOwner(owner), { code: 'INVALID_OPTION' })
  }
  const refused = (() => {
    try {
      checkOwner('secret-owner-€'.repeat(40))
      return null
    } catch (error) {
      return error as Error
    }
  })()
  t.match(refused, { code: 'INVALID_OPTION', message: /255 bytes/ }, 'refused, saying why')
  t.notMatch(String(refused?.message), 'secret-owner', 'the value is not in the message')
})
