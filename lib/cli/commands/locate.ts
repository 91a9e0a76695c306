/** `session-shards locate <id>`: a session's order over the stores, without asking any. */
import type { Command } from '../command.js'
import { singlePositional } from '../command.js'
import { loadCommandConfig } from '../config.js'
import { EXIT_OK } from '../output.js'
import { sessionOrder } from '../session-order.js'

export const locateCommand: Command = {
  help: `Usage: session-shards locate <session-id> [--config <file>] [--json]

Prints the session's order over the configured stores, computed from its id and the store ids
(no store is asked). Its copies go to the first \`copies\` stores of the order that are up;
when one of them is down, the next store in the order takes the copy.

Exit code: 0, or 2 for a malformed (or, with secrets, unsigned) id or a configuration error.`,
  options: {},
  async run(context) {
    const id = singlePositional(context, 'locate', 'session-id')
    const config = await loadCommandConfig(context)
    const order = sessionOrder(config.resolved, id)
    const copies = config.resolved.copies
    const { out } = context
    out.result({
      id,
      copies,
      order: order.map((storeId, index) => ({
        position: index + 1,
        storeId,
        holdsCopy: index < copies,
      })),
    })
    out.line(`Session ${id} (copies = ${copies}):`)
    out.table(
      [{ header: '#', align: 'right' }, { header: 'store' }, { header: 'role' }],
      order.map((storeId, index) => [
        String(index + 1),
        storeId,
        index < copies ? 'copy' : 'next if a copy store is down',
      ]),
    )
    return EXIT_OK
  },
}
