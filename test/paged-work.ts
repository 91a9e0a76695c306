// forEachPaged, which feeds the import's writes from its source's pages: every item once, a
// bounded number at once, lanes that run on across page boundaries, one page read ahead and no
// more, and a source that fails part way.
import { setTimeout as sleep } from 'node:timers/promises'
import t from 'tap'
import { forEachPaged } from '../lib/cli/paged-work.js'

/** A paged source that logs when each page is asked for and handed out. */
function source(
  pages: readonly (readonly number[])[],
  log: string[],
  failAt?: number,
): AsyncIterable<readonly number[]> {
  return {
    async *[Symbol.asyncIterator]() {
      for (const [index, page] of pages.entries()) {
        log.push(`read ${index}`)
        await sleep(1)
        if (index === failAt) throw new Error('the source failed')
        yield page
      }
    },
  }
}

t.test('every item once, at most `limit` at once, lanes across pages', async (t) => {
  const log: string[] = []
  const done: number[] = []
  let running = 0
  let most = 0
  const pages = [[1, 2, 3], [4, 5], [], [6, 7, 8, 9]]
  // Item 1 is slow: it finishes only once item 4 has (or after 5 s, when no lane ran on), so
  // the other lane must take 2, 3 and run on into the next page meanwhile. (A fixed 40 ms for
  // item 1 was not slow enough on a loaded CI run.)
  let fourDone!: () => void
  const four = new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, 5000)
    fourDone = () => {
      clearTimeout(timer)
      resolve()
    }
  })
  await forEachPaged(source(pages, log), 2, async (item) => {
    most = Math.max(most, ++running)
    await (item === 1 ? four : sleep(2))
    running--
    done.push(item)
    if (item === 4) fourDone()
  })
  t.same(
    [...done].sort((a, b) => a - b),
    [1, 2, 3, 4, 5, 6, 7, 8, 9],
    'every item, once',
  )
  t.equal(most, 2, 'never more than the limit at once')
  t.ok(done.indexOf(4) < done.indexOf(1), 'a lane ran on into the next page past a slow item')
})

t.test('one page read ahead, and no more', async (t) => {
  const log: string[] = []
  const pages = [
    [1, 2],
    [3, 4],
    [5, 6],
  ]
  await forEachPaged(source(pages, log), 1, async (item) => {
    log.push(`work ${item}`)
    await sleep(2)
  })
  t.same(log, [
    'read 0',
    'read 1', // asked for as soon as page 0 was taken, while its items are worked on
    'work 1',
    'work 2',
    'read 2', // only once page 1 was taken: two pages held at most
    'work 3',
    'work 4',
    'work 5',
    'work 6',
  ])
})

t.test(
  'a source that fails: the work in flight ends, nothing more starts, the error',
  async (t) => {
    const log: string[] = []
    const started: number[] = []
    let finished = 0
    const pages = [[1, 2, 3, 4], [5, 6], [7]]
    await t.rejects(
      forEachPaged(source(pages, log, 1), 3, async (item) => {
        started.push(item)
        await sleep(item === 4 ? 30 : 1)
        finished++
      }),
      { message: 'the source failed' },
    )
    t.same([...started].sort(), [1, 2, 3, 4], "the first page's items, and no later one")
    t.equal(finished, started.length, 'every item started had finished before the rejection')
    t.notOk(log.includes('read 2'), 'nothing read after the failure')
  },
)
