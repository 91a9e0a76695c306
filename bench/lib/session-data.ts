import { randomBytes } from 'node:crypto'
import type { SessionData } from '../../lib/index.js'

/** About 200 bytes of JSON, shaped like a web shop's session; `index` varies its values. */
export function sessionData(index: number): SessionData {
  return {
    userId: 100_000 + index,
    csrfToken: randomBytes(24).toString('base64url'),
    roles: ['customer'],
    locale: 'en-GB',
    cart: [
      { sku: `SKU-${10_000 + (index % 90_000)}`, qty: 1 + (index % 3) },
      { sku: `SKU-${20_000 + ((index * 7) % 80_000)}`, qty: 1 },
    ],
    lastSeenAt: Date.now(),
    returnTo: '/account',
  }
}

/** Writes `data[i]` as session `ids[i]` through `manager`, 64 at a time. */
export async function writeSessions(
  manager: { writeSession(id: string, data: SessionData): Promise<unknown> },
  ids: readonly string[],
  data: (index: number) => SessionData,
): Promise<void> {
  for (let start = 0; start < ids.length; start += 64) {
    const batch = ids.slice(start, start + 64)
    await Promise.all(batch.map((id, k) => manager.writeSession(id, data(start + k))))
  }
}

/** Average size of the items as JSON, in bytes. */
export function averageBytes(data: readonly SessionData[]): number {
  const total = data.reduce((sum, item) => sum + Buffer.byteLength(JSON.stringify(item)), 0)
  return Math.round(total / data.length)
}
