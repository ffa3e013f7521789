// npm run bench [-- --quick]: the service against its own ceilings, in one sitting, on loopback. Starts its own
// redis-server, the production build of the service (logging at warn) and the ceiling servers as child processes;
// autocannon runs here, in this process, apart from every server. Alternating rounds, medians, ratios against the
// targets in BENCHMARKS.md, and the growth with document size and key count. Writes BENCHMARKS.md.
import { type ChildProcess, spawn } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { cpus, tmpdir } from 'node:os'
import { join } from 'node:path'
import autocannon from 'autocannon'
import { Redis } from 'ioredis'
import {
  freePort,
  type RedisServer,
  startClusterTopology,
  startRedisServer,
  startSentinelTopology,
} from '../scripts/redis-server.js'
import { measureAdversarial, renderAdversarial } from './adversarial.js'
import { type FeedLatency, measureFeedLatency } from './feed-latency.js'

const QUICK = process.argv.includes('--quick')
const ROUNDS = 3
const DURATION = QUICK ? 0.7 : 6 // seconds per measurement
const GROWTH_DURATION = QUICK ? 0.3 : 4
const READY_SAMPLES = QUICK ? 3 : 7
const WARMUP = QUICK ? 0.3 : 2
const CONNECTIONS = 100
const ROOT = new URL('../..', import.meta.url).pathname
const TOKEN = 'bench-admin-token-0123456789'
const AUTH = { authorization: `Bearer ${TOKEN}` }
const PREFIX = 'bench:'
const KEY = 'processing_prefs'
const POST_KEY = 'webhook_config'

/** A valid document of about `bytes` bytes for `key`, built from fields its schema names. */
function documentOf(key: string, bytes: number): Record<string, unknown> {
  // Above 64 KB, longer items: a 512 KB document of 24-byte items would hold more values than CONFIG_MAX_NODES.
  const unit = bytes > 65_536 ? 64 : 24
  const word = (i: number) => (unit === 24 ? `keyword-number-${i}` : `keyword-number-${i}-${'x'.repeat(40)}`)
  const words = Array.from({ length: Math.max(1, Math.round(bytes / unit)) }, (_, i) => word(i))
  if (key === POST_KEY) return { webhook_url: 'https://hooks.example.com/in', webhook_ssl_verify: true, notes: words }
  return { exclude_keywords: words, retry_count: 3, notify_on_failure: true }
}

interface Server {
  name: string
  child: ChildProcess
  base: string
  stop(): Promise<void>
}

async function waitFor(url: string, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms
  for (;;) {
    try {
      if ((await fetch(url)).status < 500) return
    } catch {}
    if (Date.now() > deadline) throw new Error(`${url} did not answer within ${ms} ms`)
    await new Promise((r) => setTimeout(r, 5))
  }
}

async function startProcess(name: string, args: string[], env: Record<string, string>, probe: string): Promise<Server> {
  const port = await freePort()
  const child = spawn(process.execPath, args, {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '', ...env, PORT: String(port) },
    stdio: ['ignore', 'ignore', 'inherit'],
  })
  const base = `http://127.0.0.1:${port}`
  await waitFor(base + probe)
  return {
    name,
    child,
    base,
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null) return resolve()
        // The measurements are over: a server still draining a connection the loader left half-sent is not waited
        // for up to its 10 s shutdown deadline.
        const kill = setTimeout(() => child.kill('SIGKILL'), 2000)
        child.once('exit', () => {
          clearTimeout(kill)
          resolve()
        })
        child.kill('SIGTERM')
      }),
  }
}

const SERVICE = ['dist/src/cli/bin.js', 'serve']

function serviceEnv(redisUrl: string, dir: string, extra: Record<string, string> = {}) {
  return {
    LOG_LEVEL: 'warn',
    REDIS_URL: redisUrl,
    CONFIG_STORE_REDIS_PREFIX: PREFIX,
    CONFIG_FILES_DIR: dir,
    AUTH_TOKENS: JSON.stringify([{ name: 'bench', token: TOKEN, scopes: ['config:admin'] }]),
    ...extra,
  }
}

