// The truth through outages and beside the real legacy code: fallback answers cached briefly, last-known-good
// across instances and restarts, honest write outcomes, complete listings, and parity with the PHP contract
// (json_decode reshaping, whole-second stamps), the legacy Python spacing and the legacy file order.
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { Redis } from 'ioredis'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type RedisServer, startRedisServer } from '../scripts/redis-server.js'
import { bearer, buildTestApp, redisClientForFile, tempDir, uniquePrefix } from './helpers/app.js'
import { runCli } from './helpers/cli.js'
import { phpServerForFile } from './helpers/php-server.js'
import { sleep, until } from './helpers/wait.js'

const sharedRedis = redisClientForFile()
const php = phpServerForFile()
async function app(env: Record<string, string | undefined> = {}) {
  const t = await buildTestApp(env)
  return t
}
const json = (scope: 'write' | 'admin' = 'write') => ({ ...bearer(scope), 'content-type': 'application/json' })
const stamp = (ms: number) => new Date(ms).toISOString()

/** A redis-server of this file's own, for stopping and pausing without touching the suite's shared one. */
let server: RedisServer
let admin: Redis
let running = false
beforeAll(async () => {
  server = await startRedisServer()
  running = true
  admin = new Redis(server.url, { maxRetriesPerRequest: null })
  admin.on('error', () => undefined) // it reconnects when the server is back
})
afterAll(async () => {
  admin.disconnect()
  await server.stop()
})
const stopRedis = async () => {
  await server.stop()
  running = false
}
const restartRedis = async () => {
  if (!running) await server.start()
  running = true
  await admin.ping()
}

describe('a fallback answer is cached for a second at most', () => {
  it('PHP failing once: the older Redis copy is served, then PHP again once it answers', async () => {
    const t = await app({
      EXTERNAL_CONFIG_BASE_URL: php.url,
      CONFIG_API_TOKEN: php.token,
      CONFIG_STORE_MODE: 'php_first',
    })
    await sharedRedis.set(`${t.prefix}k`, JSON.stringify({ v: 'older redis', _updated_at: stamp(Date.now() - 60_000) }))
    php.files.set('k', JSON.stringify({ v: 'php' }))
    php.mode = 'error500'
    const get = async () => (await t.app.inject({ url: '/api/config/k', headers: bearer('read') })).json()
    expect(await get()).toMatchObject({ data: { v: 'older redis' }, meta: { source: 'redis' } })
    php.mode = 'ok'
    expect(t.app.store.readCached('k')).toBeDefined() // briefly …
    await sleep(1100)
    expect(t.app.store.readCached('k')).toBeUndefined() // … not for CONFIG_CACHE_TTL_MS (60 s)
    expect(await get()).toMatchObject({ data: { v: 'php' }, meta: { source: 'php' } })
  })

  it('Redis stalling past its command timeout without dropping the connection: the same', async () => {
    await restartRedis()
    const prefix = uniquePrefix()
    const t = await app({ REDIS_URL: server.url, CONFIG_STORE_REDIS_PREFIX: prefix, REDIS_COMMAND_TIMEOUT_MS: '200' })
    await admin.set(`${prefix}k`, JSON.stringify({ v: 'redis', _updated_at: stamp(Date.now()) }))
    writeFileSync(join(t.dir, 'k.json'), JSON.stringify({ v: 'older file', _updated_at: stamp(Date.now() - 60_000) }))
    await admin.call('CLIENT', 'PAUSE', '500', 'ALL')
    const during = await t.app.inject({ url: '/api/config/k', headers: bearer('read') })
    expect(during.json()).toMatchObject({ data: { v: 'older file' }, meta: { source: 'files' } })
    await sleep(1200)
    const after = await t.app.inject({ url: '/api/config/k', headers: bearer('read') })
    expect(after.json()).toMatchObject({ data: { v: 'redis' }, meta: { source: 'redis' } })
  })
})

