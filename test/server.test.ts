// The real process: start-up errors are one line, the generated token never reaches the log stream, and SIGTERM
// lets requests in flight finish, closes everything and exits 0 without losing an acknowledged write.
import type { ChildProcess } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { freePort } from '../scripts/redis-server.js'
import { VERSION } from '../src/version.js'
import { tempDir } from './helpers/app.js'
import { spawnCli, spawnProcess } from './helpers/cli.js'
import { startPhpServer } from './helpers/php-server.js'
import { sleep, until } from './helpers/wait.js'

const run = (env: Record<string, string>) => spawnCli(['serve'], env)

async function listening(out: { stdout: string }, child: ChildProcess): Promise<string> {
  const line = () => out.stdout.split('\n').find((l) => l.includes('Server listening at'))
  await until(() => line() !== undefined || child.exitCode !== null, 10_000, 50).catch(() => undefined)
  const found = line()
  if (found === undefined) throw new Error(`server did not start: ${JSON.stringify(out)}`)
  return JSON.parse(found).msg.replace('Server listening at ', '')
}

describe('the server process', () => {
  it('a bad variable stops the start with exit 1 and one line naming it', async () => {
    const { out, exited } = run({ PORT: 'eighty', CONFIG_FILES_DIR: tempDir() })
    expect(await exited).toBe(1)
    expect(out.stderr).toBe('config-store: invalid configuration: PORT: must be integer (got "eighty")\n')
  })

  it('refuses to run open on a public address', async () => {
    const { out, exited } = run({ HOST: '0.0.0.0', PORT: '0', CONFIG_FILES_DIR: tempDir() })
    expect(await exited).toBe(1)
    expect(out.stderr.trim().split('\n')).toHaveLength(1)
    expect(out.stderr).toMatch(/refusing to run without auth/)
  })

  it('serves with a generated token on loopback, and SIGTERM closes gracefully keeping acknowledged writes', async () => {
    const dir = tempDir()
    const { child, out, exited } = run({ PORT: '0', CONFIG_FILES_DIR: dir })
    const base = await listening(out, child)
    const token = /admin token \(loopback only\): (\S+)/.exec(out.stderr)?.[1] as string
    expect(token).toBeTruthy()
    const res = await fetch(`${base}/api/config/runtime_flags`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ gmail_ingress_enabled: true }),
    })
    expect(res.status).toBe(200)
    child.kill('SIGTERM')
    expect(await exited).toBe(0)
    expect(JSON.parse(readFileSync(join(dir, 'runtime_flags.json'), 'utf8')).gmail_ingress_enabled).toBe(true)
    const lines = out.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l))
    expect(lines.some((l) => l.msg === 'shutting down: finishing requests in flight')).toBe(true)
    expect(lines.every((l) => typeof l.level === 'number')).toBe(true)
    expect(out.stdout).not.toContain(token)
  })

  it('says where it listens at every log level, warns about an unknown variable, and serves METRICS_PORT', async () => {
    const metricsPort = await freePort()
    const { child, out, exited } = run({
      PORT: '0',
      LOG_LEVEL: 'warn',
      METRICS_PORT: String(metricsPort),
      REDIS_URI: 'redis://127.0.0.1:6379',
      CONFIG_FILES_DIR: tempDir(),
      AUTH_TOKENS: JSON.stringify([{ name: 'ops', token: 'ops-token-0123456789', scopes: ['config:read'] }]),
    })
    await until(() => /listening on/.test(out.stderr) || child.exitCode !== null, 10_000, 50)
    const lines = out.stderr.trim().split('\n')
    expect(lines).toEqual([
      'config-store: warning: REDIS_URI is not a variable config-store knows; did you mean REDIS_URL?',
      expect.stringMatching(
        new RegExp(
          `^config-store ${VERSION.replaceAll('.', '\\.')} listening on http://127\\.0\\.0\\.1:\\d+, mode redis_first, layers files$`,
        ),
      ),
    ])
    expect(out.stdout).toBe('') // nothing at info: the line went to stderr
    const scraped = await fetch(`http://127.0.0.1:${metricsPort}/metrics`)
    expect(scraped.status).toBe(200)
    expect(await scraped.text()).toMatch(/^config_store_process_cpu_user_seconds_total/m)
    expect((await fetch(`http://127.0.0.1:${metricsPort}/api/config`)).status).toBe(404)
    child.kill('SIGTERM')
    expect(await exited).toBe(0)
  })

  it('SIGTERM lets a request in flight finish before the process exits', async () => {
    const php = await startPhpServer()
    php.files.set('slow_key', JSON.stringify({ v: 'from php' }))
    const { child, out, exited } = run({
      PORT: '0',
      CONFIG_FILES_DIR: tempDir(),
      EXTERNAL_CONFIG_BASE_URL: php.url,
      CONFIG_API_TOKEN: php.token,
      AUTH_TOKENS: JSON.stringify([{ name: 'ops', token: 'ops-token-0123456789', scopes: ['config:read'] }]),
    })
    const base = await listening(out, child)
    php.delayMs = 400
    const inFlight = fetch(`${base}/api/config/slow_key`, { headers: { authorization: 'Bearer ops-token-0123456789' } })
    await sleep(100)
    child.kill('SIGTERM')
    const res = await inFlight
    expect(res.status).toBe(200)
    expect(((await res.json()) as { data: { v: string } }).data.v).toBe('from php')
    expect(await exited).toBe(0)
    await php.close()
  })
})

describe('memory with history in the files directory', () => {
  it('a 64 MB heap takes 24 writes of 3 MB to one key: revisions are kept on disk, not in memory', {
    timeout: 60_000,
  }, async () => {
    const { child, out, exited } = spawnProcess(
      process.execPath,
      ['--max-old-space-size=64', 'dist/src/cli/bin.js', 'serve'],
      {
        PORT: '0',
        CONFIG_FILES_DIR: tempDir(),
        CONFIG_MAX_BYTES: String(4 * 1024 * 1024),
        AUTH_TOKENS: JSON.stringify([{ name: 'ops', token: 'ops-token-0123456789', scopes: ['config:admin'] }]),
      },
    )
    const base = await listening(out, child)
    const statuses: number[] = []
    for (let i = 0; i < 24; i++) {
      const res = await fetch(`${base}/api/config/big`, {
        method: 'POST',
        headers: { authorization: 'Bearer ops-token-0123456789', 'content-type': 'application/json' },
        body: JSON.stringify({ i, notes: String(i % 10).repeat(3_000_000) }),
      }).catch(() => undefined)
      statuses.push(res?.status ?? 0)
      if (res === undefined) break
    }
    expect(statuses).toEqual(Array(24).fill(200))
    // every revision is still there, its document read from the file when asked for
    const first = await fetch(`${base}/api/config/big?revision=1`, {
      headers: { authorization: 'Bearer ops-token-0123456789' },
    })
    expect(((await first.json()) as { data: { i: number } }).data.i).toBe(0)
    // (Killed, not stopped: under this small a heap, after documents this large, a graceful stop sometimes ends only
    // at SHUTDOWN_TIMEOUT_MS, with history on or off; a matter of its own.)
    child.kill('SIGKILL')
    await exited
  })
})
