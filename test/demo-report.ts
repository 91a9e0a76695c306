import t from 'tap'
import type { DemoPageInput, DemoSample } from '../lib/cli/workload/demo-html.js'
import {
  demoReportHtml,
  demoTimelineSvg,
  markers,
  perSecond,
} from '../lib/cli/workload/demo-html.js'

// The demo's HTML page, from a made-up run: self-contained, escaped, the kill marked.
function sample(second: number, operations: number, failed: number, down: boolean): DemoSample {
  return {
    atMillis: 1000 + second * 1000,
    operations,
    failedRequests: failed,
    p99Millis: down ? 250 : 4,
    stores: [
      { id: 'store-a', state: 'up' },
      { id: 'store-b', state: down ? 'down' : 'up' },
    ],
  }
}

const input: DemoPageInput = {
  title: 'session-shards demo <report>',
  summary: [
    ['lost writes', '0'],
    ['note', '<script>alert(1)</script>'],
  ],
  verdict: { ok: true, text: 'OK: nothing lost' },
  samples: [
    sample(1, 1000, 0, false),
    sample(2, 2000, 0, false),
    sample(3, 2500, 30, true),
    sample(4, 3500, 30, false),
  ],
  timeline: [
    { atMillis: 2500, text: 'SIGKILL store-b' },
    { atMillis: 3500, text: 'restarting store-b' },
    { atMillis: 4200, text: 'store-b back in service on every app server, 1700 ms after the kill' },
  ],
}

t.test('rates per second from running totals', async (t) => {
  t.same(
    perSecond(input.samples, 'operations').map((point) => point.value),
    [1000, 1000, 500, 1000],
  )
  t.same(
    perSecond(input.samples, 'failedRequests').map((point) => point.value),
    [0, 0, 30, 0],
  )
})

t.test('the kill, the restart and the return are marked', async (t) => {
  t.same(
    markers(input.timeline).map((marker) => [marker.atMillis, marker.label]),
    [
      [2500, 'SIGKILL store-b'],
      [3500, 'restarting store-b'],
      [4200, 'back in service'],
    ],
  )
})

t.test('the page is self-contained and escapes what it shows', async (t) => {
  const html = demoReportHtml(input)
  t.match(html, /^<!doctype html>/)
  t.match(html, /<svg /)
  t.notMatch(html, /https?:\/\//, 'no address: nothing is fetched, no namespace needed inline')
  t.notMatch(html, /<script|<link|src=/, 'no script, stylesheet or image to load')
  t.match(html, /&#60;script&#62;alert\(1\)&#60;\/script&#62;/, 'summary values escaped')
  t.match(html, /session-shards demo &#60;report&#62;/)
  t.match(html, /SIGKILL store-b/)
  t.match(html, /store-b: down at 3 s/, 'the store state band shows the outage')
  t.match(
    demoTimelineSvg(input, true),
    /^<svg xmlns="http:\/\/www.w3.org\/2000\/svg"/,
    'a file needs the namespace',
  )
})
