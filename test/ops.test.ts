// Verify and migrate on a legacy world built in the test: real Redis, a real loopback PHP-contract server, real files.
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { migrateToRedis } from '../src/ops/migrate.js'
import type { MigrateResult, VerifyResult } from '../src/ops/schemas.js'
import type { RedisLayer } from '../stores/redis-layer.js'
import { bearer, buildTestApp, layerOf, redisClientForFile } from './helpers/app.js'
import { ALL_KEYS, buildLegacyWorld, type Key, token, WORLD } from './helpers/legacy-world.js'
import { phpServerForFile } from './helpers/php-server.js'

const php = phpServerForFile()
const redis = redisClientForFile()

async function world(env: Record<string, string> = {}) {
  const t = await buildTestApp({ EXTERNAL_CONFIG_BASE_URL: php.url, CONFIG_API_TOKEN: php.token, ...env })
  await buildLegacyWorld({ dir: t.dir, php, redis, prefix: t.prefix })
  const migrate = (body: object = {}) =>
    t.app.inject({
      method: 'POST',
      url: '/api/migrate_configs_to_redis',
      headers: bearer('admin'),
      payload: { keys: [...ALL_KEYS], ...body },
    })
  const verify = (body: object = {}, scope: 'read' | 'admin' = 'admin') =>
    t.app.inject({ method: 'POST', url: '/api/verify_config_store', headers: bearer(scope), payload: body })
  const redisSnapshot = async () => {
    const names = (await redis.keys(`${t.prefix}*`)).filter((n) => !n.startsWith(`${t.prefix}:`)).sort()
    return Object.fromEntries(await Promise.all(names.map(async (n) => [n.slice(t.prefix.length), await redis.get(n)])))
  }
  return { ...t, migrate, verify, redisSnapshot }
}

const byKey = <T extends { key: string }>(results: T[]) =>
  Object.fromEntries(results.map((r) => [r.key, r])) as Record<Key, T>

