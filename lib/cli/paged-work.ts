/** Work on every item of a paged source, a few at a time, the next page read meanwhile. */

/**
 * Runs `work` on every item of `pages`, at most `limit` at once. The lanes run on from one page
 * into the next, and the next page is asked for as soon as the current one is taken, so that
 * reading the source overlaps the work instead of waiting for the slowest item of each page. At
 * most two pages are held: the one being worked on and the one read ahead.
 *
 * If the source fails, no item is started after that; the work in flight finishes, then the
 * promise rejects with the source's error. `work` must not reject (it reports its own failures).
 */
export async function forEachPaged<T>(
  pages: AsyncIterable<readonly T[]>,
  limit: number,
  work: (item: T) => Promise<void>,
): Promise<void> {
  const iterator = pages[Symbol.asyncIterator]()
  let current: readonly T[] = []
  let position = 0
  let ahead: Promise<IteratorResult<readonly T[]>> | undefined = readAhead(iterator)
  let failure: { error: unknown } | undefined

  /** The next item, or undefined at the end of the source (or after it failed). */
  const take = async (): Promise<T | undefined> => {
    for (;;) {
      if (failure !== undefined) return undefined
      if (position < current.length) return current[position++]
      const pending = ahead
      if (pending === undefined) return undefined
      let result: IteratorResult<readonly T[]>
      try {
        result = await pending
      } catch (error) {
        failure ??= { error }
        return undefined
      }
      // Every idle lane waits on the same page; the first to wake takes it in.
      if (ahead !== pending) continue
      if (result.done === true) {
        ahead = undefined
        continue
      }
      current = result.value
      position = 0
      ahead = readAhead(iterator)
    }
  }
  const lane = async (): Promise<void> => {
    for (let item = await take(); item !== undefined; item = await take()) await work(item)
  }
  await Promise.all(Array.from({ length: limit }, lane))
  if (failure !== undefined) {
    // A generator that threw is done; one stopped early gets to close its connection.
    await iterator.return?.(undefined)?.catch(() => undefined)
    throw failure.error
  }
}

/**
 * The iterator's next page. A page read ahead may fail while every lane is busy, with nobody
 * awaiting it yet: marked as handled, so that it is not an unhandled rejection (which ends the
 * process); the lane that takes it next still gets the error.
 */
function readAhead<T>(iterator: AsyncIterator<T>): Promise<IteratorResult<T>> {
  const next = iterator.next()
  next.catch(() => undefined)
  return next
}
