// npm run placement-moves: the share of sessions whose first copy, and whose set of the first
// two copies, move when a store is added or removed, for n = 3 to 16 stores, under both
// placements, over 100,000 random ids. Prints the markdown table in docs/placement.md.
import { parseArgs } from 'node:util'
import { integerArgument, parseArgsMessage } from '../lib/cli/command.js'
import { generateSessionId } from '../lib/ids.js'
import { classicOrder, rendezvousOrder } from '../lib/placement.js'

type Order = (stores: readonly string[], id: string) => string[]

const USAGE = `Usage: npm run placement-moves -- [--ids N]

  --ids N   random session ids to place   [100000]`

const ids = Array.from({ length: idCount(process.argv.slice(2)) }, () => generateSessionId())

/** `--ids`, or the usage (exit 0 with --help, 2 on anything else it cannot use). */
function idCount(argv: string[]): number {
  try {
    const { values } = parseArgs({
      args: argv,
      options: { ids: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
      strict: true,
    })
    if (values.help === true) {
      console.log(USAGE)
      process.exit(0)
    }
    return integerArgument('ids', values.ids, 1) ?? 100_000
  } catch (error) {
    console.error(`placement-moves: ${parseArgsMessage(error)}\n\n${USAGE}`)
    process.exit(2)
  }
}

function moved(order: Order, before: string[], after: string[]): [first: number, set: number] {
  let first = 0
  let set = 0
  for (const id of ids) {
    const a = order(before, id)
    const b = order(after, id)
    if (a[0] !== b[0]) first++
    if ([a[0], a[1]].sort().join() !== [b[0], b[1]].sort().join()) set++
  }
  return [first / ids.length, set / ids.length]
}

const percent = (share: number): string => `${(share * 100).toFixed(1)}%`
console.log(
  '| n | classic: add, first | classic: add, copy set | classic: remove, first | classic: remove, copy set | rendezvous: add, first | rendezvous: add, copy set | rendezvous: remove, first | rendezvous: remove, copy set |',
)
console.log('| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |')
for (let n = 3; n <= 16; n++) {
  const stores = Array.from({ length: n }, (_, i) => `store-${String(i).padStart(2, '0')}`)
  const added = [...stores, 'store-new']
  const removed = stores.slice(1)
  const cells = [classicOrder, rendezvousOrder].flatMap((order) => [
    ...moved(order, stores, added),
    ...moved(order, stores, removed),
  ])
  console.log(`| ${n} | ${cells.map(percent).join(' | ')} |`)
}
console.log(
  `\n${ids.length.toLocaleString('en')} random ids; copy set = the first two stores (copies 2).`,
)
