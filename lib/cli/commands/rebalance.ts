/** `session-shards rebalance`: the repair scan after a change of the store list. */
import type { Command } from '../command.js'
import { MAX_BATCH_SIZE } from '../command.js'
import { formatCount } from '../output.js'
import { runRepairScan, WALK_OPTIONS } from './repair.js'

export const rebalanceCommand: Command = {
  help: `Usage: session-shards rebalance [--batch-size N] [--resume-from <store>] [--config <file>] [--json]

After a change of the store list (new stores in \`stores\`, the old list in \`previousStores\`,
deployed to every app server): walks every store, the retiring ones too, puts each session on
the first \`copies\` stores of its order under the new list and removes its other copies.
The same as sm.repair(); the app keeps serving meanwhile. When it exits 0 and a second run
copies and removes nothing, drop \`previousStores\` from the config. See docs/operations.md.

Ctrl-C stops it after the batch in progress and prints how to resume.

  --batch-size N         session ids read per statement while scanning, at most ${formatCount(MAX_BATCH_SIZE)}
                         (default 500)
  --resume-from <store>  start the walk at this store (as printed by a stopped run)

Exit code: 0 done, 1 a store was down (not walked) or some sessions could not be moved (run it
again), 2 usage or configuration error, 130 stopped by Ctrl-C.`,
  options: WALK_OPTIONS,
  run: (context) => runRepairScan(context, 'rebalance'),
}
