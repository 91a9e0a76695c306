/** What a request through {@link CookieClient} answered. */
export interface HttpAnswer {
  status: number
  /** The JSON body, or null when the body is empty or not JSON. */
  body: any
  /** The body as text. */
  text: string
  /** Where a redirect points, if it is one. */
  location: string | null
}

/**
 * A tiny browser stand-in over Node's fetch: keeps the cookies servers set (one jar for every
 * port of 127.0.0.1, as browsers do) and sends them back. `copy()` keeps an old cookie around,
 * e.g. to replay it after a logout.
 */
export class CookieClient {
  readonly #cookies: Map<string, string>

  constructor(cookies: Map<string, string> = new Map()) {
    this.#cookies = new Map(cookies)
  }

  /** A second client holding the same cookies as this one now. */
  copy(): CookieClient {
    return new CookieClient(this.#cookies)
  }

  /** The value of a cookie, if the jar holds it. */
  cookie(name: string): string | undefined {
    return this.#cookies.get(name)
  }

  get(url: string): Promise<HttpAnswer> {
    return this.request('GET', url)
  }

  post(url: string, body?: unknown): Promise<HttpAnswer> {
    return this.request('POST', url, body)
  }

  /** A form post, as a browser sends one (application/x-www-form-urlencoded). */
  postForm(url: string, fields: Record<string, string>): Promise<HttpAnswer> {
    return this.#send('POST', url, new URLSearchParams(fields))
  }

  request(method: string, url: string, body?: unknown): Promise<HttpAnswer> {
    return this.#send(method, url, body === undefined ? null : JSON.stringify(body))
  }

  async #send(
    method: string,
    url: string,
    body: string | URLSearchParams | null,
  ): Promise<HttpAnswer> {
    const headers: Record<string, string> = {}
    if (this.#cookies.size > 0) {
      headers.cookie = [...this.#cookies].map(([name, value]) => `${name}=${value}`).join('; ')
    }
    // A string is JSON (request()); fetch labels a form (URLSearchParams) itself.
    if (typeof body === 'string') headers['content-type'] = 'application/json'
    const response = await fetch(url, { method, headers, body, redirect: 'manual' })
    for (const line of response.headers.getSetCookie()) this.#keep(line)
    const text = await response.text()
    let parsed: unknown = null
    try {
      parsed = text === '' ? null : JSON.parse(text)
    } catch {
      parsed = null
    }
    return {
      status: response.status,
      body: parsed,
      text,
      location: response.headers.get('location'),
    }
  }

  #keep(setCookie: string): void {
    const [pair = '', ...attributes] = setCookie.split(';')
    const equals = pair.indexOf('=')
    if (equals <= 0) return
    const name = pair.slice(0, equals).trim()
    const value = pair.slice(equals + 1).trim()
    const expired = attributes.some((attribute) => {
      const [key = '', ...rest] = attribute.split('=')
      const setting = rest.join('=').trim()
      if (/^\s*max-age\s*$/i.test(key)) return Number(setting) <= 0
      if (/^\s*expires\s*$/i.test(key)) return Date.parse(setting) <= Date.now()
      return false
    })
    if (expired || value === '') this.#cookies.delete(name)
    else this.#cookies.set(name, value)
  }
}