/** Peak RSS of a process since the last reset (VmHWM), in MB; resetting needs Linux and write access to /proc. */
function peakRssMb(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8')
  return Number(/VmHWM:\s+(\d+) kB/.exec(status)?.[1] ?? 0) / 1024
}
/** CPU time a process has used (user + system), in ms; /proc counts it in clock ticks of 10 ms. */
function cpuMs(pid: number): number {
  const fields = (readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1] ?? '').split(' ')
  return (Number(fields[11]) + Number(fields[12])) * 10
}
function resetPeakRss(pid: number): void {
  try {
    writeFileSync(`/proc/${pid}/clear_refs`, '5')
  } catch {}
}

interface Measure {
  /** The server's CPU time (user + system, from /proc) per request answered, in µs. */
  cpuUs: number
  rps: number
  p50: number
  p99: number
  errors: number
  rssMb: number
}

async function load(
  server: Server,
  path: string,
  opts: { method?: 'GET' | 'POST'; body?: string; duration?: number | undefined } = {},
): Promise<Measure> {
  const pid = server.child.pid as number
  resetPeakRss(pid)
  const cpuBefore = cpuMs(pid)
  const result = await autocannon({
    url: server.base + path,
    connections: CONNECTIONS,
    duration: opts.duration ?? DURATION,
    method: opts.method ?? 'GET',
    headers: { ...AUTH, ...(opts.body ? { 'content-type': 'application/json' } : {}) },
    ...(opts.body ? { body: opts.body } : {}),
  })
  const cpuUs = ((cpuMs(pid) - cpuBefore) * 1000) / Math.max(1, result.requests.total)
  // Let the server finish what the loader left in flight (large bodies take a while) before anything else runs.
  await new Promise((r) => setTimeout(r, (opts.body?.length ?? 0) > 100_000 ? 1500 : QUICK ? 150 : 250))
  return {
    cpuUs,
    rps: result.requests.average,
    p50: result.latency.p50,
    p99: result.latency.p99,
    errors: result.errors + result.timeouts + result.non2xx,
    rssMb: peakRssMb(pid),
  }
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.floor(s.length / 2)] as number
}
function medianOf(ms: Measure[]): Measure {
  return {
    cpuUs: median(ms.map((m) => m.cpuUs)),
    rps: median(ms.map((m) => m.rps)),
    p50: median(ms.map((m) => m.p50)),
    p99: median(ms.map((m) => m.p99)),
    errors: ms.reduce((n, m) => n + m.errors, 0),
    rssMb: Math.max(...ms.map((m) => m.rssMb)),
  }
}

async function startToReady(redisUrl: string, dir: string): Promise<number> {
  const times: number[] = []
  for (let i = 0; i < READY_SAMPLES; i++) {
    const start = performance.now()
    const s = await startProcess('ready', SERVICE, serviceEnv(redisUrl, dir), '/ready')
    times.push(performance.now() - start)
    await s.stop()
  }
  return median(times)
}

const CACHE_MAX_BYTES = 64 * 1024 * 1024

/** A fresh instance (its own prefix and directory) for the hostile bodies and the 200 × 1 MB writes. */
async function adversarialSection(redisUrl: string): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'config-store-bench-adversarial-'))
  const env = serviceEnv(redisUrl, dir, {
    CONFIG_STORE_REDIS_PREFIX: 'bench-adversarial:',
    CONFIG_CACHE_MAX_BYTES: String(CACHE_MAX_BYTES),
  })
  const target = await startProcess('adversarial', SERVICE, env, '/health')
  try {
    const r = await measureAdversarial(
      { base: target.base, pid: target.child.pid as number, headers: AUTH },
      CACHE_MAX_BYTES,
    )
    return renderAdversarial(r)
  } finally {
    await target.stop()
    rmSync(dir, { recursive: true, force: true })
  }
}

interface HaTopology {
  /** Its name in the rows, and the section's heading and first paragraph. */
  name: string
  heading: string
  about: string
  /** What the service needs to reach it (instead of REDIS_URL). */
  env: Record<string, string>
  stop(): Promise<void>
}