describe('migrate', () => {
  it('dry run: says what it would do, with a short diff, and writes nothing', async () => {
    const t = await world()
    const before = await t.redisSnapshot()
    const res = await t.migrate({ dryRun: true })
    expect(res.statusCode).toBe(200)
    const body = res.json()
    expect(body).toMatchObject({ status: 'success', dry_run: true, success: false, exit_code: 1 })
    const r = byKey<MigrateResult>(body.results)
    expect(r.polling_config).toMatchObject({ action: 'would_migrate', source: 'php' })
    expect(r.webhook_config).toMatchObject({
      action: 'would_migrate',
      source: 'files',
      diff: { added: ['webhook_url', 'webhook_ssl_verify'] },
    })
    expect(r.runtime_flags).toMatchObject({
      action: 'would_migrate',
      source: 'php',
      diff: { changed: ['gmail_ingress_enabled'] },
    })
    expect(r.magic_link_tokens).toMatchObject({ action: 'would_migrate', source: 'files' })
    expect(r.processing_prefs).toMatchObject({ action: 'skipped', source: 'php' })
    expect(r.routing_rules).toMatchObject({ action: 'invalid', source: 'files' })
    expect(r.routing_rules.errors).toEqual([
      {
        path: '/rules/0/conditions/0/value',
        message:
          "is not a regex Python's re compiles (unterminated character set at position 1): the legacy app would drop every rule",
      },
    ])
    expect(r.webhook_time_window).toMatchObject({ action: 'not_found', source: null })
    expect(body.log).toContain('polling_config: DRY (source=php)')
    expect(body.log).toContain('webhook_time_window: source file not found; skip')
    expect(await t.redisSnapshot()).toEqual(before)
  })

  it('migrates exactly the expected keys, verifies them in Redis, and a second run changes nothing', async () => {
    const t = await world()
    const res = await t.migrate()
    const body = res.json()
    const r = byKey<MigrateResult>(body.results)
    expect(Object.fromEntries(body.results.map((x: { key: string; action: string }) => [x.key, x.action]))).toEqual({
      magic_link_tokens: 'migrated',
      polling_config: 'migrated',
      processing_prefs: 'skipped',
      routing_rules: 'invalid',
      runtime_flags: 'migrated',
      webhook_config: 'migrated',
      webhook_time_window: 'not_found',
    })
    for (const key of ['magic_link_tokens', 'polling_config', 'runtime_flags', 'webhook_config'] as const) {
      expect(r[key].verified).toBe(true)
    }
    expect(body).toMatchObject({ success: false, exit_code: 1 }) // routing_rules is invalid
    expect(body.log).toEqual(
      expect.arrayContaining([
        'polling_config: OK (source=php)',
        'polling_config: VERIFY OK',
        'webhook_config: OK (source=files)',
      ]),
    )

    const stored = await t.redisSnapshot()
    expect(Object.keys(stored).sort()).toEqual([
      'magic_link_tokens',
      'polling_config',
      'processing_prefs',
      'runtime_flags',
      'webhook_config',
    ])
    expect(JSON.parse(stored.polling_config)).toEqual(WORLD.php.polling_config)
    expect(JSON.parse(stored.runtime_flags)).toEqual(WORLD.php.runtime_flags)
    expect(JSON.parse(stored.processing_prefs)).toEqual(WORLD.redis.processing_prefs) // newer Redis value kept
    expect(JSON.parse(stored.magic_link_tokens)).toEqual({ abc: token, _updated_at: expect.any(String) })
    const webhook = JSON.parse(stored.webhook_config)
    expect(webhook).toMatchObject(WORLD.files.webhook_config)
    expect(webhook._updated_at).toMatch(/Z$/) // stamped, since the file had none

    const again = (await t.migrate()).json()
    expect(
      Object.fromEntries(again.results.map((x: { key: string; action: string }) => [x.key, x.action])),
    ).toMatchObject({
      magic_link_tokens: 'unchanged',
      polling_config: 'unchanged',
      runtime_flags: 'unchanged',
      webhook_config: 'unchanged',
      processing_prefs: 'skipped',
    })
    expect(await t.redisSnapshot()).toEqual(stored)

    // Verify: no drift where the migration made the layers agree, and the drift that is really there, named.
    const v = byKey<VerifyResult>(
      (await t.verify({ keys: ALL_KEYS.filter((k) => k !== 'webhook_time_window') })).json().results,
    )
    expect(v.webhook_config.drift).toEqual([])
    expect(v.runtime_flags.drift).toEqual([])
    expect(v.polling_config.drift).toEqual([
      { layers: ['redis', 'files'], newer: 'redis' },
      { layers: ['php', 'files'], newer: 'php' },
    ])
    expect(v.processing_prefs.drift).toEqual([{ layers: ['redis', 'php'], newer: 'redis' }])
    expect(v.polling_config).toMatchObject({ valid: true, status: 'OK', source: 'redis' })
  })

  it('each key migrated is a revision by the caller, via migrate; below a PHP primary (php_first), none is made', async () => {
    const t = await world()
    const res = await t.migrate({ keys: ['polling_config'] })
    expect(res.json().results[0]).toMatchObject({ action: 'migrated' })
    const history = async (app: typeof t.app) =>
      (await app.inject({ url: '/api/config/polling_config/history', headers: bearer('admin') })).json().revisions
    expect(await history(t.app)).toEqual([
      expect.objectContaining({ revision: 1, actor: 'admin', via: 'migrate', source: 'redis' }),
    ])

    // php_first: Redis is a copy below the primary; migrating into it changes no revision of the effective document.
    const below = await world({ CONFIG_STORE_MODE: 'php_first' })
    expect((await below.migrate({ keys: ['polling_config'] })).json().results[0]).toMatchObject({ action: 'migrated' })
    expect(JSON.parse((await redis.get(`${below.prefix}polling_config`)) as string)).toMatchObject({
      active_days: [0, 1, 2],
    })
    expect(await history(below.app)).toEqual([])
  })

  it('force overwrites a newer Redis value and writes an invalid one, saying so', async () => {
    const t = await world()
    const r = byKey<MigrateResult>(
      (await t.migrate({ force: true, keys: ['processing_prefs', 'routing_rules'] })).json().results,
    )
    expect(r.processing_prefs).toMatchObject({ action: 'migrated', verified: true })
    expect(r.routing_rules).toMatchObject({ action: 'migrated', reason: 'written despite schema errors (force)' })
  })

  it('a writer that changes a key between the read and the write wins: the key ends as a conflict, its value intact', async () => {
    const t = await world()
    const result = await migrateToRedis(t.app.store, {
      keys: ['runtime_flags'],
      lockTtlMs: 10_000,
      actor: 'test',
      beforeWrite: async (key) => {
        await redis.set(`${t.prefix}${key}`, JSON.stringify({ gmail_ingress_enabled: false, by: 'someone else' }))
      },
    })
    expect(result.results[0]).toMatchObject({ key: 'runtime_flags', action: 'conflict' })
    expect(result).toMatchObject({ success: false, exit_code: 1 })
    expect(JSON.parse((await redis.get(`${t.prefix}runtime_flags`)) as string)).toEqual({
      gmail_ingress_enabled: false,
      by: 'someone else',
    })
  })

  it('one migration at a time: a second one started meanwhile gets 409; the lock is released after it ends', async () => {
    const t = await world()
    const other = await buildTestApp({
      EXTERNAL_CONFIG_BASE_URL: php.url,
      CONFIG_API_TOKEN: php.token,
      CONFIG_STORE_REDIS_PREFIX: t.prefix,
      CONFIG_FILES_DIR: t.dir,
    })
    let resume = () => {}
    let reached = () => {}
    const inside = new Promise<void>((r) => {
      reached = r
    })
    const first = migrateToRedis(t.app.store, {
      keys: ['polling_config'],
      lockTtlMs: 10_000,
      actor: 'test',
      beforeWrite: () => {
        reached()
        return new Promise<void>((r) => {
          resume = r
        })
      },
    })
    await inside
    const second = await other.app.inject({
      method: 'POST',
      url: '/api/migrate_configs_to_redis',
      headers: bearer('admin'),
      payload: {},
    })
    expect(second.statusCode).toBe(409)
    expect(second.json()).toMatchObject({ code: 'MIGRATION_IN_PROGRESS' })
    resume()
    expect((await first).results[0]?.action).toBe('migrated')
    expect(
      (
        await other.app.inject({
          method: 'POST',
          url: '/api/migrate_configs_to_redis',
          headers: bearer('admin'),
          payload: {},
        })
      ).statusCode,
    ).toBe(200)
  })

  it('the lock is released when the migration fails inside, and expires (TTL) when its holder crashed', async () => {
    const t = await world()
    await expect(
      migrateToRedis(t.app.store, {
        lockTtlMs: 10_000,
        actor: 'test',
        beforeWrite: async () => {
          throw new Error('crash inside the migration')
        },
      }),
    ).rejects.toThrow('crash inside the migration')
    expect(await redis.exists(`${t.prefix}:migration_lock`)).toBe(0)

    const crashed = layerOf(t.app.store, 'redis') as RedisLayer
    expect(await crashed.tryLock('migration_lock', 300)).not.toBeNull() // taken, never released: a crashed holder
    expect((await t.migrate({ dryRun: true })).statusCode).toBe(409)
    await new Promise((r) => setTimeout(r, 400))
    expect((await t.migrate({ dryRun: true })).statusCode).toBe(200)
  })

  it('needs Redis: 503 without it, and unknown keys are a 400', async () => {
    const t = await buildTestApp({ REDIS_URL: undefined })
    const res = await t.app.inject({
      method: 'POST',
      url: '/api/migrate_configs_to_redis',
      headers: bearer('admin'),
      payload: {},
    })
    expect(res.statusCode).toBe(503)
    expect(res.json().message).toMatch(/migrate needs Redis/)
    const w = await world()
    expect((await w.migrate({ keys: ['../x'] })).statusCode).toBe(400)
    const write = await w.app.inject({
      method: 'POST',
      url: '/api/migrate_configs_to_redis',
      headers: bearer('write'),
      payload: {},
    })
    expect(write.statusCode).toBe(403)
  })
})

