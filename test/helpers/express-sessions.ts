/** Sessions as express-session makes them, and reading them back through the Express store. */
import session from 'express-session'
import { SessionShardsStore } from '../../lib/adapters/express.js'
import type { SessionManager } from '../../lib/index.js'

/**
 * A session as express-session makes it: its cookie (without `maxAge`, a browser-session
 * cookie with no expiry), then the app's data.
 */
export function sessionWith(
  data: Record<string, unknown>,
  maxAgeMillis?: number,
): session.SessionData {
  const Cookie = session.Cookie as unknown as new (options: { maxAge?: number }) => session.Cookie
  return { cookie: new Cookie({ maxAge: maxAgeMillis }), ...data } as session.SessionData
}

/** Reads a session through the Express store over `manager`, as an app's express-session does. */
export function expressGetter(
  manager: SessionManager,
): (id: string) => Promise<session.SessionData | null | undefined> {
  const store = new SessionShardsStore({ manager })
  return (id) =>
    new Promise((resolve, reject) =>
      store.get(id, (error, data) => (error ? reject(error) : resolve(data))),
    )
}

/**
 * A session as express-session hands it to a store's `set` or `touch`: the app's data and a
 * ten-minute cookie that expires at `expiresAt` (its JSON form, as the store receives it).
 */
export function sessionExpiringAt(
  expiresAt: number,
  data: Record<string, unknown>,
): session.SessionData {
  const cookie = {
    originalMaxAge: 600_000,
    expires: new Date(expiresAt),
    httpOnly: true,
    path: '/',
  }
  return { ...data, cookie } as unknown as session.SessionData
}
