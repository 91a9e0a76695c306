import { OperationFailedError } from '../errors.js'

/** A Node-style callback: an error first, then the result. */
export type NodeCallback<T> = (error: unknown, value?: T) => void

/**
 * Serves one operation both ways: calls `callback` (when one is given) once the operation
 * settles, and returns a promise of the same outcome. With a callback, that promise is marked
 * as handled, so a caller that only passes a callback never sees an unhandled rejection. A
 * rejection that is not an Error becomes an {@link OperationFailedError} on both: a callback
 * called with a falsy error (undefined, null) would read as success.
 */
export function serve<T>(operation: Promise<T>, callback: NodeCallback<T> | undefined): Promise<T> {
  const settled = operation.catch((error: unknown) => {
    throw error instanceof Error ? error : new OperationFailedError(error)
  })
  if (typeof callback === 'function') {
    settled.then(
      (value) => callOnce(callback, null, value),
      (error: unknown) => callOnce(callback, error),
    )
  }
  return settled
}

/**
 * Calls back outside the promise chain: an exception thrown by the callback surfaces as an
 * uncaught exception, as it would from any callback API, instead of becoming a rejection no
 * one handles (or a second call of the callback with that exception).
 */
function callOnce<T>(callback: NodeCallback<T>, error: unknown, value?: T): void {
  try {
    if (error === null) callback(null, value)
    else callback(error)
  } catch (thrown) {
    process.nextTick(() => {
      throw thrown
    })
  }
}
