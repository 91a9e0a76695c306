/** Listed ids handed on in chunks: what the framework stores read or destroy at once. */

/** Sessions read or destroyed at once by `all()` and `clear()`. */
const LISTING_CONCURRENCY = 32

/** Feeds ids to `work` in chunks of {@link LISTING_CONCURRENCY}, one chunk at a time. */
export async function inChunks(
  ids: AsyncIterable<string>,
  work: (chunk: string[]) => Promise<void>,
): Promise<void> {
  let chunk: string[] = []
  for await (const id of ids) {
    chunk.push(id)
    if (chunk.length === LISTING_CONCURRENCY) {
      await work(chunk)
      chunk = []
    }
  }
  if (chunk.length > 0) await work(chunk)
}