/** The same measures on a highly available topology, each right after the single-Redis instance's, in turn: what
 * following it costs; and the POST of an instance with REDIS_WRITE_REPLICAS=1 (a WAIT for a replica per write). */
async function haSection(
  topology: HaTopology,
  single: { cached: Server; uncached: Server },
  seed: (s: Server) => Promise<void>,
  warm: (s: Server) => Promise<void>,
  postBody: string,
): Promise<string> {
  const env = (extra: Record<string, string> = {}) => {
    const dir = mkdtempSync(join(tmpdir(), `config-store-bench-${topology.name.toLowerCase()}-`))
    const { REDIS_URL: _, ...rest } = serviceEnv('', dir, { ...topology.env, ...extra })
    return rest
  }
  const name = topology.name
  const cached = await startProcess(name, SERVICE, env(), '/health')
  const uncached = await startProcess(`${name}-uncached`, SERVICE, env({ CONFIG_CACHE_TTL_MS: '0' }), '/health')
  const durable = await startProcess(`${name}-durable`, SERVICE, env({ REDIS_WRITE_REPLICAS: '1' }), '/health')
  try {
    await seed(cached)
    await warm(cached)
    const path = `/api/config/${KEY}`
    const post = (s: Server) => load(s, `/api/config/${POST_KEY}`, { method: 'POST', body: postBody })
    type Pair = { cached: Server; uncached: Server; durable?: Server }
    const measures: Array<[string, (s: Pair) => Promise<Measure>]> = [
      ['GET cached', (s) => load(s.cached, path)],
      ['GET uncached', (s) => load(s.uncached, path)],
      ['POST', (s) => post(s.cached)],
      ['POST, REDIS_WRITE_REPLICAS=1', (s) => post(s.durable ?? s.cached)],
    ]
    const rows: string[] = []
    for (const [measure, run] of measures) {
      await run({ cached, uncached, durable }) // warm-up, then one each, in turn
      const one = await run(single)
      const ha = await run({ cached, uncached, durable })
      const r = (a: number, b: number) => (b === 0 ? '∞' : (a / b).toFixed(2))
      rows.push(
        `| ${measure} | ${Math.round(one.rps)} | ${one.cpuUs.toFixed(1)} | ${Math.round(ha.rps)} | ${ha.cpuUs.toFixed(1)} | ${ha.errors} | ${r(ha.rps, one.rps)} (${r(one.cpuUs, ha.cpuUs)}) |`,
      )
      process.stderr.write(`${name}: ${measure}\n`)
    }
    return `## Highly available: ${topology.heading}

${topology.about} Each measure on the single-Redis instance, then at once on instances that reach the topology, ${DURATION} s
each, one run. The last row is an instance with \`REDIS_WRITE_REPLICAS=1\` (each write waits for a replica, and is
checked against the failover fence) against the single-Redis POST without it.

| measure | single req/s | single CPU µs/req | ${name} req/s | ${name} CPU µs/req | ${name} errors | ${name} ÷ single: req/s (CPU/req single ÷ ${name}) |
|---|---|---|---|---|---|---|
${rows.join('\n')}
`
  } finally {
    await Promise.all([cached.stop(), uncached.stop(), durable.stop()])
    await topology.stop()
  }
}

async function sentinelTopology(): Promise<HaTopology> {
  const t = await startSentinelTopology()
  return {
    name: 'Sentinel',
    heading: 'Redis Sentinel',
    about:
      "1 master, 2 replicas and 3 Sentinels on the same loopback (the replicas' share of the work on the same cores), reached through `REDIS_SENTINELS`.",
    env: { REDIS_SENTINELS: t.sentinels, REDIS_SENTINEL_NAME: t.name },
    stop: () => t.stop(),
  }
}

async function clusterTopology(): Promise<HaTopology> {
  const t = await startClusterTopology()
  return {
    name: 'Cluster',
    heading: 'Redis Cluster',
    about:
      '3 masters with 1 replica each on the same loopback (6 redis-servers on the same cores), reached through `REDIS_CLUSTER_NODES`; every node is tracked for cache invalidation.',
    env: { REDIS_CLUSTER_NODES: t.addresses },
    stop: () => t.stop(),
  }
}

