/** `session-shards bench`: how to run the benchmarks (they need a clone). */
import type { Command } from '../command.js'
import { noPositionals } from '../command.js'
import { EXIT_OK } from '../output.js'
import { isClone, packageRoot } from '../package-info.js'

export const benchCommand: Command = {
  help: `Usage: session-shards bench [--json]

Runs no benchmark: the benchmark (bench/core.ts: the library against raw mysql2 on the same
local stores) is part of the source repository, not of the installed package. This prints how
to run it with \`npm run bench\` from a clone, where it builds the library and runs it from
dist/, and writes its results to bench/results/.

Exit code: 0.`,
  options: {},
  async run(context) {
    noPositionals(context, 'bench')
    const clone = isClone()
    const command = 'npm run bench -- [--seconds N] [--quick]'
    const { out } = context
    out.result({ ran: false, clone, directory: clone ? packageRoot : null, command })
    out.line('session-shards bench runs no benchmark itself: the benchmark is not part of the')
    out.line('installed package. It starts 3 local MariaDB stores and compares the library with')
    out.line('raw mysql2 running the same statements, at 1, 16 and 64 operations in flight.')
    out.line()
    if (clone) {
      out.line('This is a clone of the repository; run:')
      out.line()
      out.line(`  cd ${packageRoot}`)
    } else {
      out.line(
        'From a clone of the session-shards repository (Node.js 20+, mariadb-server installed):',
      )
      out.line()
      out.line('  npm ci')
    }
    out.line(`  ${command}`)
    out.line()
    out.line('--quick is a short run to check that it works; its figures are not for citing.')
    return EXIT_OK
  },
}
