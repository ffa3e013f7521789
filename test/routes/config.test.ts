import { readFileSync } from 'node:fs'
import { Redis } from 'ioredis'
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest'
import { bearer, buildTestApp, configFiles } from '../helpers/app.js'

async function filesApp(env: Record<string, string | undefined> = {}) {
  const t = await buildTestApp({ REDIS_URL: undefined, ...env })
  return t
}
const json = { ...bearer('admin'), 'content-type': 'application/json' }

describe('a mistyped key name', () => {
  const post = (t: Awaited<ReturnType<typeof filesApp>>, key: string, headers: Record<string, string> = json) =>
    t.app.inject({
      method: 'POST',
      url: `/api/config/${key}`,
      headers,
      payload: { webhook_url: 'https://hooks.acme.test/in' },
    })

  it('a 404 suggests the key a typo away, an existing or a built-in one', async () => {
    const t = await filesApp()
    const builtIn = await t.app.inject({ url: '/api/config/webhok_config', headers: bearer('read') })
    expect(builtIn.statusCode).toBe(404)
    expect(builtIn.json().message).toBe('no layer holds webhok_config; did you mean webhook_config?')
    expect((await post(t, 'team_alpha_routes')).statusCode).toBe(200)
    const existing = await t.app.inject({ url: '/api/config/team_alpha_route', headers: bearer('read') })
    expect(existing.json().message).toBe('no layer holds team_alpha_route; did you mean team_alpha_routes?')
    const far = await t.app.inject({ url: '/api/config/something_else', headers: bearer('read') })
    expect(far.json().message).toBe('no layer holds something_else')
  })

  it('a 404 never names a key the caller may not see', async () => {
    const tokens = JSON.stringify([
      { name: 'admin', token: 'admin-token-0123456789', scopes: ['config:admin'] },
      {
        name: 'team-a',
        token: 'team-a-token-0123456789',
        scopes: ['config:read'],
        keys: ['team_a_*', 'team_c_payrol'],
      },
      { name: 'reader', token: 'read-token-0123456789', scopes: ['config:read'] },
    ])
    const t = await filesApp({ AUTH_TOKENS: tokens })
    expect((await post(t, 'team_c_payroll')).statusCode).toBe(200)
    const teamA = { authorization: 'Bearer team-a-token-0123456789' }
    const limited = await t.app.inject({ url: '/api/config/team_c_payrol', headers: teamA })
    expect(limited.json().message).toBe('no layer holds team_c_payrol')
    // a secret key is named to an admin only
    const reader = await t.app.inject({ url: '/api/config/magic_link_token', headers: bearer('read') })
    expect(reader.json().message).toBe('no layer holds magic_link_token')
    const admin = await t.app.inject({ url: '/api/config/magic_link_token', headers: bearer('admin') })
    expect(admin.json().message).toBe('no layer holds magic_link_token; did you mean magic_link_tokens?')
  })

  it('a write that creates a key a typo away from another succeeds with a warning, in the answer and the log', async () => {
    const t = await filesApp()
    const res = await post(t, 'webhok_config')
    expect(res.statusCode).toBe(200)
    const warning =
      'webhok_config is a new key, a typo away from webhook_config: if webhook_config was meant, write it and delete webhok_config'
    expect(res.json().warnings).toEqual([warning])
    expect(res.json().meta.revision).toBe(1)
    expect(t.logs.some((l) => l.level === 40 && l.msg === warning)).toBe(true)
    // the same key again is no longer new, and a key far from every other gets no warning
    expect((await post(t, 'webhok_config')).json().warnings).toBeUndefined()
    expect((await post(t, 'billing_targets')).json().warnings).toBeUndefined()
  })

  it('under CONFIG_STORE_UNKNOWN_KEYS=reject the typo is refused, naming the key meant', async () => {
    const t = await filesApp({ CONFIG_STORE_UNKNOWN_KEYS: 'reject' })
    const res = await post(t, 'webhok_config')
    expect(res.statusCode).toBe(400)
    expect(res.json().message).toBe(
      'webhok_config has no schema and CONFIG_STORE_UNKNOWN_KEYS=reject; did you mean webhook_config?',
    )
    expect(configFiles(t.dir)).toEqual([])
  })
})

describe('invalid key names are a 400 INVALID_KEY and never reach a layer', () => {
  it.each([
    ['../x', encodeURIComponent('../x')],
    ['A B', encodeURIComponent('A B')],
    ['129 characters', 'a'.repeat(129)],
    ['upper case', 'Webhook_Config'],
    ['a dot', 'x.json'],
    ['a colon', 'a:b'],
  ])('%s', async (_name, segment) => {
    const t = await filesApp()
    for (const method of ['GET', 'POST', 'PATCH', 'DELETE'] as const) {
      const body = method === 'POST' || method === 'PATCH'
      const res = await t.app.inject({
        method,
        url: `/api/config/${segment}`,
        headers: body ? json : bearer('admin'),
        ...(body ? { payload: '{}' } : {}),
      })
      expect(res.statusCode, method).toBe(400)
      expect(res.json()).toMatchObject({ status: 'error', code: 'INVALID_KEY' })
    }
    expect(configFiles(t.dir)).toEqual([])
  })

  it('an empty key name', async () => {
    const t = await filesApp()
    const res = await t.app.inject({ method: 'POST', url: '/api/config/', headers: json, payload: '{}' })
    expect(res.statusCode).toBe(400)
    expect(res.json().code).toBe('INVALID_KEY')
  })
})