describe('verify', () => {
  it('reads every layer directly: a key only in a lower layer is OK, served from there, each layer reported', async () => {
    const t = await world()
    const res = await t.verify({ keys: ['webhook_config', 'polling_config'] })
    expect(res.statusCode).toBe(200)
    const r = byKey<VerifyResult>(res.json().results)
    expect(r.webhook_config).toMatchObject({
      valid: true,
      status: 'OK',
      source: 'files',
      payload_present: true,
      layers: { redis: { state: 'absent' }, php: { state: 'absent' }, files: { state: 'present', valid: true } },
    })
    expect(r.webhook_config.warnings).toContain('files copy has no _updated_at')
    expect(r.polling_config.drift).toEqual([{ layers: ['php', 'files'], newer: 'php' }])
    expect(r.polling_config.layers.php?.sha256).toMatch(/^[0-9a-f]{64}$/)
    expect(r.polling_config.payload).toBeUndefined()
  })

  it('a key invalid in one layer only: still valid, and the report says which layer', async () => {
    const t = await world()
    await redis.set(
      `${t.prefix}polling_config`,
      JSON.stringify({ active_days: [1], _updated_at: '2026-05-01T00:00:00.000Z' }),
    )
    writeFileSync(join(t.dir, 'polling_config.json'), JSON.stringify({ active_days: [9] }))
    const r = byKey<VerifyResult>((await t.verify({ keys: ['polling_config'] })).json().results)
    expect(r.polling_config).toMatchObject({
      valid: true,
      source: 'redis',
      layers: { redis: { valid: true }, files: { valid: false } },
    })
    expect(r.polling_config.layers.files?.errors).toEqual([{ path: '/active_days/0', message: 'must be <= 6' }])
    expect(r.polling_config.warnings).toContain('files copy is invalid: /active_days/0 must be <= 6')

    await redis.del(`${t.prefix}polling_config`)
    php.files.delete('polling_config')
    const body = (await t.verify({ keys: ['polling_config'] })).json()
    expect(body).toMatchObject({ ok: false, success: false, exit_code: 1 })
    expect(body.results[0]).toMatchObject({
      valid: false,
      status: 'INVALID',
      message: 'files: /active_days/0 must be <= 6',
    })
  })

  it('failOnDrift turns drift into a failure; the legacy fields are there', async () => {
    const t = await world()
    const plain = (await t.verify({ keys: ['polling_config'] })).json()
    expect(plain).toMatchObject({ ok: true, exit_code: 0 })
    const strict = (await t.verify({ keys: ['polling_config'], failOnDrift: true })).json()
    expect(strict).toMatchObject({ ok: false, success: false, exit_code: 1, keys: ['polling_config'] })
    expect(Object.keys(strict.results[0])).toEqual(
      expect.arrayContaining(['key', 'valid', 'status', 'message', 'summary', 'payload_present']),
    )
  })

  it('raw shows payloads; magic_link_tokens only to admins, and a reader is not even told about it', async () => {
    const t = await world()
    const refused = await t.verify({ keys: ['magic_link_tokens', 'webhook_config'], raw: true }, 'read')
    expect(refused.statusCode).toBe(403)
    const reply = (await t.verify({ raw: true }, 'read')).json()
    expect(reply.keys).not.toContain('magic_link_tokens')
    expect(JSON.stringify(reply)).not.toContain('magic_link_tokens')
    const asReader = byKey<VerifyResult>(reply.results)
    expect(asReader.webhook_config?.payload).toMatchObject(WORLD.files.webhook_config)
    const asAdmin = byKey<VerifyResult>(
      (await t.verify({ keys: ['magic_link_tokens'], includeRawJson: true })).json().results,
    )
    expect(asAdmin.magic_link_tokens.payload).toEqual({ abc: token })
  })

  it('malformed keys → 400; any valid key may be asked for; duplicates dropped, order kept; default: the keys the legacy app requires and every key held', async () => {
    const t = await world()
    const bad = await t.verify({ keys: ['webhook_config', '../x', 'nope'] })
    expect(bad.statusCode).toBe(400)
    expect(bad.json().message).toMatch(/not valid key names: \.\.\/x \(keys match/)
    expect((await t.verify({ keys: ['webhook_config', 'polling_config', 'webhook_config'] })).json().keys).toEqual([
      'webhook_config',
      'polling_config',
    ])
    const held = (await t.verify()).json().keys as string[]
    expect(held).toEqual([...new Set(held)].sort())
    // polling_config is retired but held by the files and PHP; webhook_time_window is retired and held by none
    expect(held).toEqual(ALL_KEYS.filter((k) => k !== 'webhook_time_window'))
    const noBody = await t.app.inject({ method: 'POST', url: '/api/verify_config_store', headers: bearer('read') })
    expect(noBody.json().keys).toEqual(held.filter((k) => k !== 'magic_link_tokens'))
    const nope = (await t.verify({ keys: ['nope'] })).json()
    expect(nope.results[0]).toMatchObject({ key: 'nope', status: 'MISSING', valid: false })
  })

  it('with Redis down: that layer is unavailable and the check still answers 200', async () => {
    const t = await buildTestApp({
      REDIS_URL: 'redis://127.0.0.1:1',
      EXTERNAL_CONFIG_BASE_URL: php.url,
      CONFIG_API_TOKEN: php.token,
    })
    await buildLegacyWorld({ dir: t.dir, php, redis, prefix: t.prefix })
    const res = await t.app.inject({
      method: 'POST',
      url: '/api/verify_config_store',
      headers: bearer('read'),
      payload: { keys: ['webhook_config', 'runtime_flags'] },
    })
    expect(res.statusCode).toBe(200)
    const r = byKey<VerifyResult>(res.json().results)
    expect(r.webhook_config).toMatchObject({
      valid: true,
      source: 'files',
      layers: { redis: { state: 'unavailable' } },
    })
    expect(r.runtime_flags).toMatchObject({ valid: true, source: 'php' })
    expect(r.webhook_config.warnings.some((w: string) => w.startsWith('redis unavailable'))).toBe(true)
  })
})
