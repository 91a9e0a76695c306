/** The commands of one line-protocol connection, on the session it has open (at most one). */
import { isDeepStrictEqual } from 'node:util'
import { touchIsDue } from '../adapters/touch-throttle.js'
import type { SessionData } from '../codec.js'
import { debug } from '../debug.js'
import {
  errorSummary,
  InvalidSessionDataError,
  LockExpiredError,
  VersionConflictError,
} from '../errors.js'
import type { SessionLock } from '../session-lock.js'
import type { VersionedSession } from '../read-path.js'
import type { SessionManager } from '../session-manager.js'
import { valuesToPut, withValue, withValues, withoutValue } from '../session-values.js'
import type { LineRequest } from './line-protocol.js'
import {
  jsonPayload,
  okAnswer,
  payloadAnswer,
  storedValue,
  wireValue,
  wordAnswer,
} from './line-answers.js'
import { parseClientJson } from './client-json.js'
import { RequestError, sessionDestroyed, sessionGone } from './request-error.js'

/** What a line session needs of the server's settings. */
export interface LineSessionSettings {
  manager: SessionManager
  maxBodyBytes: number
  lockLeaseMillis: number
  lockWaitMillis: number
  touchAfterSeconds: number
}

/** The session a connection has open. */
interface OpenSession {
  id: string
  mode: 'r' | 'w'
  /** `w`: the data with the uncommitted changes; `r`: what was read at `open`. */
  data: SessionData
  /** Changes not committed yet. */
  dirty: boolean
  /** `w` only: what the stores hold, as read at `open` or written by `commit`; undefined: nothing known. */
  stored: StoredState | undefined
  /** `w` only: the stores held the session at `open`, or this connection has written it since. */
  written: boolean
  /**
   * `w` only: the session's lease lock, renewed while the session is open; undefined after a
   * regenerate_id that could not take the new id's lock (taken before the next write).
   */
  lock: SessionLock | undefined
  renewal: NodeJS.Timeout | undefined
  renewing: Promise<void> | undefined
}

/** What the stores hold of an open session, for skipping a commit that changes nothing (touchAfterSeconds). */
interface StoredState {
  data: SessionData
  expiresAt: number
  /** How far a write moves the expiry. */
  timeoutMillis: number
}

/**
 * The session a connection has open and the commands on it: `new`/`open` take it (`w` with the
 * session's lease lock, renewed while it is open), `put`/`remove`/`put_all` change it in memory,
 * `commit` writes it under the lock, `close` (or the connection's end) releases it.
 */
export class LineSession {
  readonly #settings: LineSessionSettings
  /** Aborted once the client is gone (see {@link abandon}). */
  readonly #gone = new AbortController()
  #session: OpenSession | undefined

  constructor(settings: LineSessionSettings) {
    this.#settings = settings
  }

  /**
   * The client is gone: a lock wait in flight ends now (LOCK_ABORTED) instead of holding its
   * place until `lockWaitMillis`, and no later one starts.
   */
  abandon(): void {
    this.#gone.abort()
  }