describe('last-known-good: an outage never turns back the clock', () => {
  it('A writes, B had read the key: with Redis stopped B serves A’s value, marked stale — and after a restart', async () => {
    await restartRedis()
    const prefix = uniquePrefix()
    const env = { REDIS_URL: server.url, CONFIG_STORE_REDIS_PREFIX: prefix }
    const a = await app(env)
    const b = await app(env)
    const older = { webhook_ssl_verify: false, _updated_at: stamp(Date.now() - 86_400_000) }
    writeFileSync(join(b.dir, 'webhook_config.json'), JSON.stringify(older))
    const write = (v: boolean) =>
      a.app.inject({
        method: 'POST',
        url: '/api/config/webhook_config',
        headers: json(),
        payload: { webhook_ssl_verify: v },
      })
    expect((await write(false)).statusCode).toBe(200)
    const readB = () => b.app.inject({ url: '/api/config/webhook_config', headers: bearer('read') })
    expect((await readB()).json().meta.source).toBe('redis') // B has read the key
    expect((await write(true)).statusCode).toBe(200) // acknowledged by A, announced by Redis tracking
    // B refreshes its copy on the change notice, without being asked for the key.
    const snapshot = join(b.dir, '.lkg', 'webhook_config.redis')
    await until(() => existsSync(snapshot) && readFileSync(snapshot, 'utf8').includes('"webhook_ssl_verify":true'))
    // A burst of writes through A: B's refreshes are coalesced, and the last one still reads the last value.
    const burst = await Promise.all(
      Array.from({ length: 30 }, (_, i) =>
        a.app.inject({
          method: 'POST',
          url: '/api/config/webhook_config',
          headers: json(),
          payload: { webhook_ssl_verify: true, burst: i },
        }),
      ),
    )
    expect(burst.map((r) => r.statusCode)).toEqual(Array(30).fill(200))
    const last = (await a.app.inject({ url: '/api/config/webhook_config', headers: bearer('read') })).json().data
    await until(() => readFileSync(snapshot, 'utf8').includes(`"burst":${last.burst},`))

    await stopRedis()
    await until(() => !b.app.store.stats().cache.active) // the cache is bypassed once its invalidation connection is gone
    const down = await readB()
    expect(down.statusCode).toBe(200)
    expect(down.headers['x-config-stale']).toBe('1')
    expect(down.json()).toMatchObject({
      data: { webhook_ssl_verify: true, burst: last.burst },
      meta: { source: 'redis', stale: true },
    })
    const legacy = await b.app.inject({ url: '/config_api.php?key=webhook_config', headers: bearer('read') })
    expect(legacy.json().config.webhook_ssl_verify).toBe(true)
    const refused = await b.app.inject({
      method: 'POST',
      url: '/api/config/webhook_config',
      headers: json(),
      payload: {},
    })
    expect(refused.statusCode).toBe(503) // writes stay refused while the primary is down

    await b.app.close()
    const restarted = await app({ ...env, CONFIG_FILES_DIR: b.dir })
    const afterRestart = await restarted.app.inject({ url: '/api/config/webhook_config', headers: bearer('read') })
    expect(afterRestart.json()).toMatchObject({ data: { webhook_ssl_verify: true }, meta: { stale: true } })
    await restartRedis()
  })

  it('a lower layer newer than the last-known-good copy wins, unmarked; a deleted key is not brought back', async () => {
    await restartRedis()
    const prefix = uniquePrefix()
    const t = await app({ REDIS_URL: server.url, CONFIG_STORE_REDIS_PREFIX: prefix })
    await t.app.inject({ method: 'POST', url: '/api/config/k', headers: json(), payload: { v: 'redis' } })
    await t.app.inject({ url: '/api/config/k', headers: bearer('read') })
    writeFileSync(join(t.dir, 'k.json'), JSON.stringify({ v: 'newer file', _updated_at: stamp(Date.now() + 60_000) }))
    await t.app.inject({ method: 'POST', url: '/api/config/gone', headers: json(), payload: { v: 1 } })
    expect(
      (await t.app.inject({ method: 'DELETE', url: '/api/config/gone', headers: bearer('admin') })).statusCode,
    ).toBe(200)
    await stopRedis()
    await until(() => !t.app.store.stats().cache.active)
    const res = await t.app.inject({ url: '/api/config/k', headers: bearer('read') })
    expect(res.json()).toMatchObject({ data: { v: 'newer file' }, meta: { source: 'files' } })
    expect(res.json().meta.stale).toBeUndefined()
    expect((await t.app.inject({ url: '/api/config/gone', headers: bearer('read') })).statusCode).toBe(503)
    await restartRedis()
  })
})