async function main(): Promise<void> {
  if (process.argv.includes('--adversarial')) {
    const redis = await startRedisServer({ persist: false })
    try {
      process.stdout.write(await adversarialSection(redis.url))
    } finally {
      await redis.stop()
    }
    return
  }
  const started = Date.now()
  const dir = mkdtempSync(join(tmpdir(), 'config-store-bench-'))
  const servers: Server[] = []
  const redisServers: RedisServer[] = []
  try {
    const redisMain = await startRedisServer({ persist: false })
    const redisDown = await startRedisServer({ persist: false })
    const redisLkg = await startRedisServer({ persist: false })
    redisServers.push(redisMain, redisDown, redisLkg)
    const client = new Redis(redisMain.url)

    const doc2k = documentOf(KEY, 2048)
    const service = await startProcess('service', SERVICE, serviceEnv(redisMain.url, dir), '/health')
    const uncached = await startProcess(
      'uncached',
      SERVICE,
      serviceEnv(redisMain.url, dir, { CONFIG_CACHE_TTL_MS: '0' }),
      '/health',
    )
    // The same service with METRICS_ENABLED=false, on the same Redis and prefix: what the per-request metrics cost.
    const noMetrics = await startProcess(
      'metrics-off',
      SERVICE,
      serviceEnv(redisMain.url, dir, { METRICS_ENABLED: 'false' }),
      '/health',
    )
    // …and with CONFIG_HISTORY_MAX=0: what revisions and the change feed cost a write, and a read. A prefix of its
    // own: its writes, made without revisions, would be external changes to the instances that keep history.
    // Two idle companions on that prefix, as the metrics-off and uncached instances are on the service's: the same
    // deployment, without history.
    const noHistoryEnv = () =>
      serviceEnv(redisMain.url, mkdtempSync(join(tmpdir(), 'config-store-bench-nohistory-')), {
        CONFIG_HISTORY_MAX: '0',
        CONFIG_STORE_REDIS_PREFIX: 'bench-nohistory:',
      })
    const noHistory = await startProcess('history-off', SERVICE, noHistoryEnv(), '/health')
    for (const name of ['history-off-2', 'history-off-3'])
      servers.push(await startProcess(name, SERVICE, noHistoryEnv(), '/health'))
    const downDir = mkdtempSync(join(tmpdir(), 'config-store-bench-down-'))
    const down = await startProcess('redis-down', SERVICE, serviceEnv(redisDown.url, downDir), '/health')
    const lkgDir = mkdtempSync(join(tmpdir(), 'config-store-bench-lkg-'))
    const lkg = await startProcess('redis-down-lkg', SERVICE, serviceEnv(redisLkg.url, lkgDir), '/health')
    servers.push(service, noMetrics, noHistory, uncached, down, lkg)

    const post = (s: Server, key: string, doc: object) =>
      fetch(`${s.base}/api/config/${key}`, {
        method: 'POST',
        headers: { ...AUTH, 'content-type': 'application/json' },
        body: JSON.stringify(doc),
      }).then(async (r) => {
        if (r.status !== 200) throw new Error(`seeding ${key} failed: ${r.status} ${await r.text()}`)
      })
    await post(service, KEY, doc2k)
    await post(noHistory, KEY, doc2k)
    // The Redis-down instance: the same document in its files layer, then its Redis stopped.
    writeFileSync(join(downDir, `${KEY}.json`), JSON.stringify({ ...doc2k, _updated_at: new Date().toISOString() }))
    await redisDown.stop()
    // The last-known-good instance: the document written through it and read once (its snapshot holds the Redis
    // copy), an older copy in its files layer, then its Redis stopped: reads are answered stale, from the snapshot.
    await post(lkg, KEY, doc2k)
    await fetch(`${lkg.base}/api/config/${KEY}`, { headers: AUTH })
    writeFileSync(join(lkgDir, `${KEY}.json`), JSON.stringify({ ...doc2k, _updated_at: '2000-01-01T00:00:00.000Z' }))
    await redisLkg.stop()
    const staleProbe = await fetch(`${lkg.base}/api/config/${KEY}`, { headers: AUTH })
    if (staleProbe.headers.get('x-config-stale') !== '1')
      throw new Error('the last-known-good instance did not answer stale')

    const cachedBody = await (await fetch(`${service.base}/api/config/${KEY}`, { headers: AUTH })).text()
    const bodyFile = join(dir, 'body.json')
    writeFileSync(bodyFile, cachedBody)
    const ceilingHttp = await startProcess(
      'ceiling-http',
      ['dist/bench/ceiling.js', 'http'],
      { BODY_FILE: bodyFile },
      '/x',
    )
    const ceilingRedis = await startProcess(
      'ceiling-redis',
      ['dist/bench/ceiling.js', 'redis'],
      { REDIS_URL: redisMain.url, REDIS_KEY: PREFIX + KEY },
      '/x',
    )
    servers.push(ceilingHttp, ceilingRedis)
    const postBody = JSON.stringify(documentOf(POST_KEY, 2048))

    const scenarios: Array<[string, (duration?: number) => Promise<Measure>]> = [
      ['ceiling-http', (duration) => load(ceilingHttp, '/x', { duration })],
      ['GET cached', (duration) => load(service, `/api/config/${KEY}`, { duration })],
      ['GET cached, metrics off', (duration) => load(noMetrics, `/api/config/${KEY}`, { duration })],
      ['ceiling-redis', (duration) => load(ceilingRedis, '/x', { duration })],
      ['GET uncached', (duration) => load(uncached, `/api/config/${KEY}`, { duration })],
      ['GET cached, history off', (duration) => load(noHistory, `/api/config/${KEY}`, { duration })],
      ['POST', (duration) => load(service, `/api/config/${POST_KEY}`, { method: 'POST', body: postBody, duration })],
      [
        'POST, history off',
        (duration) => load(noHistory, `/api/config/${POST_KEY}`, { method: 'POST', body: postBody, duration }),
      ],
      ['GET redis down', (duration) => load(down, `/api/config/${KEY}`, { duration })],
      ['GET redis down, last-known-good', (duration) => load(lkg, `/api/config/${KEY}`, { duration })],
      ['GET legacy', (duration) => load(service, `/config_api.php?key=${KEY}`, { duration })],
    ]
    // Warm every server up once (JIT, connection pools), then alternate.
    for (const [, run] of scenarios) await run(WARMUP)
    const samples = new Map<string, Measure[]>(scenarios.map(([n]) => [n, []]))
    for (let round = 0; round < ROUNDS; round++) {
      for (const [name, run] of scenarios) {
        samples.get(name)?.push(await run())
        process.stderr.write(`round ${round + 1}/${ROUNDS}: ${name}\n`)
      }
    }
    const m = Object.fromEntries([...samples].map(([n, ms]) => [n, medianOf(ms)])) as Record<string, Measure>

    // The feed: a write acknowledged by `service`, its event at the metrics-off instance (same Redis and prefix).
    // Before the growth section, whose 10,000 keys written behind the service make every instance observe each one.
    const feed = await measureFeedLatency({
      writer: service.base,
      reader: noMetrics.base,
      headers: AUTH,
      loadPath: `/api/config/${POST_KEY}`,
      loadBody: postBody,
      probes: QUICK ? 100 : 1000,
    })
    // Growth: document size and key count.
    const growth: Array<[string, Measure]> = []
    for (const size of [1024, 64 * 1024, 512 * 1024]) {
      await post(service, KEY, documentOf(KEY, size))
      await fetch(`${service.base}/api/config/${KEY}`, { headers: AUTH })
      growth.push([
        `GET cached, ${size / 1024} KB`,
        await load(service, `/api/config/${KEY}`, { duration: GROWTH_DURATION }),
      ])
      const body = JSON.stringify(documentOf(POST_KEY, size))
      growth.push([
        `POST, ${size / 1024} KB`,
        await load(service, `/api/config/${POST_KEY}`, { method: 'POST', body, duration: GROWTH_DURATION }),
      ])
    }
    await post(service, KEY, doc2k)
    for (const count of [10, 10_000]) {
      const pipeline = client.pipeline()
      for (let i = 0; i < count; i++)
        pipeline.set(`${PREFIX}bulk_${i}`, JSON.stringify({ i, _updated_at: new Date().toISOString() }))
      await pipeline.exec()
      growth.push([
        `GET cached, ${count} keys`,
        await load(service, `/api/config/${KEY}`, { duration: GROWTH_DURATION }),
      ])
      growth.push([
        `POST, ${count} keys`,
        await load(service, `/api/config/${POST_KEY}`, { method: 'POST', body: postBody, duration: GROWTH_DURATION }),
      ])
      const names = await client.keys(`${PREFIX}bulk_*`)
      for (let i = 0; i < names.length; i += 1000) await client.del(...names.slice(i, i + 1000))
    }
    client.disconnect()

    const ha: string[] = []
    for (const topology of [sentinelTopology, clusterTopology])
      ha.push(
        await haSection(
          await topology(),
          { cached: service, uncached },
          (s) => post(s, KEY, doc2k),
          (s) => fetch(`${s.base}/api/config/${KEY}`, { headers: AUTH }).then(() => undefined),
          postBody,
        ),
      )
    const adversarial = await adversarialSection(redisMain.url)
    const ready = await startToReady(redisMain.url, dir)
    const report = `${render(m, growth, feed, ready, (Date.now() - started) / 1000)}\n${ha.join('\n')}\n${adversarial}`
    process.stdout.write(report)
    writeFileSync(join(ROOT, 'BENCHMARKS.md'), report)
  } finally {
    await Promise.all(servers.map((s) => s.stop()))
    await Promise.all(redisServers.map((r) => r.stop()))
    rmSync(dir, { recursive: true, force: true })
  }
}