describe('bodies that are not a JSON object', () => {
  it.each([
    ['malformed JSON', '{"a": ', 'BAD_REQUEST', 400],
    ['an array', '[1,2]', 'BAD_REQUEST', 400],
    ['a string', '"text"', 'BAD_REQUEST', 400],
    ['a number', '42', 'BAD_REQUEST', 400],
    ['null', 'null', 'BAD_REQUEST', 400],
    ['an empty body', '', 'BAD_REQUEST', 400],
    ['__proto__ key', '{"__proto__": {"admin": true}}', 'BAD_REQUEST', 400],
    ['constructor.prototype', '{"constructor": {"prototype": {"admin": true}}}', 'BAD_REQUEST', 400],
    ['nested __proto__', '{"a": {"__proto__": {"x": 1}}}', 'BAD_REQUEST', 400],
  ])('%s → %s', async (_name, payload, code, status) => {
    const t = await filesApp()
    for (const method of ['POST', 'PATCH'] as const) {
      const res = await t.app.inject({ method, url: '/api/config/some_key', headers: json, payload })
      expect(res.statusCode, method).toBe(status)
      expect(res.json().code).toBe(code)
    }
    expect(configFiles(t.dir)).toEqual([])
  })

  it('a "constructor" property anywhere is refused with its path', async () => {
    const t = await filesApp()
    const res = await t.app.inject({
      method: 'POST',
      url: '/api/config/k',
      headers: json,
      payload: { a: { constructor: 1 } },
    })
    expect(res.statusCode).toBe(400)
    expect(res.json()).toMatchObject({ code: 'VALIDATION_FAILED', details: [{ path: '/a/constructor' }] })
    expect(configFiles(t.dir)).toEqual([])
  })

  it('a body over CONFIG_MAX_BYTES → 413', async () => {
    const t = await filesApp({ CONFIG_MAX_BYTES: '1024' })
    const res = await t.app.inject({
      method: 'POST',
      url: '/api/config/k',
      headers: json,
      payload: { a: 'x'.repeat(2000) },
    })
    expect(res.statusCode).toBe(413)
    expect(res.json().code).toBe('PAYLOAD_TOO_LARGE')
    expect(configFiles(t.dir)).toEqual([])
  })

  it('a body that is not JSON → 415 saying that JSON is expected and which header came', async () => {
    const t = await filesApp()
    for (const type of ['text/plain', 'application/x-www-form-urlencoded', 'application/xml']) {
      const res = await t.app.inject({
        method: 'POST',
        url: '/api/config/k',
        headers: { ...bearer('admin'), 'content-type': type },
        payload: 'a=1',
      })
      expect(res.statusCode, type).toBe(415)
      expect(res.json().code).toBe('UNSUPPORTED_MEDIA_TYPE')
      expect(res.json().message).toContain('Content-Type: application/json')
      expect(res.json().message).toContain(`this request had Content-Type: ${type}`)
    }
    // curl -d without -H: the form type, which the message names with the header to send instead
    const curlD = await t.app.inject({
      method: 'POST',
      url: '/api/config/k',
      headers: { ...bearer('admin'), 'content-type': 'application/x-www-form-urlencoded' },
      payload: '{"a":1}',
    })
    expect(curlD.json().message).toMatch(
      /curl -d sends application\/x-www-form-urlencoded unless given -H 'Content-Type: application\/json'/,
    )
    expect(configFiles(t.dir)).toEqual([])
  })

  it('a body is not coerced: a wrong type is a 400 (a query string still is)', async () => {
    const t = await filesApp()
    const verify = (payload: object) =>
      t.app.inject({ method: 'POST', url: '/api/verify_config_store', headers: json, payload })
    const coerced = await verify({ keys: 'webhook_config' })
    expect(coerced.statusCode).toBe(400)
    expect(coerced.json()).toMatchObject({ code: 'BAD_REQUEST', details: [{ path: '/keys' }] })
    expect((await verify({ raw: 'true' })).statusCode).toBe(400)
    expect((await verify({ keys: ['webhook_config'], raw: true })).statusCode).toBe(200)
    const migrate = await t.app.inject({
      method: 'POST',
      url: '/api/migrate_configs_to_redis',
      headers: json,
      payload: { dryRun: 1 },
    })
    expect(migrate.json()).toMatchObject({ code: 'BAD_REQUEST', details: [{ path: '/dryRun' }] })
    const rollback = await t.app.inject({
      method: 'POST',
      url: '/api/config/k/rollback',
      headers: json,
      payload: { revision: '1' },
    })
    expect(rollback.json()).toMatchObject({ code: 'BAD_REQUEST', details: [{ path: '/revision' }] })
    // a query string arrives as text: ?limit=2 is the number 2
    expect((await t.app.inject({ url: '/api/config/k/history?limit=2', headers: bearer('read') })).statusCode).toBe(200)
  })

  it('a bad query → 400 BAD_REQUEST', async () => {
    const t = await filesApp()
    expect((await t.app.inject({ url: '/api/config/k?source=../etc', headers: json })).json().code).toBe('BAD_REQUEST')
  })

  it('an unknown route → 404 in the envelope', async () => {
    const t = await filesApp()
    const res = await t.app.inject({ url: '/api/nothing', headers: json })
    expect(res.statusCode).toBe(404)
    expect(res.json()).toMatchObject({ status: 'error', code: 'NOT_FOUND' })
  })
})