describe('a write whose outcome is not known is not called refused', () => {
  it('Redis paused for writes: WRITE_OUTCOME_UNKNOWN, and the value does land later', async () => {
    await restartRedis()
    const prefix = uniquePrefix()
    const t = await app({ REDIS_URL: server.url, CONFIG_STORE_REDIS_PREFIX: prefix, REDIS_COMMAND_TIMEOUT_MS: '300' })
    await admin.call('CLIENT', 'PAUSE', '1500', 'WRITE')
    const res = await t.app.inject({ method: 'POST', url: '/api/config/k', headers: json(), payload: { v: 'paused' } })
    expect(res.statusCode).toBe(503)
    expect(res.json()).toMatchObject({ code: 'WRITE_OUTCOME_UNKNOWN' })
    expect(res.json().message).not.toMatch(/nothing was written/)
    await until(async () => (await admin.get(`${prefix}k`)) !== null, 5000) // it landed after all
  })

  it('Redis paused, then answering: the read-back shows the write landed, so 200', async () => {
    await restartRedis()
    const prefix = uniquePrefix()
    const t = await app({ REDIS_URL: server.url, CONFIG_STORE_REDIS_PREFIX: prefix, REDIS_COMMAND_TIMEOUT_MS: '300' })
    await t.app.inject({ method: 'POST', url: '/api/config/k', headers: json(), payload: { v: 'before' } })
    // The SET waits out the pause and times out (300 ms); the GET that reads it back is answered when the pause ends.
    await admin.call('CLIENT', 'PAUSE', '450', 'ALL')
    const res = await t.app.inject({ method: 'POST', url: '/api/config/k', headers: json(), payload: { v: 'landed' } })
    expect(res.statusCode).toBe(200)
    expect(JSON.parse((await admin.get(`${prefix}k`)) as string)).toEqual(res.json().data)
    expect(t.logs.some((l) => /reading back shows it landed/.test(l.msg))).toBe(true)
    // It landed with its revision (one script): the answer names it all the same.
    expect(res.json().meta.revision).toBe(2)
    // A delete read back the same way: deleted, and its revision found.
    await admin.call('CLIENT', 'PAUSE', '450', 'ALL')
    const del = await t.app.inject({ method: 'DELETE', url: '/api/config/k', headers: bearer('admin') })
    expect(del.json()).toMatchObject({ layers: { redis: 'deleted' }, revision: 3 })
    const history = await t.app.inject({ url: '/api/config/k/history', headers: bearer('admin') })
    expect(history.json().revisions.map((r: { revision: number; op: string }) => [r.revision, r.op])).toEqual([
      [3, 'delete'],
      [2, 'write'],
      [1, 'write'],
    ])
  })

  it('Redis stopped: 503 "nothing was written", which is then known', async () => {
    await restartRedis()
    const prefix = uniquePrefix()
    const t = await app({ REDIS_URL: server.url, CONFIG_STORE_REDIS_PREFIX: prefix })
    await stopRedis()
    const res = await t.app.inject({ method: 'POST', url: '/api/config/k', headers: json(), payload: { v: 1 } })
    expect(res.json()).toMatchObject({
      code: 'STORE_UNAVAILABLE',
      message: expect.stringMatching(/nothing was written/),
    })
    await restartRedis()
    expect(await admin.get(`${prefix}k`)).toBeNull()
  })
})

describe('a listing is complete or it fails', () => {
  it('40 keys of 1 MB under a short command timeout: every key listed, or a 503 naming the ones missing', async () => {
    await restartRedis()
    const prefix = uniquePrefix()
    const big = JSON.stringify({ v: 'x'.repeat(1024 * 1024), _updated_at: stamp(Date.now()) })
    for (let i = 0; i < 40; i++) await admin.set(`${prefix}big_${i}`, big)
    const t = await app({
      REDIS_URL: server.url,
      CONFIG_STORE_REDIS_PREFIX: prefix,
      REDIS_COMMAND_TIMEOUT_MS: '300',
      CONFIG_CACHE_TTL_MS: '0',
    })
    const res = await t.app.inject({ url: '/api/config', headers: bearer('read') })
    if (res.statusCode === 200) {
      const listed = (res.json().keys as Array<{ key: string }>).filter((k) => k.key.startsWith('big_'))
      expect(listed).toHaveLength(40)
    } else {
      expect(res.statusCode).toBe(503)
      expect(res.json().message).toMatch(/big_\d+.*could not be read/)
    }
    await stopRedis()
    const down = await t.app.inject({ url: '/api/config', headers: bearer('read') })
    expect(down.statusCode).toBe(503)
    expect(down.json().message).toMatch(/redis could not be listed/)
    await restartRedis()
    const names = await admin.keys(`${prefix}*`)
    if (names.length > 0) await admin.del(...names)
  })

  it('export with a layer down exits non-zero, and writes nothing', async () => {
    const dir = tempDir()
    writeFileSync(join(dir, 'k.json'), '{"a":1}')
    const out = join(tempDir('out'), 'bundle.json')
    const { code, stderr } = await runCli(['export', '--out', out], {
      CONFIG_FILES_DIR: dir,
      REDIS_URL: 'redis://127.0.0.1:1',
    })
    expect(code).toBe(1)
    expect(stderr).toMatch(/redis could not be reached; nothing exported/)
    expect(existsSync(out)).toBe(false)
  })
})