function render(
  m: Record<string, Measure>,
  growth: Array<[string, Measure]>,
  feed: FeedLatency,
  readyMs: number,
  seconds: number,
): string {
  const g = (n: string) => m[n] as Measure
  const row = (name: string, x: Measure) =>
    `| ${name} | ${Math.round(x.rps)} | ${x.cpuUs.toFixed(1)} | ${x.p50} | ${x.p99} | ${x.errors} | ${x.rssMb.toFixed(0)} |`
  const ratio = (a: number, b: number) => (b === 0 ? Number.POSITIVE_INFINITY : a / b)
  const rssPeak = Math.max(
    ...['GET cached', 'GET uncached', 'POST', 'GET redis down', 'GET redis down, last-known-good', 'GET legacy'].map(
      (n) => g(n).rssMb,
    ),
  )
  const targets: Array<[string, string, boolean]> = [
    [
      'cached GET req/s ÷ ceiling-http req/s',
      `${ratio(g('GET cached').rps, g('ceiling-http').rps).toFixed(2)} (≥ 0.85)`,
      ratio(g('GET cached').rps, g('ceiling-http').rps) >= 0.85,
    ],
    [
      'cached GET with metrics on ÷ off (METRICS_ENABLED=false): CPU/req off ÷ on (req/s on ÷ off)',
      `${ratio(g('GET cached, metrics off').cpuUs, g('GET cached').cpuUs).toFixed(2)} (${ratio(g('GET cached').rps, g('GET cached, metrics off').rps).toFixed(2)}) (≥ 0.95)`,
      ratio(g('GET cached, metrics off').cpuUs, g('GET cached').cpuUs) >= 0.95,
    ],
    [
      'uncached GET req/s ÷ ceiling-redis req/s',
      `${ratio(g('GET uncached').rps, g('ceiling-redis').rps).toFixed(2)} (≥ 0.85)`,
      ratio(g('GET uncached').rps, g('ceiling-redis').rps) >= 0.85,
    ],
    [
      'cached GET p99 ÷ ceiling-http p99',
      `${ratio(g('GET cached').p99, g('ceiling-http').p99).toFixed(2)} (≤ 1.3)`,
      ratio(g('GET cached').p99, g('ceiling-http').p99) <= 1.3,
    ],
    [
      'GET with Redis down: errors, p99 ÷ cached GET p99',
      `${g('GET redis down').errors} errors, ${ratio(g('GET redis down').p99, g('GET cached').p99).toFixed(2)} (0, ≤ 2)`,
      g('GET redis down').errors === 0 && ratio(g('GET redis down').p99, g('GET cached').p99) <= 2,
    ],
    [
      'GET with Redis down from last-known-good: errors, p99 ÷ cached GET p99',
      `${g('GET redis down, last-known-good').errors} errors, ${ratio(g('GET redis down, last-known-good').p99, g('GET cached').p99).toFixed(2)} (0, ≤ 2)`,
      g('GET redis down, last-known-good').errors === 0 &&
        ratio(g('GET redis down, last-known-good').p99, g('GET cached').p99) <= 2,
    ],
    [
      'POST req/s ÷ ceiling-redis req/s',
      `${ratio(g('POST').rps, g('ceiling-redis').rps).toFixed(2)} (≥ 0.5)`,
      ratio(g('POST').rps, g('ceiling-redis').rps) >= 0.5,
    ],
    [
      'POST with history ÷ history off (CONFIG_HISTORY_MAX=0): req/s (CPU/req off ÷ on)',
      `${ratio(g('POST').rps, g('POST, history off').rps).toFixed(2)} (${ratio(g('POST, history off').cpuUs, g('POST').cpuUs).toFixed(2)}) (≥ 0.8)`,
      ratio(g('POST').rps, g('POST, history off').rps) >= 0.8,
    ],
    [
      'cached GET with history ÷ history off: CPU/req off ÷ on (req/s on ÷ off)',
      `${ratio(g('GET cached, history off').cpuUs, g('GET cached').cpuUs).toFixed(2)} (${ratio(g('GET cached').rps, g('GET cached, history off').rps).toFixed(2)}) (≥ 0.95: not slower)`,
      ratio(g('GET cached, history off').cpuUs, g('GET cached').cpuUs) >= 0.95,
    ],
    [
      'write acknowledged → its SSE event at another instance, under write load: p99',
      `${feed.p99.toFixed(1)} ms (≤ 50); p50 ${feed.p50.toFixed(1)}, max ${feed.max.toFixed(1)}, ${feed.received}/${feed.probes} events, ${Math.round(feed.loadRps)} writes/s meanwhile`,
      feed.p99 <= 50 && feed.received === feed.probes,
    ],
    ['peak RSS of the service under load', `${rssPeak.toFixed(0)} MB (≤ 150)`, rssPeak <= 150],
    ['start to ready (`/ready` 200)', `${readyMs.toFixed(0)} ms (≤ 500)`, readyMs <= 500],
  ]
  return `# Benchmarks

Written by \`npm run bench${QUICK ? ' -- --quick' : ''}\` on ${new Date().toISOString().slice(0, 10)}: ${cpus().length} cores
(${cpus()[0]?.model.trim()}), Node ${process.version}, ${CONNECTIONS} connections, ${ROUNDS} alternating rounds of
${DURATION} s per measurement (medians), 2 KB documents, autocannon in its own process on loopback, the service from the
production build at \`LOG_LEVEL=warn\`. Latencies in ms; RSS is the server's peak during the measurement; CPU µs/req is the
server's own CPU time (from /proc) over the measurement divided by the requests it answered, which does not depend on
the loader's share of the cores. The whole run took
${seconds.toFixed(0)} s. Loader and servers share the machine's cores, so compare the ratios, not the absolute figures.

| measure | req/s | CPU µs/req | p50 | p99 | errors | peak RSS MB |
|---|---|---|---|---|---|---|
${Object.keys(m)
  .map((n) => row(n, g(n)))
  .join('\n')}

## Targets

| measure | value (target) | met |
|---|---|---|
${targets.map(([name, value, ok]) => `| ${name} | ${value} | ${ok ? 'yes' : '**no**'} |`).join('\n')}

## Growth (one run each, ${GROWTH_DURATION} s)

| measure | req/s | CPU µs/req | p50 | p99 | errors | peak RSS MB |
|---|---|---|---|---|---|---|
${growth.map(([n, x]) => row(n, x)).join('\n')}
`
}

await main()
