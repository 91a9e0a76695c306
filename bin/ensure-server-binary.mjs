#!/usr/bin/env node
// Run by `npm test` before the suite: the tests start their own stores, so they need mariadbd or
// mysqld. When none is found, Debian's mariadb-server is installed (as root, with apt-get);
// otherwise this stops with the one command to run. Tests pointed at running servers
// (SESSION_SHARDS_TEST_STORES) need no binary.
import { ensureServerBinary } from '../dist/local-cluster/server-install.js'

if (!process.env.SESSION_SHARDS_TEST_STORES) {
  try {
    await ensureServerBinary({ log: (line) => console.error(line) })
  } catch (error) {
    console.error(error instanceof Error ? error.message : String(error))
    process.exit(1)
  }
}