describe('beside the real PHP contract', () => {
  const phpFirst = () =>
    app({ EXTERNAL_CONFIG_BASE_URL: php.url, CONFIG_API_TOKEN: php.token, CONFIG_STORE_MODE: 'php_first' })

  it("PHP's json_decode(…, true) reshaping is undone where the schema wants objects: verify OK, PATCH works", async () => {
    const t = await phpFirst()
    const post = await t.app.inject({
      method: 'POST',
      url: '/api/config/processing_prefs',
      headers: json(),
      payload: { sender_priority: {}, exclude_keywords: [] },
    })
    expect(post.statusCode).toBe(200)
    expect(php.files.get('processing_prefs')).toContain('"sender_priority": []') // as the real PHP stores it
    const verify = await t.app.inject({
      method: 'POST',
      url: '/api/verify_config_store',
      headers: bearer('admin'),
      payload: { keys: ['processing_prefs'] },
    })
    expect(verify.json().results[0].layers.php).toMatchObject({ state: 'present', valid: true })
    const patch = await t.app.inject({
      method: 'PATCH',
      url: '/api/config/processing_prefs',
      headers: json(),
      payload: { retry_count: 2 },
    })
    expect(patch.statusCode).toBe(200)
    expect(patch.json().data).toMatchObject({ sender_priority: {}, exclude_keywords: [], retry_count: 2 })
    php.files.set('processing_prefs', JSON.stringify({ sender_priority: { 0: 'high', 1: 'low' } }))
    const read = await t.app.inject({ url: '/api/config/processing_prefs?source=php', headers: bearer('read') })
    expect(read.json().data.sender_priority).toEqual({ 0: 'high', 1: 'low' })
  })

  it('a php_first write answers the stamp the next read serves (PHP’s whole seconds)', async () => {
    const t = await phpFirst()
    const post = await t.app.inject({ method: 'POST', url: '/api/config/k', headers: json(), payload: { a: 1 } })
    const get = await t.app.inject({ url: '/api/config/k', headers: bearer('read') })
    expect(post.json().meta.updated_at).toMatch(/\+00:00$/)
    expect(post.json().meta.updated_at).toBe(get.json().meta.updated_at)
    expect(post.json().data).toEqual(get.json().data)
  })
})

describe('migrate beside the legacy Python writers', () => {
  async function migrateWorld(redisText: string, file: object) {
    const t = await app({ EXTERNAL_CONFIG_BASE_URL: php.url, CONFIG_API_TOKEN: php.token })
    await sharedRedis.set(`${t.prefix}polling_config`, redisText)
    writeFileSync(join(t.dir, 'polling_config.json'), JSON.stringify(file))
    const res = await t.app.inject({
      method: 'POST',
      url: '/api/migrate_configs_to_redis',
      headers: bearer('admin'),
      payload: { keys: ['polling_config'] },
    })
    return { res: res.json(), redisNow: await sharedRedis.get(`${t.prefix}polling_config`) }
  }

  it("replaces an older value written with Python's json.dumps spacing (no false conflict)", async () => {
    const python = '{"enable_polling": false, "_updated_at": "2026-01-01T00:00:00+00:00"}'
    const { res, redisNow } = await migrateWorld(python, {
      enable_polling: true,
      _updated_at: '2026-02-01T00:00:00.000Z',
    })
    expect(res.results[0]).toMatchObject({ action: 'migrated', verified: true })
    expect(JSON.parse(redisNow as string)).toMatchObject({ enable_polling: true })
  })

  it('a tie on _updated_at with different content keeps Redis, reported as drift; so does an unstamped Redis copy', async () => {
    const tie = '{"enable_polling": false, "_updated_at": "2026-02-01T00:00:00.000Z"}'
    const a = await migrateWorld(tie, { enable_polling: true, _updated_at: '2026-02-01T00:00:00.000Z' })
    expect(a.res.results[0]).toMatchObject({ action: 'skipped', reason: expect.stringMatching(/^drift/) })
    expect(a.redisNow).toBe(tie)
    const unstamped = '{"enable_polling": false}'
    const b = await migrateWorld(unstamped, { enable_polling: true, _updated_at: '2026-02-01T00:00:00.000Z' })
    expect(b.res.results[0]).toMatchObject({ action: 'skipped' })
    expect(b.redisNow).toBe(unstamped)
  })
})

