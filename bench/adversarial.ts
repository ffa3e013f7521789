// The adversarial part of `npm run bench`: for each hostile body up to CONFIG_MAX_BYTES, the longest event-loop
// stall it causes, measured by a probe of tiny requests (GET /health, one at a time, on their own keep-alive
// connection) while the body is sent; and the RSS after 200 writes (and reads) of 1 MB documents. Targets: every
// stall ≤ 50 ms; RSS ≤ CONFIG_CACHE_MAX_BYTES + 150 MB.
import { readFileSync } from 'node:fs'
import { request } from 'node:http'

export interface AdversarialTarget {
  base: string
  pid: number
  headers: Record<string, string>
}

export const STALL_TARGET_MS = 50
export const RSS_HEADROOM_MB = 150

const MAX_BYTES = 1_048_576

/** Hostile bodies, each at most CONFIG_MAX_BYTES, with the key they are sent to. */
export function hostileBodies(): Array<{ name: string; key: string; body: string }> {
  const fill = (unit: string, around = 64) => unit.repeat(Math.floor((MAX_BYTES - around) / unit.length))
  return [
    {
      name: 'ReDoS sender (a@….…@)',
      key: 'polling_config',
      body: `{"sender_of_interest_for_polling":["a@${fill('.')}@"]}`,
    },
    { name: 'ReDoS time (0:0:0…)', key: 'webhook_config', body: `{"webhook_time_start":"${fill('0:')}"}` },
    { name: 'ReDoS regex rule', key: 'routing_rules', body: ruleWith(`(${'a+'.repeat(20)})+$`) },
    { name: 'deep nesting (1 MB of [)', key: 'bench_hostile', body: fill('[', 0) },
    { name: '100k-element array', key: 'bench_hostile', body: `{"a":[${'0,'.repeat(99_999)}0]}` },
    { name: 'many keys (80k)', key: 'bench_hostile', body: wide(80_000) },
    { name: 'keys at the node limit (15,999)', key: 'bench_hostile', body: wide(15_999) },
    { name: '1 MB string', key: 'bench_hostile', body: `{"v":"${fill('x')}"}` },
    { name: 'invalid UTF-8 and escapes', key: 'bench_hostile', body: `{"v":"${fill('\\u0000')}"}` },
  ]
}

function wide(n: number): string {
  return `{${Array.from({ length: n }, (_, i) => `"k${i}":${i % 10}`).join(',')}}`
}

function ruleWith(regex: string): string {
  const condition = { field: 'subject', operator: 'regex', value: regex, case_sensitive: false }
  const actions = { webhook_url: 'https://hooks.example.org/x', priority: 'normal', stop_processing: false }
  return JSON.stringify({ rules: [{ id: 'r', name: 'n', conditions: [condition], actions }] })
}

function send(base: string, method: string, path: string, headers: Record<string, string>, body?: string) {
  return new Promise<number>((resolve, reject) => {
    const req = request(`${base}${path}`, { method, headers }, (res) => {
      res.resume()
      res.on('end', () => resolve(res.statusCode ?? 0))
    })
    req.on('error', reject)
    req.end(body)
  })
}

/** The longest gap the probe saw while `during` ran, in ms. */
async function longestStall(base: string, during: () => Promise<unknown>): Promise<number> {
  let running = true
  let longest = 0
  const probe = (async () => {
    while (running) {
      const start = performance.now()
      await send(base, 'GET', '/health', {})
      longest = Math.max(longest, performance.now() - start)
    }
  })()
  await new Promise((r) => setTimeout(r, 50))
  await during()
  await new Promise((r) => setTimeout(r, 50))
  running = false
  await probe
  return longest
}

const rssMb = (pid: number) =>
  Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) / 1024

export async function measureAdversarial(target: AdversarialTarget, cacheMaxBytes: number) {
  const json = { ...target.headers, 'content-type': 'application/json' }
  const baseline = await longestStall(target.base, () => new Promise((r) => setTimeout(r, 500)))
  const stalls: Array<{ name: string; status: number; stallMs: number }> = []
  for (const { name, key, body } of hostileBodies()) {
    let status = 0
    const stallMs = await longestStall(target.base, async () => {
      for (let i = 0; i < 3; i++) status = await send(target.base, 'POST', `/api/config/${key}`, json, body)
    })
    stalls.push({ name, status, stallMs })
  }
  const doc = `{"v":"${'x'.repeat(1_000_000)}"}`
  for (let i = 0; i < 200; i++) {
    await send(target.base, 'POST', `/api/config/bench_big_${i}`, json, doc)
    await send(target.base, 'GET', `/api/config/bench_big_${i}`, target.headers)
  }
  const rss = rssMb(target.pid)
  return { baselineMs: baseline, stalls, rssMb: rss, rssTargetMb: cacheMaxBytes / 1024 / 1024 + RSS_HEADROOM_MB }
}

export function renderAdversarial(r: Awaited<ReturnType<typeof measureAdversarial>>): string {
  const rows = r.stalls.map(
    (s) => `| ${s.name} | ${s.status} | ${s.stallMs.toFixed(1)} | ${s.stallMs <= STALL_TARGET_MS ? 'yes' : '**no**'} |`,
  )
  return [
    '## Adversarial input',
    '',
    `Each hostile body (at most CONFIG_MAX_BYTES) is POSTed three times while a probe sends tiny requests one at a`,
    `time; the figure is the probe's longest wait, i.e. the longest event-loop stall. Probe alone: ${r.baselineMs.toFixed(1)} ms.`,
    '',
    `| body | status | longest stall (ms) | ≤ ${STALL_TARGET_MS} ms |`,
    '|---|---|---|---|',
    ...rows,
    '',
    `RSS after 200 writes and reads of 1 MB documents: **${r.rssMb.toFixed(0)} MB** (target ≤ ${r.rssTargetMb.toFixed(0)} MB,` +
      ` CONFIG_CACHE_MAX_BYTES + ${RSS_HEADROOM_MB} MB): ${r.rssMb <= r.rssTargetMb ? 'met' : '**not met**'}.`,
    '',
  ].join('\n')
}
