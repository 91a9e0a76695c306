import { createHmac } from 'node:crypto'
import express from 'express'
import session from 'express-session'
import type { SessionOptions } from 'express-session'
import type { Test } from 'tap'
import { listenForTest } from './express-app.js'

/** Secret the conformance apps sign their session cookies with, unless a test gives its own. */
export const CONFORMANCE_SECRET = 'conformance-cookie-secret-for-tests-only'

/** A route handler of a conformance app; it may be async (Express 5 forwards rejections). */
export type ConformanceHandler = (
  req: express.Request,
  res: express.Response,
) => void | Promise<void>

export interface ConformanceAppOptions {
  /** express-session's options; `secret` defaults to {@link CONFORMANCE_SECRET}. */
  session: Partial<SessionOptions> & Pick<SessionOptions, 'store'>
  /** Answers every request that reaches the app (after the session middleware). */
  handler?: ConformanceHandler
}

export interface ConformanceApp {
  /** `http://127.0.0.1:PORT` */
  url: string
  /** Every error passed to `next(err)`, in order; those after the response started too. */
  errors: Error[]
}

/**
 * A bare Express 5 app: the session middleware with exactly the options a test gives (no
 * defaults added but the secret), then one handler answering every method and path. An error
 * passed to `next` is recorded; if the response has not started, it is answered with status
 * 500 and the error's message as plain text. Closed at teardown.
 */
export async function startConformanceApp(
  t: Test,
  options: ConformanceAppOptions,
): Promise<ConformanceApp> {
  const errors: Error[] = []
  const app = express()
  app.use(session({ secret: CONFORMANCE_SECRET, ...options.session }))
  const handler = options.handler ?? ((_req, res) => void res.end())
  app.use(async (req, res) => handler(req, res))
  app.use(
    (error: Error, _req: express.Request, res: express.Response, _next: express.NextFunction) => {
      errors.push(error)
      if (res.headersSent) return
      res.status(500).type('text/plain').end(String(error?.message))
    },
  )
  return { url: await listenForTest(t, app), errors }
}

/** A `Set-Cookie` header, split: its name, its (still encoded) value, its attributes. */
export interface SetCookie {
  name: string
  value: string
  /** Attribute names in lower case; a flag (`HttpOnly`) maps to `true`. */
  attributes: Map<string, string | true>
}

/** What one request answered. */
export interface Answer {
  status: number
  text: string
  /** The first `Set-Cookie` header, if any. */
  setCookie: SetCookie | undefined
  /** The `Date` header, in milliseconds (second precision). */
  date: number
  /** The `name=value` pair to send back in a `Cookie` header, when a cookie was set. */
  cookie: string | undefined
}

/** One HTTP request with an explicit `Cookie` header (or none): nothing is kept between requests. */
export async function send(
  url: string,
  options: { method?: string; cookie?: string | undefined } = {},
): Promise<Answer> {
  const headers: Record<string, string> = {}
  if (options.cookie !== undefined) headers.cookie = options.cookie
  const response = await fetch(url, { method: options.method ?? 'GET', headers })
  const text = await response.text()
  const [first] = response.headers.getSetCookie()
  const setCookie = first === undefined ? undefined : parseSetCookie(first)
  return {
    status: response.status,
    text,
    setCookie,
    date: Date.parse(response.headers.get('date') ?? ''),
    cookie: setCookie === undefined ? undefined : `${setCookie.name}=${setCookie.value}`,
  }
}

/** Splits a `Set-Cookie` header line. */
export function parseSetCookie(line: string): SetCookie {
  const [pair = '', ...rest] = line.split(';')
  const equals = pair.indexOf('=')
  const attributes = new Map<string, string | true>()
  for (const attribute of rest) {
    const at = attribute.indexOf('=')
    if (at === -1) attributes.set(attribute.trim().toLowerCase(), true)
    else attributes.set(attribute.slice(0, at).trim().toLowerCase(), attribute.slice(at + 1).trim())
  }
  return { name: pair.slice(0, equals).trim(), value: pair.slice(equals + 1).trim(), attributes }
}

/** The session id a signed express-session cookie value carries (`s:<id>.<signature>`, encoded). */
export function sessionIdOf(answer: Answer): string | undefined {
  if (answer.setCookie === undefined) return undefined
  const value = decodeURIComponent(answer.setCookie.value)
  if (!value.startsWith('s:')) return undefined
  return value.slice(2, value.lastIndexOf('.'))
}

/**
 * The cookie value express-session sets for `id` under `secret`: `s:`, the id, a dot and the
 * unpadded base64 HMAC-SHA256 of the id, URI-encoded (computed here, independently).
 */
export function signedCookieValue(id: string, secret: string = CONFORMANCE_SECRET): string {
  const mac = createHmac('sha256', secret).update(id).digest('base64').replace(/=+$/, '')
  return encodeURIComponent(`s:${id}.${mac}`)
}

/** The `Expires` attribute of the answer's cookie, in milliseconds, if it has one. */
export function cookieExpires(answer: Answer): number | undefined {
  const expires = answer.setCookie?.attributes.get('expires')
  return typeof expires === 'string' ? Date.parse(expires) : undefined
}