describe('magic_link_tokens: the legacy file first', () => {
  it('with both files present the legacy one is served, and verify reports the drift', async () => {
    const t = await app({ REDIS_URL: undefined })
    const token = { expires_at: null, consumed: false, consumed_at: null, single_use: true }
    writeFileSync(join(t.dir, 'magic_links.json'), JSON.stringify({ current: token, _updated_at: stamp(Date.now()) }))
    writeFileSync(join(t.dir, 'magic_link_tokens.json'), JSON.stringify({ stale: token, _updated_at: stamp(0) }))
    const res = await t.app.inject({ url: '/api/config/magic_link_tokens', headers: bearer('admin') })
    expect(Object.keys(res.json().data)).toContain('current')
    const verify = await t.app.inject({
      method: 'POST',
      url: '/api/verify_config_store',
      headers: bearer('admin'),
      payload: { keys: ['magic_link_tokens'] },
    })
    expect(verify.json().results[0].warnings.join()).toMatch(/magic_link_tokens\.json differ from magic_links\.json/)
    expect(verify.json().results[0].drift).toEqual([{ layers: ['files', 'files'], newer: null }])
  })
})

describe('routing rules only as the legacy RoutingRulesService keeps them', () => {
  const rule = (patch: object) => ({
    rules: [
      {
        id: 'r1',
        name: 'n',
        conditions: [{ field: 'subject', operator: 'contains', value: 'invoice', case_sensitive: false }],
        actions: { webhook_url: 'https://hooks.acme.test/x', priority: 'normal', stop_processing: false },
        ...patch,
      },
    ],
  })
  it.each([
    ['no condition', { conditions: [] }],
    ['an empty value', { conditions: [{ field: 'subject', operator: 'contains', value: '', case_sensitive: false }] }],
    [
      'a blank value',
      { conditions: [{ field: 'subject', operator: 'contains', value: '   ', case_sensitive: false }] },
    ],
    ['a blank name', { name: '  ' }],
  ])('%s → 400', async (_name, patch) => {
    const t = await app({ REDIS_URL: undefined })
    const res = await t.app.inject({
      method: 'POST',
      url: '/api/config/routing_rules',
      headers: json(),
      payload: rule(patch),
    })
    expect(res.statusCode).toBe(400)
  })
})

describe('the command line names what it could not reach', () => {
  it('check with Redis down: names it on stderr and exits 1; get warns that its answer is a fallback', async () => {
    const dir = tempDir()
    writeFileSync(join(dir, 'webhook_config.json'), JSON.stringify({ webhook_url: '', _updated_at: stamp(Date.now()) }))
    const env = { CONFIG_FILES_DIR: dir, REDIS_URL: 'redis://127.0.0.1:1' }
    const check = await runCli(['check', '--keys', 'webhook_config'], env)
    expect(check.stdout).toContain('webhook_config: OK')
    expect(check.stderr).toMatch(/the redis layer could not be reached; the check is incomplete/)
    expect(check.code).toBe(1)
    const get = await runCli(['get', 'webhook_config'], env)
    expect(get.code).toBe(0)
    expect(get.stderr).toMatch(/served by files, a fallback: redis could not answer/)
    const missingDir = await runCli(['check'], { CONFIG_FILES_DIR: join(dir, 'typo'), REDIS_URL: '' })
    expect(missingDir.stderr).toMatch(/warning: CONFIG_FILES_DIR .*typo does not exist/)
  })
})
