// npm run bench [-- --quick]: the service against its own ceilings, in one sitting, on loopback (README
// "Benchmarks"). Starts its own redis-server, the production build of the service (logging at warn), the ceiling
// servers and the peers it finds (the legacy PHP API, etcd) as child processes, and drives them with the loader of
// bench/loader.ts. CPU per request first; alternating rounds, medians, ratios against the targets; a CPU profile per
// path; the growth with document size and key count. Writes BENCHMARKS.md.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process'
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { cpus, tmpdir } from 'node:os'
import { join } from 'node:path'
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
import { drive, loaderName, loaderVersion, serverCommand } from './loader.js'
import { type ProfileSummary, summarize } from './profile.js'

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
  // A literal public address: a host name would make every POST a DNS resolution (CONFIG_WEBHOOK_URL_CHECK).
  if (key === POST_KEY) return { webhook_url: 'https://93.184.215.14/in', webhook_ssl_verify: true, notes: words }
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

async function startProcess(
  name: string,
  args: string[],
  env: Record<string, string>,
  probe: string,
  { cmd = process.execPath, port, quiet = false }: { cmd?: string; port?: number; quiet?: boolean } = {},
): Promise<Server> {
  port ??= await freePort()
  const [command, argv] = serverCommand(cmd, args)
  const child = spawn(command, argv, {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '', ...env, PORT: String(port) },
    stdio: ['ignore', 'ignore', quiet ? 'ignore' : 'inherit'],
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

/** Where the legacy PHP API comes from: a git directory of ki2pixel/render_signal_server (fetched, never committed). */
const LEGACY_REPO = process.env.BENCH_LEGACY_REPO ?? join(ROOT, '../.mirror/ki2pixel+render_signal_server/repo')
const LEGACY_COMMIT = '4a88730'
const skipped: string[] = []

/** The real legacy `config_api.php` under PHP's built-in server (one worker per core, opcache on), holding the
 * same 2 KB document; undefined, and said in BENCHMARKS.md, when PHP or the legacy source is not here. */
async function startLegacyPhp(): Promise<Server | undefined> {
  const php = spawnSync('php', ['--version'], { encoding: 'utf8' })
  const source = spawnSync(
    'git',
    ['--git-dir', LEGACY_REPO, 'show', `${LEGACY_COMMIT}:deployment/public_html/config_api.php`],
    { encoding: 'utf8' },
  )
  if (php.error !== undefined || source.status !== 0) {
    skipped.push(
      `the legacy PHP API (${php.error === undefined ? `no ki2pixel/render_signal_server at ${LEGACY_REPO}: set BENCH_LEGACY_REPO to its git directory` : 'php not found: `apt-get install -y php-cli`'})`,
    )
    return undefined
  }
  const root = tempDir('config-store-bench-php-')
  mkdirSync(join(root, 'public_html'))
  mkdirSync(join(root, 'config'))
  writeFileSync(join(root, 'public_html/config_api.php'), source.stdout)
  writeFileSync(
    join(root, 'config/config_api.php'),
    `<?php\ndefine('CONFIG_API_TOKEN', '${TOKEN}');\ndefine('CONFIG_API_STORAGE_DIR', '${join(root, 'storage')}');\n`,
  )
  const port = await freePort()
  const server = await startProcess(
    'legacy-php',
    ['-d', 'opcache.enable_cli=1', '-S', `127.0.0.1:${port}`, '-t', join(root, 'public_html')],
    { PHP_CLI_SERVER_WORKERS: String(cpus().length) },
    '/config_api.php?key=probe',
    { cmd: 'php', port, quiet: true }, // it logs every request
  )
  const seeded = await fetch(`${server.base}/config_api.php`, {
    method: 'POST',
    headers: { ...AUTH, 'content-type': 'application/json' },
    body: JSON.stringify({ key: KEY, config: documentOf(KEY, 2048) }),
  })
  if (seeded.status !== 200) throw new Error(`seeding the legacy PHP API failed: ${seeded.status}`)
  return server
}

/** etcd (from Debian's etcd-server), one member, its data on disk: a store that fsyncs every write. */
async function startEtcd(): Promise<Server | undefined> {
  if (spawnSync('etcd', ['--version']).error !== undefined) {
    skipped.push('etcd (not found: `apt-get install -y etcd-server`)')
    return undefined
  }
  const data = tempDir('config-store-bench-etcd-')
  const [port, peer] = [await freePort(), await freePort()]
  const client = `http://127.0.0.1:${port}`
  const peerUrl = `http://127.0.0.1:${peer}`
  return startProcess(
    'etcd',
    [
      ...['--name', 'bench', '--data-dir', data, '--logger', 'zap', '--log-level', 'error'],
      ...['--listen-client-urls', client, '--advertise-client-urls', client],
      ...['--listen-peer-urls', peerUrl, '--initial-advertise-peer-urls', peerUrl],
      ...['--initial-cluster', `bench=${peerUrl}`],
    ],
    {},
    '/health',
    { cmd: 'etcd', port },
  )
}
/** etcd's v3 JSON gateway: a put of the document under one key. */
const etcdPut = (body: string) =>
  JSON.stringify({ key: Buffer.from(POST_KEY).toString('base64'), value: Buffer.from(body).toString('base64') })

const SERVICE = ['dist/src/cli/bin.js', 'serve']

/** Temp directories of the run, removed when it ends. */
const temps: string[] = []
function tempDir(prefix: string): string {
  const d = mkdtempSync(join(tmpdir(), prefix))
  temps.push(d)
  return d
}

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

/** A process and its descendants (PHP's workers), from /proc. */
function tree(pid: number): number[] {
  try {
    const children = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean)
    return [pid, ...children.flatMap((c) => tree(Number(c)))]
  } catch {
    return [pid]
  }
}
const procStatus = (pid: number) => {
  try {
    return readFileSync(`/proc/${pid}/status`, 'utf8')
  } catch {
    return ''
  }
}
/** Peak RSS of a process since the last reset (VmHWM), in MB; resetting needs Linux and write access to /proc. */
function peakRssMb(pid: number): number {
  return Number(/VmHWM:\s+(\d+) kB/.exec(procStatus(pid))?.[1] ?? 0) / 1024
}
/** CPU time a process tree has used (user + system), in ms; /proc counts it in clock ticks of 10 ms. */
function cpuMs(pid: number): number {
  let ms = 0
  for (const p of tree(pid)) {
    try {
      const fields = (readFileSync(`/proc/${p}/stat`, 'utf8').split(') ')[1] ?? '').split(' ')
      ms += (Number(fields[11]) + Number(fields[12])) * 10
    } catch {}
  }
  return ms
}
/** write(2)-family system calls a process tree has made (syscw in /proc/PID/io): socket writes, on a server. */
function writeCalls(pid: number): number {
  let n = 0
  for (const p of tree(pid)) {
    try {
      n += Number(/syscw:\s+(\d+)/.exec(readFileSync(`/proc/${p}/io`, 'utf8'))?.[1] ?? 0)
    } catch {}
  }
  return n
}
function resetPeakRss(pid: number): void {
  try {
    writeFileSync(`/proc/${pid}/clear_refs`, '5')
  } catch {}
}

interface Measure {
  /** The server's CPU time (user + system, from /proc) per request answered, in µs. */
  cpuUs: number
  /** The server's write system calls per request answered. */
  writes: number
  rps: number
  p50: number
  p99: number
  errors: number
  rssMb: number
}

/** The machine's CPU time so far, busy and in all, in clock ticks (the first line of /proc/stat). */
function machineTicks(): { busy: number; total: number } {
  const [, ...fields] = (readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '').trim().split(/\s+/)
  const n = fields.slice(0, 8).map(Number) // user … steal; guest time is counted in user already
  const total = n.reduce((a, b) => a + b, 0)
  return { busy: total - (n[3] ?? 0) - (n[4] ?? 0), total } // idle and iowait are not busy
}
/** Waits (at most 10 s) until the machine has been quiet for 300 ms — under a tenth of its cores busy — so that a
 * measurement does not start while a server of the one before (etcd compacting, a large write draining) still works. */
async function quiet(): Promise<void> {
  const deadline = Date.now() + 10_000
  for (;;) {
    const a = machineTicks()
    await new Promise((r) => setTimeout(r, 300))
    const b = machineTicks()
    if ((b.busy - a.busy) / Math.max(1, b.total - a.total) < 0.1 || Date.now() > deadline) return
  }
}

async function load(
  server: Server,
  path: string,
  opts: {
    method?: 'GET' | 'POST'
    body?: string
    duration?: number | undefined
    /** The Authorization header, or none for etcd (which refuses a token it did not issue). */
    auth?: Record<string, string>
    closes?: boolean
  } = {},
): Promise<Measure> {
  const pid = server.child.pid as number
  await quiet()
  resetPeakRss(pid)
  const cpuBefore = cpuMs(pid)
  const writesBefore = writeCalls(pid)
  const result = await drive({
    url: server.base + path,
    connections: CONNECTIONS,
    duration: opts.duration ?? DURATION,
    method: opts.method ?? 'GET',
    headers: { ...(opts.auth ?? AUTH), ...(opts.body ? { 'content-type': 'application/json' } : {}) },
    body: opts.body,
    closes: opts.closes,
  })
  const per = (n: number) => n / Math.max(1, result.requests)
  const cpuUs = per((cpuMs(pid) - cpuBefore) * 1000)
  const writes = per(writeCalls(pid) - writesBefore)
  // Let the server finish what the loader left in flight (large bodies take a while) before anything else runs.
  await new Promise((r) => setTimeout(r, (opts.body?.length ?? 0) > 100_000 ? 1500 : QUICK ? 150 : 250))
  return {
    cpuUs,
    writes,
    rps: result.rps,
    p50: result.p50,
    p99: result.p99,
    errors: result.errors,
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
    writes: median(ms.map((m) => m.writes)),
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
  const dir = tempDir('config-store-bench-adversarial-')
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
    const dir = tempDir(`config-store-bench-${topology.name.toLowerCase()}-`)
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
  const dir = tempDir('config-store-bench-')
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
    // The same service with METRICS_ENABLED=false, on the same Redis and prefix, and its twin with metrics on: what
    // the per-request metrics cost, between two instances that only ever read (the service takes the write loads).
    const noMetrics = await startProcess(
      'metrics-off',
      SERVICE,
      serviceEnv(redisMain.url, dir, { METRICS_ENABLED: 'false' }),
      '/health',
    )
    const reader = await startProcess('reader', SERVICE, serviceEnv(redisMain.url, dir), '/health')
    // …and with CONFIG_HISTORY_MAX=0: what revisions and the change feed cost a write, and a read. A prefix of its
    // own: its writes, made without revisions, would be external changes to the instances that keep history.
    // Two idle companions on that prefix, as the metrics-off and uncached instances are on the service's: the same
    // deployment, without history.
    const noHistoryEnv = () =>
      serviceEnv(redisMain.url, tempDir('config-store-bench-nohistory-'), {
        CONFIG_HISTORY_MAX: '0',
        CONFIG_STORE_REDIS_PREFIX: 'bench-nohistory:',
      })
    const noHistory = await startProcess('history-off', SERVICE, noHistoryEnv(), '/health')
    for (const name of ['history-off-2', 'history-off-3'])
      servers.push(await startProcess(name, SERVICE, noHistoryEnv(), '/health'))
    const downDir = tempDir('config-store-bench-down-')
    const down = await startProcess('redis-down', SERVICE, serviceEnv(redisDown.url, downDir), '/health')
    const lkgDir = tempDir('config-store-bench-lkg-')
    const lkg = await startProcess('redis-down-lkg', SERVICE, serviceEnv(redisLkg.url, lkgDir), '/health')
    servers.push(service, reader, noMetrics, noHistory, uncached, down, lkg)

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

    // The files layer alone (no Redis configured): the same document, written through it.
    const filesDir = tempDir('config-store-bench-files-')
    const { REDIS_URL: _, ...filesEnv } = serviceEnv('', filesDir)
    const filesOnly = await startProcess('files-only', SERVICE, filesEnv, '/health')
    servers.push(filesOnly)
    await post(filesOnly, KEY, doc2k)

    // The ceilings answer what the service answers, byte for byte: its headers (but those Node adds itself) and body.
    const answer = async (r: Response) => ({
      headers: JSON.stringify(
        Object.fromEntries(
          [...r.headers].filter(([h]) => !['date', 'connection', 'keep-alive', 'content-length'].includes(h)),
        ),
      ),
      body: await r.text(),
    })
    const cached = await answer(await fetch(`${service.base}/api/config/${KEY}`, { headers: AUTH }))
    const posted = await answer(
      await fetch(`${service.base}/api/config/${POST_KEY}`, {
        method: 'POST',
        headers: { ...AUTH, 'content-type': 'application/json' },
        body: JSON.stringify(documentOf(POST_KEY, 2048)),
      }),
    )
    const bodies = tempDir('config-store-bench-bodies-') // not in a files layer's directory
    const bodyFile = join(bodies, 'body.json')
    const postReplyFile = join(bodies, 'post-reply.json')
    writeFileSync(bodyFile, cached.body)
    writeFileSync(postReplyFile, posted.body)
    await client.set('bench-ceiling:body', cached.body)
    const ceiling = (name: string, mode: string, env: Record<string, string>) =>
      startProcess(name, ['dist/bench/ceiling.js', mode], env, '/x')
    const ceilingGet = { HEADERS: cached.headers, BODY_FILE: bodyFile }
    const ceilingNode = await ceiling('ceiling-node-http', 'node-http', ceilingGet)
    const ceilingHttp = await ceiling('ceiling-http', 'http', ceilingGet)
    const ceilingRedis = await ceiling('ceiling-redis', 'redis', {
      HEADERS: cached.headers,
      REDIS_URL: redisMain.url,
      REDIS_KEY: 'bench-ceiling:body',
    })
    const ceilingSet = await ceiling('ceiling-redis-set', 'redis-set', {
      HEADERS: posted.headers,
      BODY_FILE: postReplyFile,
      REDIS_URL: redisMain.url,
      REDIS_KEY: `bench-ceiling:${POST_KEY}`,
    })
    servers.push(ceilingNode, ceilingHttp, ceilingRedis, ceilingSet)
    const postDoc = documentOf(POST_KEY, 2048)
    const postBody = JSON.stringify(postDoc)
    const legacy = await startLegacyPhp()
    const etcd = await startEtcd()
    if (legacy) servers.push(legacy)
    if (etcd) servers.push(etcd)

    type Run = (duration?: number) => Promise<Measure>
    const closes = (s: Server) => s === legacy // PHP's built-in server answers one request per connection
    const get =
      (s: Server, path = `/api/config/${KEY}`): Run =>
      (duration) =>
        load(s, path, { duration, closes: closes(s) })
    const postTo =
      (s: Server, path = `/api/config/${POST_KEY}`, body = postBody): Run =>
      (duration) =>
        load(s, path, { method: 'POST', body, duration, closes: closes(s), ...(s === etcd ? { auth: {} } : {}) })
    const legacyPost = JSON.stringify({ key: POST_KEY, config: postDoc })
    const scenarios: Array<[string, Run]> = [
      ['ceiling: node:http', get(ceilingNode, '/x')],
      ['ceiling: Fastify', get(ceilingHttp, '/x')],
      ['GET cached', get(service)],
      ['GET cached, read-only instance', get(reader)],
      ['GET cached, read-only instance, metrics off', get(noMetrics)],
      ['ceiling: Fastify + ioredis GET', get(ceilingRedis, '/x')],
      ['GET uncached', get(uncached)],
      ['GET files only', get(filesOnly)],
      ['GET cached, history off', get(noHistory)],
      ['ceiling: Fastify + ioredis SET', postTo(ceilingSet, '/x')],
      ['POST', postTo(service)],
      ['POST, history off', postTo(noHistory)],
      ['GET redis down', get(down)],
      ['GET redis down, last-known-good', get(lkg)],
      ['GET legacy', get(service, `/config_api.php?key=${KEY}`)],
      ['POST legacy', postTo(service, '/config_api.php', legacyPost)],
      ...(legacy
        ? ([
            ['legacy PHP: GET', get(legacy, `/config_api.php?key=${KEY}`)],
            ['legacy PHP: POST', postTo(legacy, '/config_api.php', legacyPost)],
          ] as Array<[string, Run]>)
        : []),
      ...(etcd ? ([['etcd: PUT', postTo(etcd, '/v3/kv/put', etcdPut(postBody))]] as Array<[string, Run]>) : []),
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

    // Where each path's CPU goes: the same loads on instances of their own under the V8 profiler.
    const profileEnv = (extra: Record<string, string> = {}) =>
      serviceEnv(redisMain.url, tempDir('config-store-bench-profile-'), extra)
    const profiles: Array<[string, ProfileSummary]> = [
      ['GET cached', await profilePath(profileEnv(), (s, d) => get(s)(d))],
      ['GET uncached', await profilePath(profileEnv({ CONFIG_CACHE_TTL_MS: '0' }), (s, d) => get(s)(d))],
      ['POST', await profilePath(profileEnv(), (s, d) => postTo(s)(d))],
      ['GET files only', await profilePath({ ...filesEnv, CONFIG_FILES_DIR: filesDir }, (s, d) => get(s)(d))],
    ]

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
    // The highly available topologies, before the growth section: the single-Redis instances they are compared with
    // are as the main measures left them.
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

    const adversarial = await adversarialSection(redisMain.url)
    const ready = await startToReady(redisMain.url, dir)
    const report = `${render(m, growth, profiles, feed, ready, (Date.now() - started) / 1000)}\n${ha.join('\n')}\n${adversarial}`
    process.stdout.write(report)
    writeFileSync(join(ROOT, 'BENCHMARKS.md'), report)
  } finally {
    await Promise.all(servers.map((s) => s.stop()))
    await Promise.all(redisServers.map((r) => r.stop()))
    for (const d of temps) rmSync(d, { recursive: true, force: true })
  }
}

const PROFILE_DURATION = QUICK ? 1 : 4
/** Source files whose inclusive share of each profile is reported: what a feature costs the paths it is on. */
const SHARES: Record<string, RegExp> = {
  metrics: /^(src\/http\/plugins\/metrics|prom-client\/)/,
  'rate limiting': /^@fastify\/rate-limit\//,
  'last-known-good': /^src\/store\/last-known-good/,
  history: /^src\/store\/(history|changes)/,
}

/** One path's load on an instance of its own under `node --cpu-prof`; start-up and warm-up left out. */
async function profilePath(env: Record<string, string>, run: (s: Server, duration: number) => Promise<Measure>) {
  const out = tempDir('config-store-bench-cpuprofile-')
  const spawned = performance.now()
  const s = await startProcess('profiled', ['--cpu-prof', `--cpu-prof-dir=${out}`, ...SERVICE], env, '/health')
  let skipMs = 0
  try {
    await run(s, WARMUP)
    skipMs = performance.now() - spawned
    await run(s, PROFILE_DURATION)
  } finally {
    await s.stop() // the profile is written as the process exits
  }
  return summarize(out, skipMs, SHARES)
}

const pct = (x: number) => `${(x * 100).toFixed(1)} %`

function renderProfiles(profiles: Array<[string, ProfileSummary]>): string {
  return profiles
    .map(
      ([path, p]) => `### ${path} (${p.samples} samples)

| frame (self time) | share |
|---|---|
${p.top.map((t) => `| \`${t.frame}\` | ${pct(t.share)} |`).join('\n')}

Inclusive: ${Object.entries(p.inclusive)
        .map(([k, v]) => `${k} ${pct(v)}`)
        .join(', ')}.
`,
    )
    .join('\n')
}

function render(
  m: Record<string, Measure>,
  growth: Array<[string, Measure]>,
  profiles: Array<[string, ProfileSummary]>,
  feed: FeedLatency,
  readyMs: number,
  seconds: number,
): string {
  const g = (n: string) => m[n] as Measure
  const has = (n: string) => m[n] !== undefined
  const row = (name: string, x: Measure) =>
    `| ${name} | ${x.cpuUs.toFixed(1)} | ${Math.round(x.rps)} | ${x.p50} | ${x.p99} | ${x.writes.toFixed(2)} | ${x.errors} | ${x.rssMb.toFixed(0)} |`
  const ratio = (a: number, b: number) => (b === 0 ? Number.POSITIVE_INFINITY : a / b)
  const f = (x: number) => x.toFixed(2)
  /** CPU/req of `a` ÷ CPU/req of `b`, and req/s of `a` ÷ req/s of `b`. */
  const cpu = (a: string, b: string) => ratio(g(a).cpuUs, g(b).cpuUs)
  const rps = (a: string, b: string) => ratio(g(a).rps, g(b).rps)
  const share = (path: string, feature: string) => profiles.find(([p]) => p === path)?.[1].inclusive[feature] ?? 0
  const atMost = (name: string, x: number, max: number): [string, string, boolean] => [
    name,
    `${f(x)} (≤ ${max})`,
    x <= max,
  ]
  /** A peer's CPU/req ÷ the service's (at least `min`), when the peer was measured. */
  const peer = (theirs: string, ours: string, min: number, name: string): Array<[string, string, boolean]> =>
    has(theirs)
      ? [
          [
            `${name}: CPU/req (req/s this ÷ theirs)`,
            `${f(cpu(theirs, ours))} (${f(rps(ours, theirs))}) (≥ ${min})`,
            cpu(theirs, ours) >= min,
          ],
        ]
      : []
  const rssPeak = Math.max(
    ...[
      'GET cached',
      'GET uncached',
      'GET files only',
      'POST',
      'GET redis down',
      'GET redis down, last-known-good',
      'GET legacy',
    ].map((n) => g(n).rssMb),
  )
  const targets: Array<[string, string, boolean]> = [
    [
      'cached GET ÷ bare Fastify: CPU/req; req/s',
      `${f(cpu('GET cached', 'ceiling: Fastify'))} (≤ 1.15); ${f(rps('GET cached', 'ceiling: Fastify'))} (≥ 0.9)`,
      cpu('GET cached', 'ceiling: Fastify') <= 1.15 && rps('GET cached', 'ceiling: Fastify') >= 0.9,
    ],
    atMost(
      'uncached GET ÷ Fastify + ioredis GET: CPU/req',
      cpu('GET uncached', 'ceiling: Fastify + ioredis GET'),
      1.15,
    ),
    atMost(
      'POST (validated, stamped, with history) ÷ Fastify + ioredis SET: CPU/req',
      cpu('POST', 'ceiling: Fastify + ioredis SET'),
      1.6,
    ),
    atMost('files-layer read ÷ cached GET: CPU/req', cpu('GET files only', 'GET cached'), 1.2),
    atMost(
      'metrics: cached GET with METRICS_ENABLED on ÷ off (two read-only instances): CPU/req',
      cpu('GET cached, read-only instance', 'GET cached, read-only instance, metrics off'),
      1.05,
    ),
    ...(['rate limiting', 'last-known-good'].map((feature) => {
      const worst = Math.max(...profiles.map(([path]) => share(path, feature)))
      return [
        `${feature}: its share of each path's CPU profile (${profiles.map(([p]) => p).join(', ')})`,
        `${profiles.map(([path]) => pct(share(path, feature))).join(', ')} (each ≤ 5 %)`,
        worst <= 0.05,
      ] as [string, string, boolean]
    }) satisfies Array<[string, string, boolean]>),
    ...peer('legacy PHP: GET', 'GET legacy', 5, 'reads: the legacy PHP ÷ this service, the same GET /config_api.php'),
    ...peer('etcd: PUT', 'POST', 2, 'writes: etcd PUT ÷ this service POST'),
    atMost('POST with history ÷ history off (CONFIG_HISTORY_MAX=0): CPU/req', cpu('POST', 'POST, history off'), 1.25),
    atMost('cached GET with history ÷ history off: CPU/req', cpu('GET cached', 'GET cached, history off'), 1.05),
    [
      'GET with Redis down (from files; from last-known-good): errors, p99 ÷ cached GET p99',
      `${g('GET redis down').errors + g('GET redis down, last-known-good').errors} errors, ${f(ratio(g('GET redis down').p99, g('GET cached').p99))}; ${f(ratio(g('GET redis down, last-known-good').p99, g('GET cached').p99))} (0, ≤ 2)`,
      g('GET redis down').errors + g('GET redis down, last-known-good').errors === 0 &&
        ratio(g('GET redis down').p99, g('GET cached').p99) <= 2 &&
        ratio(g('GET redis down, last-known-good').p99, g('GET cached').p99) <= 2,
    ],
    [
      'write acknowledged → its SSE event at another instance, under write load: p99',
      `${feed.p99.toFixed(1)} ms (≤ 50); p50 ${feed.p50.toFixed(1)}, max ${feed.max.toFixed(1)}, ${feed.received}/${feed.probes} events, ${Math.round(feed.loadRps)} writes/s meanwhile`,
      feed.p99 <= 50 && feed.received === feed.probes,
    ],
    ['peak RSS of the service under load', `${rssPeak.toFixed(0)} MB (≤ 150)`, rssPeak <= 150],
    ['start to ready (`/ready` 200)', `${readyMs.toFixed(0)} ms (≤ 500)`, readyMs <= 500],
  ]
  const header =
    '| measure | CPU µs/req | req/s | p50 | p99 | writes/req | errors | peak RSS MB |\n|---|---|---|---|---|---|---|---|'
  return `# Benchmarks

Written by \`npm run bench${QUICK ? ' -- --quick' : ''}\` on ${new Date().toISOString().slice(0, 10)}: ${cpus().length} cores
(${cpus()[0]?.model.trim()}), Node ${process.version}, load from ${loaderName} (${loaderVersion()}), ${CONNECTIONS}
connections, ${ROUNDS} alternating rounds of ${DURATION} s per measurement (medians), 2 KB documents, on loopback, the
service from the production build at \`LOG_LEVEL=warn\`. The whole run took ${seconds.toFixed(0)} s.

**CPU µs/req is the primary figure**: the server's own CPU time (user + system, from /proc, summed over its processes)
over the measurement, divided by the requests it answered. It does not depend on the loader's share of the cores, as
req/s does, but the machine's other work still moves it (a bare Fastify route: 19–20 µs alone, 26–29 among this run's
servers), so read ratios within one run. req/s and latency (ms) are secondary; writes/req is the server's write(2)-family system calls per
request (from /proc/PID/io); peak RSS is the server's during the measurement. The ceilings answer the service's own bytes,
headers included: \`node:http\` and bare Fastify a cached read's, Fastify + ioredis GET the same from a Redis key, and
Fastify + ioredis SET the POST's reply, after storing its document.${skipped.length ? ` Not measured: ${skipped.join('; ')}.` : ''}

${header}
${Object.keys(m)
  .map((n) => row(n, g(n)))
  .join('\n')}

## Targets

Ratios of CPU per request to the ceilings measured in the same run. What each miss comes from, and what was tried:
[docs/performance.md](docs/performance.md).

| measure | value (target) | met |
|---|---|---|
${targets.map(([name, value, ok]) => `| ${name} | ${value} | ${ok ? 'yes' : '**no**'} |`).join('\n')}

## Where the CPU goes

\`node --cpu-prof\` of an instance of its own per path, under the same load for ${PROFILE_DURATION} s after a warm-up,
read back through the bundle's source maps: the five frames with the most self time, and the inclusive share (a frame
of theirs anywhere on the stack) of the features the targets name. \`(garbage collector)\` and \`(program)\` are V8's
own; native frames (the socket writes) carry no file.

${renderProfiles(profiles)}
## Growth (one run each, ${GROWTH_DURATION} s)

${header}
${growth.map(([n, x]) => row(n, x)).join('\n')}
`
}

await main()