describe('writes, patches and reads', () => {
  it('POST then GET returns the stored document with meta and X-Config-Source', async () => {
    const t = await filesApp()
    const post = await t.app.inject({
      method: 'POST',
      url: '/api/config/my_key',
      headers: json,
      payload: { a: 1, é: 'ü' },
    })
    expect(post.statusCode).toBe(200)
    const get = await t.app.inject({ url: '/api/config/my_key', headers: bearer('read') })
    expect(get.headers['content-type']).toBe('application/json; charset=utf-8')
    expect(get.headers['x-config-source']).toBe('files')
    const body = get.json()
    expect(body).toMatchObject({ status: 'success', key: 'my_key', data: { a: 1, é: 'ü' }, meta: { source: 'files' } })
    expect(body.meta.updated_at).toBe(post.json().data._updated_at)
    expect(Date.parse(body.timestamp)).not.toBeNaN()
  })

  it('PATCH applies a JSON Merge Patch (either content type), then validates and writes', async () => {
    const t = await filesApp()
    await t.app.inject({
      method: 'POST',
      url: '/api/config/webhook_config',
      headers: json,
      payload: { webhook_url: 'https://hooks.acme.test/x', webhook_ssl_verify: true, absence_pause_days: ['monday'] },
    })
    const patch = await t.app.inject({
      method: 'PATCH',
      url: '/api/config/webhook_config',
      headers: { ...bearer('write'), 'content-type': 'application/merge-patch+json' },
      payload: JSON.stringify({ webhook_ssl_verify: null, webhook_sending_enabled: false }),
    })
    expect(patch.statusCode).toBe(200)
    const { _updated_at, ...data } = patch.json().data
    expect(data).toEqual({
      webhook_url: 'https://hooks.acme.test/x',
      absence_pause_days: ['monday'],
      webhook_sending_enabled: false,
    })
    const invalid = await t.app.inject({
      method: 'PATCH',
      url: '/api/config/webhook_config',
      headers: json,
      payload: { webhook_url: 'http://x' },
    })
    expect(invalid.statusCode).toBe(400)
    expect((await t.app.inject({ url: '/api/config/webhook_config', headers: json })).json().data.webhook_url).toBe(
      'https://hooks.acme.test/x',
    )
  })

  it('PATCH of a missing key → 404', async () => {
    const t = await filesApp()
    const res = await t.app.inject({ method: 'PATCH', url: '/api/config/missing', headers: json, payload: { a: 1 } })
    expect(res.statusCode).toBe(404)
    expect(res.json().code).toBe('CONFIG_NOT_FOUND')
  })

  it('CONFIG_STORE_UNKNOWN_KEYS=reject refuses keys without a schema', async () => {
    const t = await filesApp({ CONFIG_STORE_UNKNOWN_KEYS: 'reject' })
    const res = await t.app.inject({ method: 'POST', url: '/api/config/free_form', headers: json, payload: { a: 1 } })
    expect(res.statusCode).toBe(400)
    expect(res.json().code).toBe('INVALID_KEY')
    expect(
      (await t.app.inject({ method: 'POST', url: '/api/config/runtime_flags', headers: json, payload: {} })).statusCode,
    ).toBe(200)
  })
})

describe('with Redis as the primary', () => {
  let redis: Redis
  beforeAll(() => {
    redis = new Redis(inject('redisUrl'))
  })
  afterAll(() => redis.disconnect())

  it('a refused write leaves Redis untouched', async () => {
    const t = await buildTestApp()
    for (const payload of ['[1]', '{"__proto__": {}}', '{"active_days": [7]}']) {
      const res = await t.app.inject({ method: 'POST', url: '/api/config/polling_config', headers: json, payload })
      expect(res.statusCode).toBe(400)
    }
    expect(await redis.keys(`${t.prefix}*`)).toEqual([])
  })
})

describe('the service root, /version and /health', () => {
  it('say the one version, package.json’s, and / points at /docs', async () => {
    const { app } = await buildTestApp({ REDIS_URL: undefined })
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8'))
    expect((await app.inject({ url: '/version' })).json()).toEqual({ version: pkg.version })
    expect((await app.inject({ url: '/health' })).json()).toMatchObject({ status: 'ok', version: pkg.version })
    const root = await app.inject({ url: '/' })
    expect([root.statusCode, root.headers.location]).toEqual([302, '/docs'])
    expect(app.swagger().info.version).toBe(pkg.version)
  })
})
