// The load generator of the benchmark: wrk when it is installed (C, one thread, a small share of one core), else
// autocannon in a child process pinned with taskset to a core of its own (the servers are then kept off that core:
// see `serverCommand`). Either way the loader runs apart from every server, and its CPU is not the server's.
import { execFileSync, spawn, spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { cpus, tmpdir } from 'node:os'
import { join } from 'node:path'

export interface LoadResult {
  requests: number
  rps: number
  /** Latency percentiles, in ms. */
  p50: number
  p99: number
  /** Connection errors, timeouts and answers that were not 2xx. */
  errors: number
}

export interface LoadSpec {
  url: string
  connections: number
  /** Seconds. */
  duration: number
  method: 'GET' | 'POST'
  headers: Record<string, string>
  body?: string | undefined
  /** The server closes every connection after its answer (PHP's built-in server): wrk's read errors are those
   * closes, not failures. */
  closes?: boolean | undefined
}

const has = (cmd: string, args: string[]) => spawnSync(cmd, args, { stdio: 'ignore' }).error === undefined
const FORCED = process.env.BENCH_LOADER === 'autocannon'
const WRK = !FORCED && has('wrk', ['--version'])
const TASKSET = has('taskset', ['--version'])
const LAST_CORE = cpus().length - 1

/** What drives the load, as BENCHMARKS.md names it. */
export const loaderName = WRK
  ? 'wrk (one thread, unpinned)'
  : TASKSET && LAST_CORE > 0
    ? `autocannon in its own process, pinned to core ${LAST_CORE}, servers kept off it (${FORCED ? 'BENCH_LOADER=autocannon' : 'wrk was not found: `apt-get install -y wrk`'})`
    : 'autocannon in its own process, sharing the cores (neither wrk nor taskset was found)'

/** The prefix that keeps a server off the loader's core, when autocannon has one of its own. */
export function serverCommand(cmd: string, args: string[]): [string, string[]] {
  if (WRK || !TASKSET || LAST_CORE === 0) return [cmd, args]
  return ['taskset', ['-c', `0-${LAST_CORE - 1}`, cmd, ...args]]
}

function lua(spec: LoadSpec, bodyFile: string | undefined): string {
  const str = (s: string) => JSON.stringify(s) // a JSON string is a valid Lua string literal for these characters
  const headers = Object.entries(spec.headers)
    .map(([k, v]) => `wrk.headers[${str(k)}] = ${str(v)}`)
    .join('\n')
  return `wrk.method = ${str(spec.method)}
${headers}
${bodyFile ? `local f = io.open(${str(bodyFile)}, "rb"); wrk.body = f:read("*a"); f:close()` : ''}
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('\\n{"requests":%d,"duration":%d,"p50":%d,"p99":%d,"errors":%d}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.connect + ${spec.closes ? 0 : 'e.read'} + e.write + e.status + e.timeout))
end
`
}

function run(cmd: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'inherit'] })
    let out = ''
    child.stdout.on('data', (d) => {
      out += d
    })
    child.once('error', reject)
    child.once('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`${cmd} exited with ${code}`))))
  })
}

async function wrk(spec: LoadSpec): Promise<LoadResult> {
  const dir = mkdtempSync(join(tmpdir(), 'config-store-bench-wrk-'))
  try {
    let bodyFile: string | undefined
    if (spec.body !== undefined) {
      bodyFile = join(dir, 'body')
      writeFileSync(bodyFile, spec.body)
    }
    writeFileSync(join(dir, 'load.lua'), lua(spec, bodyFile))
    const out = await run('wrk', [
      '-t1',
      `-c${spec.connections}`,
      `-d${Math.max(1, Math.round(spec.duration))}s`, // whole seconds only
      '--timeout',
      '10s',
      '-s',
      join(dir, 'load.lua'),
      spec.url,
    ])
    const line = out.trim().split('\n').at(-1) ?? ''
    const r = JSON.parse(line) as { requests: number; duration: number; p50: number; p99: number; errors: number }
    return {
      requests: r.requests,
      rps: r.requests / (r.duration / 1e6),
      p50: r.p50 / 1000,
      p99: r.p99 / 1000,
      errors: r.errors,
    }
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

const autocannonBin = createRequire(import.meta.url).resolve('autocannon/autocannon.js')

async function autocannon(spec: LoadSpec): Promise<LoadResult> {
  const dir = mkdtempSync(join(tmpdir(), 'config-store-bench-autocannon-'))
  const bodyFile = join(dir, 'body') // a file, not an argument: one argument holds at most 128 KB
  if (spec.body !== undefined) writeFileSync(bodyFile, spec.body)
  const args = [
    autocannonBin,
    '--json',
    '-c',
    String(spec.connections),
    '-d',
    String(spec.duration),
    '-m',
    spec.method,
    ...Object.entries(spec.headers).flatMap(([k, v]) => ['-H', `${k}=${v}`]),
    ...(spec.body !== undefined ? ['-i', bodyFile] : []),
    spec.url,
  ]
  const pinned = TASKSET && LAST_CORE > 0
  const out = await run(
    pinned ? 'taskset' : process.execPath,
    pinned ? ['-c', String(LAST_CORE), process.execPath, ...args] : args,
  ).finally(() => rmSync(dir, { recursive: true, force: true }))
  const r = JSON.parse(out) as {
    requests: { total: number; average: number }
    latency: { p50: number; p99: number }
    errors: number
    timeouts: number
    non2xx: number
  }
  return {
    requests: r.requests.total,
    rps: r.requests.average,
    p50: r.latency.p50,
    p99: r.latency.p99,
    errors: r.errors + r.timeouts + r.non2xx,
  }
}

export const drive = (spec: LoadSpec): Promise<LoadResult> => (WRK ? wrk(spec) : autocannon(spec))

/** For the record: the loader's version line. */
export const loaderVersion = (): string =>
  WRK
    ? (spawnSync('wrk', ['--version'], { encoding: 'utf8' }).stdout.split(' [')[0] ?? 'wrk') // wrk <version> [epoll] …
    : (execFileSync(process.execPath, [autocannonBin, '--version'], { encoding: 'utf8' }).split('\n')[0] ??
      'autocannon') // "autocannon v9.0.0"
