/**
 * What compression and encryption at rest save in bytes and cost in CPU: each setting encodes
 * and decodes the same 1 KB and 50 KB sessions (JSON codec underneath), side by side in one
 * process. CPU only: the bytes stored decide what the stores and the network carry.
 * Run with `npm run bench -- --suite at-rest [--quick]`.
 */
import { randomBytes } from 'node:crypto'
import { performance } from 'node:perf_hooks'
import type { SessionData } from '../lib/index.js'
import { parseBenchArgs } from './lib/args.js'
import { loadBuiltLibrary } from './lib/built-library.js'
import { microsPerCall } from './lib/micro.js'
import { median } from './lib/stats.js'
import { describeEnvironment, writeResults } from './lib/results.js'
import { formatNumber, markdownTable } from './lib/table.js'

const USAGE = `Usage: npm run bench -- --suite at-rest [--quick]

Encodes and decodes 1 KB and 50 KB sessions with each at-rest setting (plain JSON, deflate,
brotli, AES-256-GCM, and both) and reports the bytes stored and the CPU per call.

  --quick      a short run to check that the benchmark works; not for citing`

const args = parseBenchArgs(USAGE)
const calls = args.quick ? 200 : 4_000
const { index: library, atRest } = await loadBuiltLibrary()
const key = { id: 'k1', key: randomBytes(32) }
/** A session id as `generateSessionId` makes them (43 characters). */
const SESSION_ID = 'Vq1mZ3xk0bT8rL2sY7uE4nC9wH6aJ5dF0gP1iK3oQ2M'
const SETTINGS = {
  plain: [null, null],
  deflate: [atRest.resolveCompression('deflate'), null],
  brotli: [atRest.resolveCompression('brotli'), null],
  'AES-256-GCM': [null, atRest.resolveEncryption({ keys: [key] })],
  'deflate + AES': [
    atRest.resolveCompression('deflate'),
    atRest.resolveEncryption({ keys: [key] }),
  ],
  'brotli + AES': [atRest.resolveCompression('brotli'), atRest.resolveEncryption({ keys: [key] })],
} as const

/**
 * A shop session of about `bytes` bytes of JSON: ids and tokens (random, incompressible) with
 * a cart and a browsing history (repetitive, as real sessions are).
 */
function session(bytes: number, index: number): SessionData {
  const data: SessionData = {
    userId: 100_000 + index,
    csrfToken: randomBytes(24).toString('base64url'),
    roles: ['customer'],
    cart: [] as unknown[],
    viewed: [] as unknown[],
  }
  let i = 0
  while (Buffer.byteLength(JSON.stringify(data)) < bytes) {
    ;(data['cart'] as unknown[]).push({ sku: `SKU-${(index * 31 + i) % 99_999}`, qty: 1 + (i % 3) })
    ;(data['viewed'] as unknown[]).push({
      path: `/products/${(index * 17 + i) % 5000}`,
      at: 1_764_000_000_000 + i * 1000,
      ref: randomBytes(6).toString('base64url'),
    })
    i++
  }
  return data
}

interface Row {
  size: string
  setting: string
  storedBytes: number
  toPlainBytes: number
  encodeMicros: number
  decodeMicros: number
}

/** Rounds per size: each measures every setting once, in a rotated order; medians are reported. */
const rounds = args.quick ? 2 : 7

const startedAt = performance.now()
const rows: Row[] = []
for (const [size, bytes] of [
  ['1 KB', 1024],
  ['50 KB', 50 * 1024],
] as const) {
  const count = bytes > 10_000 ? Math.max(50, calls / 10) : calls
  const sessions = Array.from({ length: count }, (_, index) => session(bytes, index))
  const cases = Object.entries(SETTINGS).map(([setting, [compression, keys]]) => {
    const codec = atRest.atRestCodec(library.jsonCodec, compression, keys, 16_777_215)
    // Encrypted rows are bound to their session's id; one id for all keeps the rows comparable.
    const stored = sessions.map((data) => Buffer.from(codec.encode(data, SESSION_ID) as Buffer))
    return { setting, codec, stored, encode: [] as number[], decode: [] as number[] }
  })
  // Settings take turns within each round, so that a slow spell of this shared machine (or a
  // garbage collection) lands on every setting alike rather than on whichever ran then.
  for (let round = 0; round < rounds; round++) {
    for (let turn = 0; turn < cases.length; turn++) {
      const { codec, stored, encode, decode } = cases[(round + turn) % cases.length]!
      encode.push(microsPerCall(sessions, (data) => codec.encode(data, SESSION_ID)))
      decode.push(microsPerCall(stored, (row) => codec.decode(row, SESSION_ID)))
    }
  }
  const average = (stored: readonly Buffer[]): number =>
    stored.reduce((sum, row) => sum + row.length, 0) / stored.length
  const plainBytes = average(cases[0]!.stored)
  for (const { setting, stored, encode, decode } of cases) {
    rows.push({
      size,
      setting,
      storedBytes: average(stored),
      toPlainBytes: average(stored) / plainBytes,
      encodeMicros: median(encode),
      decodeMicros: median(decode),
    })
  }
}

const environment = describeEnvironment()
console.log(
  `## At rest: bytes stored and CPU per call\n\nNode ${environment.node}, one core; library from ` +
    `dist/ (${environment.commit ?? 'no git'}). Per call: the median of ${rounds} rounds, each ` +
    `the mean over ${calls} sessions of 1 KB and ${Math.max(50, calls / 10)} of 50 KB, the ` +
    `settings taking turns; decode includes JSON.parse, encode JSON.stringify.\n`,
)
const plainOf = (size: string, field: 'encodeMicros' | 'decodeMicros'): number =>
  rows.find((row) => row.size === size && row.setting === 'plain')![field]
console.log(
  markdownTable(
    [
      { header: 'session' },
      { header: 'setting' },
      { header: 'bytes stored', align: 'right' },
      { header: '/plain', align: 'right' },
      { header: 'encode µs', align: 'right' },
      { header: 'decode µs', align: 'right' },
      { header: 'encode+decode /plain', align: 'right' },
    ],
    rows.map((row) => [
      row.size,
      row.setting,
      formatNumber(row.storedBytes, 0),
      `${formatNumber(row.toPlainBytes, 2)}×`,
      formatNumber(row.encodeMicros, 1),
      formatNumber(row.decodeMicros, 1),
      `${formatNumber(
        (row.encodeMicros + row.decodeMicros) /
          (plainOf(row.size, 'encodeMicros') + plainOf(row.size, 'decodeMicros')),
        1,
      )}×`,
    ]),
  ),
)
const file = await writeResults(
  'at-rest',
  {
    benchmark: 'at-rest',
    environment,
    settings: { calls, rounds, library: 'dist/' },
    wallSeconds: (performance.now() - startedAt) / 1000,
    results: rows,
  },
  args,
)
console.log(`\nResults written to ${file}`)
