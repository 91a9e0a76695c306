#!/usr/bin/env node
// Run by `npm test` before the suite. tap builds its test class with the plugins package.json
// configures ("tap.plugin": tsx loads the test files, not tap's default ts-node). A fresh
// `npm ci` leaves it built with the defaults, and tap rebuilds it during a run for the runs
// after it only, so the first run would load every test file through both. Rebuilt here
// first, when the configured plugins differ from the built ones (tap's own packages, which
// come with it, say both; should they move, it is rebuilt every time, about 8 s).
import { spawnSync } from 'node:child_process'

async function builtAsConfigured() {
  try {
    const [{ TapConfig }, { signature }] = await Promise.all([
      import('@tapjs/config'),
      import('@tapjs/test'),
    ])
    return (await TapConfig.load()).pluginSignature === signature
  } catch {
    return false
  }
}

if (!(await builtAsConfigured())) {
  const tap = spawnSync('npx', ['--no-install', 'tap', 'build'], { stdio: 'inherit' })
  process.exit(tap.status ?? 1)
}