  /** Runs one command (anything but `auth`, which the connection answers). */
  async run(request: Exclude<LineRequest, { command: 'auth' }>): Promise<Buffer> {
    const { manager } = this.#settings
    switch (request.command) {
      case 'new': {
        this.#checkNoSession()
        const id = manager.generateId()
        const lock = await this.#takeLock(id)
        await this.#releaseOnFailure(lock, () => lock.write({}))
        this.#open({ id, mode: 'w', data: {}, lock, stored: undefined, written: true })
        return wordAnswer(id)
      }
      case 'open': {
        this.#checkNoSession()
        // Any token is an id: one that breaks the manager's rules is kept under a derived key.
        const id = manager.sessionKey(request.id)
        const { mode } = request
        if (mode === 'r') {
          const data = await manager.readSession(id)
          this.#open({
            id,
            mode,
            data: data ?? {},
            lock: undefined,
            stored: undefined,
            written: false,
          })
        } else {
          const lock = await this.#takeLock(id)
          const current = await this.#releaseOnFailure(lock, () => lock.readWithVersion())
          this.#open({
            id,
            mode,
            data: current?.data ?? {},
            lock,
            stored: current === null ? undefined : storedState(current),
            written: current !== null,
          })
        }
        return okAnswer()
      }
      case 'close':
        await this.close()
        return okAnswer()
      case 'commit': {
        const session = this.#writable()
        await this.#commit(session)
        return okAnswer()
      }
      case 'destroy': {
        const session = this.#writable()
        // Fenced like commit: once the lease ran out, another holder may have the session
        // and have written it since; a tombstone would wipe that write.
        if ((await this.#lockOf(session)).expired) throw new LockExpiredError()
        await manager.destroySession(session.id)
        await this.close()
        return okAnswer()
      }
      case 'exists': {
        const id = request.id === undefined ? this.#current().id : manager.sessionKey(request.id)
        return wordAnswer((await manager.readSession(id)) === null ? '0' : '1')
      }
      case 'keys':
        return jsonPayload(Object.keys(this.#current().data))
      case 'get': {
        const { data } = this.#current()
        if (!Object.hasOwn(data, request.key)) {
          throw new RequestError('KEY_NOT_FOUND', 'The open session has no value at this key.')
        }
        const { kind, bytes } = wireValue(data[request.key])
        return payloadAnswer(kind, bytes)
      }
      case 'put': {
        const session = this.#writable()
        this.#change(session, withValue(session.data, request.key, storedValue(request.value)))
        return okAnswer()
      }
      case 'remove': {
        const session = this.#writable()
        if (Object.hasOwn(session.data, request.key)) {
          this.#change(session, withoutValue(session.data, request.key))
        }
        return okAnswer()
      }
      case 'get_all':
        return jsonPayload(this.#current().data)
      case 'put_all': {
        const session = this.#writable()
        const values = parseClientJson(
          request.json,
          'put_all takes a JSON object; this is not valid JSON.',
        )
        this.#change(session, withValues(session.data, valuesToPut(values)))
        return okAnswer()
      }
      case 'regenerate_id':
        return wordAnswer(await this.#regenerate(this.#writable()))
    }
  }

  /**
   * Moves the open session to a new id: pending changes are committed, the library's
   * regenerateSession copies the data (expiry and timeout too) and destroys the old id. A
   * session the stores held but no longer do (destroyed or expired meanwhile) is not-found: the
   * data in memory must not come back under a new id. One never stored gets a fresh id, written
   * at its first commit.
   *
   * Once the data has moved, the connection has the new id open whatever happens next: the
   * client must learn the new id (the old one is destroyed), so a new lock that cannot be taken
   * (a failing store) does not turn the answer into an error. The session is then left without
   * its lock, which the next commit, destroy or regenerate_id takes first (and reports if it
   * still cannot).
   */
  async #regenerate(session: OpenSession): Promise<string> {
    const { manager } = this.#settings
    const oldLock = await this.#lockOf(session)
    // Fenced as a commit is: a lapsed lease moves nothing (another holder may have the lock),
    // and a change made behind the lock is not moved under this client's older data.
    if (oldLock.expired) throw new LockExpiredError()
    if (session.dirty) await this.#commit(session)
    // After a commit too: one the throttle skipped read without checking a version, and a
    // session opened before it existed holds version 0, which a write behind the lock moved.
    await this.#checkUnchanged(session.id, oldLock)
    const moved = await manager.regenerateSession(session.id)
    if (moved === null && session.written) throw sessionGone()
    const newId = moved ?? manager.generateId()
    await this.#stopRenewal(session)
    await oldLock
      .release()
      .catch((error: unknown) => debug('lock release: %s', errorSummary(error)))
    session.id = newId
    session.lock = undefined
    session.stored = undefined
    session.written = moved !== null
    try {
      await this.#lockOf(session)
    } catch (error) {
      debug('regenerate_id: the new id is not locked yet: %s', errorSummary(error))
    }
    return newId
  }

  /** Rejects with VersionConflictError if the session moved on from the version `lock` read. */
  async #checkUnchanged(id: string, lock: SessionLock): Promise<void> {
    const current = await this.#settings.manager.readSession(id, { withVersion: true })
    const held = lock.version
    if (current !== null && held !== undefined && current.version !== held) {
      throw new VersionConflictError(current.version, held)
    }
  }

  /**
   * The open `w` session's lock; taken first (and the session read again for its version,
   * which the lock's writes are fenced with) when a regenerate_id could not take it.
   */
  async #lockOf(session: OpenSession): Promise<SessionLock> {
    if (session.lock !== undefined) return session.lock
    const lock = await this.#takeLock(session.id)
    const current = await this.#releaseOnFailure(lock, () => lock.readWithVersion())
    session.lock = lock
    session.stored = current === null ? undefined : storedState(current)
    // Written by regenerate_id, then destroyed or expired: commit finds out (it is dropped).
    session.written ||= current !== null
    this.#startRenewal(session)
    return lock
  }

  /**
   * Writes the open session under its lock; a destroyed session is not-found. With
   * `touchAfterSeconds`, a commit that would change nothing but the expiry, and move it by
   * less than that, writes nothing but reads: as with PHP's lazy_write, it then neither
   * overwrites nor notices a change made behind the lock by an app that does not lock (the next
   * commit that writes meets VERSION_CONFLICT), but a session destroyed meanwhile (a logout
   * elsewhere) is not-found, never ok; a lost lock is still LOCK_EXPIRED.
   */
  async #commit(session: OpenSession): Promise<void> {
    const lock = await this.#lockOf(session)
    const now = Date.now()
    const { stored } = session
    if (stored !== undefined && this.#mayBeSkipped(stored, session.data, now)) {
      // The manager's read, not the lock's: that would take the version read as the lock's own.
      const current = await this.#settings.manager.readSession(session.id)
      if (lock.expired) throw new LockExpiredError()
      if (current === null) throw sessionDestroyed()
      session.dirty = false
      return
    }
    const result = await lock.write(session.data)
    if (result.dropped) throw sessionDestroyed()
    session.dirty = false
    session.written = true
    if (stored !== undefined) {
      session.stored = { ...stored, data: session.data, expiresAt: now + stored.timeoutMillis }
    }
  }

  /** Whether a commit of `data` would only move the stored expiry, by less than the throttle. */
  #mayBeSkipped(stored: StoredState, data: SessionData, now: number): boolean {
    const touchAfterMillis = this.#settings.touchAfterSeconds * 1000
    return (
      touchAfterMillis > 0 &&
      stored.expiresAt > now &&
      !touchIsDue(stored, now + stored.timeoutMillis, touchAfterMillis, now) &&
      isDeepStrictEqual(stored.data, data)
    )
  }

  #change(session: OpenSession, data: SessionData): void {
    let bytes: number
    try {
      bytes = jsonBytes(data)
    } catch (error) {
      // Nested too deeply for the encoder: the same refusal HTTP gets from the library.
      throw new InvalidSessionDataError('it cannot be encoded as JSON', { cause: error })
    }
    // A session over the limit (written by a Node app, or before the limit was lowered) may
    // still shrink: refusing every change would leave no way to trim it over this protocol.
    // Its size before is only worked out then, off the common path.
    if (bytes > this.#settings.maxBodyBytes && bytes > sizeBefore(session.data)) {
      throw new RequestError(
        'SESSION_TOO_LARGE',
        `The session would be ${bytes} bytes as JSON, more than the server's maxBodyBytes (${this.#settings.maxBodyBytes}) and more than it is now; nothing was changed.`,
      )
    }
    session.data = data
    session.dirty = true
  }

  #current(): OpenSession {
    if (this.#session === undefined) {
      throw new RequestError(
        'NO_OPEN_SESSION',
        'No session is open on this connection: send "open <id> r|w" or "new" first.',
      )
    }
    return this.#session
  }

  #writable(): OpenSession {
    const session = this.#current()
    if (session.mode !== 'w') {
      throw new RequestError(
        'READ_ONLY',
        'The session is open read-only; close it and "open <id> w" to change it.',
      )
    }
    return session
  }

  #checkNoSession(): void {
    if (this.#session !== undefined) {
      throw new RequestError(
        'SESSION_ALREADY_OPEN',
        `Session ${this.#session.id} is open on this connection; send "close" first.`,
      )
    }
  }

  #takeLock(id: string): Promise<SessionLock> {
    return this.#settings.manager.lockSession(id, {
      leaseMillis: this.#settings.lockLeaseMillis,
      waitMillis: this.#settings.lockWaitMillis,
      signal: this.#gone.signal,
    })
  }

  async #releaseOnFailure<T>(lock: SessionLock, step: () => Promise<T>): Promise<T> {
    try {
      return await step()
    } catch (error) {
      await lock.release().catch(() => {})
      throw error
    }
  }

  #open(session: Omit<OpenSession, 'dirty' | 'renewal' | 'renewing'>): void {
    this.#session = { ...session, dirty: false, renewal: undefined, renewing: undefined }
    this.#startRenewal(this.#session)
  }

  /** Renews the lease at a third of its length, so the lock lasts as long as the connection holds the session. */
  #startRenewal(session: OpenSession): void {
    const lock = session.lock
    if (lock === undefined) return
    const renewal = setInterval(
      () => {
        if (session.renewing !== undefined) return
        session.renewing = lock
          .renew()
          .catch((error: unknown) => {
            debug('lock renewal for a line client: %s', errorSummary(error))
            // Lost (run out, or taken): a later commit fails with LOCK_EXPIRED, which is what
            // the client must learn. Anything else (a store timeout...) is retried next tick:
            // the lease still runs, and renew() refuses once it has run out.
            if (error instanceof LockExpiredError) clearInterval(renewal)
          })
          .finally(() => (session.renewing = undefined))
      },
      Math.max(1, Math.floor(this.#settings.lockLeaseMillis / 3)),
    )
    renewal.unref()
    session.renewal = renewal
  }

  async #stopRenewal(session: OpenSession): Promise<void> {
    clearInterval(session.renewal)
    session.renewal = undefined
    // A renewal in flight could take the lock again after a release: let it land first.
    await session.renewing
  }

  /** Closes the open session (if any), discarding uncommitted changes and releasing its lock. */
  async close(): Promise<void> {
    const session = this.#session
    if (session === undefined) return
    this.#session = undefined
    await this.#stopRenewal(session)
    await session.lock
      ?.release()
      .catch((error: unknown) => debug('lock release: %s', errorSummary(error)))
  }
}

function jsonBytes(data: SessionData): number {
  return Buffer.byteLength(JSON.stringify(data))
}

/** The JSON size of a session before a change; 0 (the change grows it) if it cannot be encoded. */
function sizeBefore(data: SessionData): number {
  try {
    return jsonBytes(data)
  } catch {
    return 0
  }
}

function storedState(current: VersionedSession): StoredState {
  return {
    data: current.data,
    expiresAt: current.expiresAt,
    timeoutMillis: current.timeoutSeconds * 1000,
  }
}
