/** Debug output (NODE_DEBUG=session-shards), silent by default. */
import { debuglog } from 'node:util'

/** Debug output, silent unless NODE_DEBUG includes session-shards. Never log secrets through it. */
export const debug = debuglog('session-shards')
