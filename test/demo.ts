import { existsSync } from 'node:fs'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import type { ChildProcess } from 'node:child_process'
import t from 'tap'
import { findServerBinary } from '../lib/local-cluster/index.js'
import { clusterServers, finished, runCli, spawnCli } from './helpers/cli.js'

// `session-shards demo` as a user runs it, stdout piped: it boots its own stores, crashes one,
// reports, and leaves no server process and no directory behind, also when interrupted.
const serverTest = findServerBinary() === null ? t.skip.bind(t) : t.test.bind(t)

/** Server processes started from `baseDir`. */
async function serversIn(baseDir: string): Promise<number[]> {
  return [...(await clusterServers())].flatMap(([pid, args]) =>
    args.includes(baseDir) ? [pid] : [],
  )
}

/** Resolves the base directory from the demo's first line, once printed. */
function baseDirOf(child: ChildProcess, stream: 'stdout' | 'stderr'): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = ''
    child[stream]?.on('data', (chunk: Buffer | string) => {
      text += String(chunk)
      const match = /starting 3 local stores in (\S+)/.exec(text)
      if (match !== null) resolve(match[1]!)
    })
    child.once('close', () =>
      reject(new Error(`the demo ended before printing its directory:\n${text}`)),
    )
  })
}

/** Resolves once the demo printed a line matching `pattern` on stdout. */
function printed(child: ChildProcess, pattern: RegExp): Promise<void> {
  return new Promise((resolve, reject) => {
    let text = ''
    child.stdout?.on('data', (chunk: Buffer | string) => {
      text += String(chunk)
      if (pattern.test(text)) resolve()
    })
    child.once('close', () => reject(new Error(`the demo ended before printing ${pattern}`)))
  })
}

serverTest(
  'demo --seconds 6 --json: nothing lost or stale, a full report, nothing left',
  async (t) => {
    const before = await clusterServers()
    const pageDir = await mkdtemp(path.join(os.tmpdir(), 'session-shards-demo-page-'))
    t.teardown(() => rm(pageDir, { recursive: true, force: true }))
    const page = path.join(pageDir, 'demo.html')
    const run = await runCli(['demo', '--seconds', '6', '--json', '--html', page])
    t.equal(run.code, 0, `exit code 0 (stderr: ${run.stderr.slice(-500)})`)
    const report = JSON.parse(run.stdout)
    t.comment(JSON.stringify({ ...report, timeline: undefined }))
    t.match(report, {
      ok: true,
      clean: true,
      lostWrites: 0,
      staleReads: 0,
      resurrections: 0,
      stores: ['store-a', 'store-b', 'store-c'],
      copies: 2,
      killedStore: 'store-b',
      repair: { failed: 0, skippedStores: [] },
    })
    t.ok(report.operations > 1000, `${report.operations} operations`)
    t.ok(report.opsPerSecond > 0, `${report.opsPerSecond} ops/s`)
    t.ok(report.acknowledgedWrites > 500, `${report.acknowledgedWrites} acknowledged writes`)
    t.ok(report.failovers >= 1, `${report.failovers} store-down events`)
    t.type(report.detectionMillis, 'number', 'the kill was detected')
    t.ok(report.detectionMillis < 5000, `detected in ${report.detectionMillis} ms`)
    t.type(report.outageMillis, 'number', 'the store came back into service')
    for (const field of ['scanned', 'copied', 'removed']) t.type(report.repair[field], 'number')
    t.ok(report.sessionsVerified >= 5000, `${report.sessionsVerified} sessions read back`)
    t.match(run.stderr, /SIGKILL store-b/, 'the timeline goes to stderr in --json mode')
    t.equal(report.htmlPath, page, 'the page is where --html said')
    const html = await readFile(page, 'utf8')
    t.match(html, /<svg /, 'charts in inline SVG')
    t.notMatch(html, /https?:\/\/|<script|<link/, 'self-contained: nothing fetched')
    t.match(html, /SIGKILL store-b/, 'the kill marked')
    t.match(html, /back in service/, 'the recovery marked')
    t.match(html, /store-b: down at/, "the victim's state band shows it down")
    t.ok(report.samples.length >= 5, `${report.samples.length} samples, about one a second`)
    t.ok(
      report.samples.some((sample: { p99Millis: number | null }) => (sample.p99Millis ?? 0) > 0),
      'p99 per second',
    )
    t.notMatch(run.stdout + run.stderr, /\x1b\[/, 'no progress bar or escape codes in a pipe')

    t.same(await serversIn(report.baseDir), [], 'no server of the demo is left')
    t.notOk(existsSync(report.baseDir), 'its directory is removed')
    const after = await clusterServers()
    const leftover = [...after.keys()].filter(
      (pid) => !before.has(pid) && after.get(pid)!.includes(report.baseDir),
    )
    t.same(leftover, [], 'the server listing has no new process from the demo')
  },
)

serverTest('the human report, in a pipe', async (t) => {
  const run = await runCli(['demo', '--seconds', '4', '--sessions', '1000'])
  t.equal(run.code, 0)
  for (const label of [
    'operations',
    'acknowledged writes',
    'lost writes  *0$',
    'stale reads  *0$',
    'time to detect',
    'failovers',
    'repair',
  ]) {
    t.match(run.stdout, new RegExp(`^  ${label}`, 'm'), label)
  }
  t.match(run.stdout, /^OK: no acknowledged write was lost/m)
  t.notMatch(run.stdout, /\x1b\[/, 'no escape codes')
})

for (const moment of ['while the stores start', 'during the workload']) {
  serverTest(`SIGINT ${moment} stops every server and removes the directory`, async (t) => {
    const child = spawnCli(['demo', '--seconds', '60'])
    const done = finished(child)
    const baseDir = await baseDirOf(child, 'stdout')
    if (moment === 'during the workload') await printed(child, /workload: 60 s/)
    child.kill('SIGINT')
    const run = await done
    t.equal(run.code, 130, 'exit code 130')
    t.match(run.stderr, /SIGINT: stopping the local stores/)
    t.same(await serversIn(baseDir), [], 'no server left')
    t.notOk(existsSync(baseDir), 'directory removed')
  })
}

t.test('usage errors: exit code 2, one line, no value shown; with --json a document', async (t) => {
  for (const args of [
    ['demo', '--seconds', '1'],
    ['demo', '--seconds', 'ten'],
    ['demo', '--seconds', '86401'],
    ['demo', '--sessions', '1000001'],
    ['demo', '--server-binary', '/nonexistent/shown-nowhere/mariadbd'],
  ]) {
    const run = await runCli(args)
    t.equal(run.code, 2, args.join(' '))
    t.match(run.stderr, /^session-shards demo: [^\n]*\n$/, run.stderr.trim())
    t.equal(run.stdout, '')
    t.notMatch(run.stderr, 'shown-nowhere', 'the value is not shown')
    const json = await runCli([...args, '--json'])
    t.equal(json.code, 2)
    t.match(JSON.parse(json.stdout), { ok: false, error: { code: 'USAGE' } }, 'a JSON document')
  }
})
