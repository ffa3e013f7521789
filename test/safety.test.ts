// Credentials on disk and Redis misconfiguration: private files, no symlink followed out of
// the files directory or into an export, and a wrong Redis password or TLS setting named in the log and in /ready.
import { mkdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type RedisServer, startRedisServer } from '../scripts/redis-server.js'
import { createFileLayer } from '../stores/file-layer.js'
import { bearer, buildTestApp, tempDir } from './helpers/app.js'
import { runCli } from './helpers/cli.js'

const mode = (path: string) => statSync(path).mode & 0o777

describe('credentials are private on disk', () => {
  it('the files directory is created 0700 and every file written 0600', async () => {
    const dir = join(tempDir(), 'data', 'nested')
    const layer = createFileLayer({ dir })
    await layer.set('magic_link_tokens', {
      a: { expires_at: null, consumed: false, consumed_at: null, single_use: true },
    })
    expect(mode(dir)).toBe(0o700)
    expect(mode(join(dir, 'magic_links.json'))).toBe(0o600) // the legacy file name (the legacy app reads it)
    layer.close()
  })

  it('a symlink out of the files directory is not followed; one inside it is', async () => {
    const outside = tempDir('outside')
    writeFileSync(join(outside, 'secret.json'), '{"stolen":true}')
    const dir = tempDir()
    symlinkSync(join(outside, 'secret.json'), join(dir, 'planted.json'))
    writeFileSync(join(dir, 'real.json'), '{"inside":true}')
    symlinkSync(join(dir, 'real.json'), join(dir, 'linked.json'))
    const layer = createFileLayer({ dir })
    expect(await layer.get('planted')).toMatchObject({ state: 'unavailable', reason: expect.stringMatching(/symlink/) })
    expect(await layer.get('linked')).toMatchObject({ state: 'hit', doc: { inside: true } })
    layer.close()
  })

  describe('export --out', () => {
    const cli = (dir: string, ...args: string[]) => runCli(args, { CONFIG_FILES_DIR: dir })

    it('onto an existing 0644 file ends 0600; through a symlink it refuses and leaves the target alone', async () => {
      const dir = tempDir()
      writeFileSync(join(dir, 'k.json'), '{"a":1}')
      const out = join(tempDir('out'), 'bundle.json')
      writeFileSync(out, 'old', { mode: 0o644 })
      const done = await cli(dir, 'export', '--out', out)
      expect(done.code).toBe(0)
      expect(mode(out)).toBe(0o600)
      expect(JSON.parse(readFileSync(out, 'utf8')).configs).toEqual({ k: { a: 1 } })

      const target = join(tempDir('target'), 'victim')
      writeFileSync(target, 'untouched', { mode: 0o644 })
      const link = join(tempDir('link'), 'bundle.json')
      symlinkSync(target, link)
      const refused = await cli(dir, 'export', '--out', link)
      expect(refused.code).toBe(2)
      expect(refused.stderr).toMatch(/symlink/)
      expect(readFileSync(target, 'utf8')).toBe('untouched')
      expect(mode(target)).toBe(0o644)
    })
  })
})

describe('Redis auth and TLS mistakes are named', () => {
  let server: RedisServer
  beforeAll(async () => {
    server = await startRedisServer({ persist: false, args: ['--requirepass', 'right-password'] })
  })
  afterAll(() => server.stop())

  async function ready(url: string, expectError = true) {
    const t = await buildTestApp({ REDIS_URL: url, REDIS_CONNECT_TIMEOUT_MS: '300' })
    mkdirSync(t.dir, { recursive: true })
    for (let i = 0; expectError && i < 50 && !t.logs.some((l) => l.level === 50); i++)
      await new Promise((r) => setTimeout(r, 50))
    const res = await t.app.inject({ url: '/ready', headers: bearer('read') })
    const redis = res.json().layers.find((l: { layer: string }) => l.layer === 'redis')
    const errors = t.logs.filter((l) => l.level === 50)
    const write = await t.app.inject({
      method: 'POST',
      url: '/api/config/k',
      headers: { ...bearer('write'), 'content-type': 'application/json' },
      payload: { a: 1 },
    })
    return { redis, errors, write, degraded: res.json().degraded }
  }

  it.each([
    ['no password', (port: number) => `redis://127.0.0.1:${port}`, /NOAUTH/],
    ['a wrong password', (port: number) => `redis://:wrong@127.0.0.1:${port}`, /WRONGPASS/],
    ['rediss:// to a plain server', (port: number) => `rediss://:right-password@127.0.0.1:${port}`, /TLS/],
  ])('%s: one ERROR line naming it, and /ready shows the layer down with that reason', async (_name, url, cause) => {
    const r = await ready(url(server.port))
    expect(r.redis).toMatchObject({ ok: false, error: expect.stringMatching(cause) })
    expect(r.degraded).toBe(true)
    expect(r.errors).toHaveLength(1)
    expect(r.errors[0]?.msg).toMatch(cause)
    expect(r.write.statusCode).toBe(503)
  })

  it('the right password works', async () => {
    const r = await ready(`redis://:right-password@127.0.0.1:${server.port}`, false)
    expect(r.redis).toMatchObject({ ok: true })
    expect(r.errors).toEqual([])
    expect(r.write.statusCode).toBe(200)
  })
})
