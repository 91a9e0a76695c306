/** `npm run chaos`'s command line: its usage, and the run's settings, checked before any store starts. */
import { parseArgs } from 'node:util'
import { integerArgument, UsageError } from '../../lib/cli/command.js'
import { FAULT_KINDS, type FaultKind } from '../../lib/cli/workload/chaos-faults.js'
import type { ChaosOptions } from '../../lib/cli/workload/chaos.js'
import { resolveOptions } from '../../lib/options.js'

export const CHAOS_USAGE = `Usage: npm run chaos -- [options]

  --seconds N             how long the workload runs                   [60]
  --stores N              local stores                                 [4]
  --copies N              copies of each session, at most --stores     [2]
  --in-flight N           operations in flight                         [64]
  --read-quorum N         the managers' readQuorum, at most --copies   [the library's default]
  --read-lease-millis N   the managers' readLeaseMillis (0: no lease)  [the library's default]
  --gray                  gray failures too (fault proxies, CPU starvation)
  --at-rest               rows compressed and encrypted
  --faults K,...|none     the fault kinds to rotate through: ${FAULT_KINDS.join(', ')}
  --fault-millis N        how long each fault lasts
  --json                  the report as one JSON document
  --help                  this text

Exit code: 0 clean, 1 a lost acknowledged write, stale read or resurrection, 2 bad arguments.`

/** What the command line sets: the run's options but its cluster, how many stores, and --json. */
export type ChaosSettings = Omit<ChaosOptions, 'cluster'> & { stores: number; json: boolean }

/**
 * The run's settings from the command line, or `'help'` for --help. Throws UsageError, or the
 * InvalidOptionError the managers would throw (both name the option, never its value), before
 * any store starts.
 */
export function chaosSettings(argv: string[]): ChaosSettings | 'help' {
  const { values } = parseArgs({
    args: argv,
    options: {
      seconds: { type: 'string' },
      stores: { type: 'string' },
      copies: { type: 'string' },
      'in-flight': { type: 'string' },
      'read-quorum': { type: 'string' },
      'read-lease-millis': { type: 'string' },
      gray: { type: 'boolean', default: false },
      'at-rest': { type: 'boolean', default: false },
      faults: { type: 'string' },
      'fault-millis': { type: 'string' },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  })
  if (values.help) return 'help'
  const stores = integerArgument('stores', values.stores, 1) ?? 4
  const copies = integerArgument('copies', values.copies, 1) ?? 2
  if (copies > stores) throw new UsageError('--copies must be at most --stores')
  const readQuorum = integerArgument('read-quorum', values['read-quorum'], 1)
  if (readQuorum !== undefined && readQuorum > copies) {
    throw new UsageError('--read-quorum must be at most --copies')
  }
  const readLeaseMillis = integerArgument('read-lease-millis', values['read-lease-millis'], 0)
  // The managers' own checks, on stores that are never asked (no I/O here).
  resolveOptions({
    stores: Array.from({ length: stores }, (_, index) => ({
      id: `store-${index}`,
      uri: 'mysql://check@127.0.0.1:3306/check',
    })),
    copies,
    readQuorum,
    readLeaseMillis,
  })
  return {
    seconds: integerArgument('seconds', values.seconds, 1) ?? 60,
    stores,
    copies,
    inFlight: integerArgument('in-flight', values['in-flight'], 1) ?? 64,
    readQuorum,
    readLeaseMillis,
    gray: values.gray,
    atRest: values['at-rest'],
    faultKinds: faultKinds(values.faults),
    faultMillis: integerArgument('fault-millis', values['fault-millis'], 1),
    json: values.json,
  }
}

/** `--faults`: a comma-separated list of fault kinds, or `none` for a run without faults. */
function faultKinds(list: string | undefined): FaultKind[] | undefined {
  if (list === undefined) return undefined
  if (list === 'none') return []
  const kinds = list.split(',')
  const unknown = kinds.filter((kind) => !FAULT_KINDS.includes(kind as FaultKind))
  if (unknown.length > 0) {
    throw new UsageError(`--faults takes ${FAULT_KINDS.join(', ')} or none`)
  }
  return kinds as FaultKind[]
}
