// Who may read what: secret documents by every name that reaches them, verify within a
// token's limits, JWT restriction claims that fail closed, the legacy route's key types, /ready for anonymous
// callers, the failed-auth rate limit, and the headers and log lines of every answer.
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { bearer, buildTestApp, redisClientForFile, TOKENS, uniquePrefix } from '../helpers/app.js'
import { hs256, JWT_SECRET } from '../helpers/jwt.js'
import { phpServerForFile } from '../helpers/php-server.js'

const redis = redisClientForFile()
const php = phpServerForFile()

async function app(env: Record<string, string | undefined> = {}) {
  const t = await buildTestApp(env)
  return t
}
const auth = (token: string) => ({ authorization: `Bearer ${token}` })
const json = (scope: keyof typeof TOKENS) => ({ ...bearer(scope), 'content-type': 'application/json' })
const token = { expires_at: null, consumed: false, consumed_at: null, single_use: true }
const nowSec = () => Math.floor(Date.now() / 1000)

describe('secret documents need admin under every name that reaches them', () => {
  it('the legacy magic_links.json: read only by admins, through the API and the legacy route, never written', async () => {
    const t = await app({ REDIS_URL: undefined })
    const legacyFile = join(t.dir, 'magic_links.json')
    writeFileSync(legacyFile, JSON.stringify({ mlt_secret_id: token }))
    for (const url of [
      '/api/config/magic_links',
      '/config_api.php?key=MAGIC_LINKS',
      '/api/config/magic_links?source=files',
    ]) {
      for (const scope of ['read', 'write'] as const) {
        const res = await t.app.inject({ url, headers: bearer(scope) })
        expect(res.statusCode, `${url} ${scope}`).toBe(403)
        expect(res.body).not.toContain('mlt_secret_id')
      }
    }
    const asAdmin = await t.app.inject({ url: '/api/config/magic_links', headers: bearer('admin') })
    expect(asAdmin.json()).toMatchObject({ key: 'magic_link_tokens', data: { mlt_secret_id: token } })

    const before = readFileSync(legacyFile, 'utf8')
    expect(
      (await t.app.inject({ method: 'POST', url: '/api/config/magic_links', headers: json('write'), payload: {} }))
        .statusCode,
    ).toBe(403)
    for (const method of ['POST', 'PATCH', 'DELETE'] as const) {
      const res = await t.app.inject({
        method,
        url: '/api/config/magic_links',
        headers: method === 'DELETE' ? bearer('admin') : json('admin'),
        ...(method === 'DELETE' ? {} : { payload: { mlt_planted: token } }),
      })
      expect(res.statusCode, method).toBe(400)
      expect(res.json().code).toBe('INVALID_KEY')
    }
    const legacyWrite = await t.app.inject({
      method: 'POST',
      url: '/config_api.php',
      headers: json('admin'),
      payload: { key: 'MAGIC_LINKS', config: { mlt_planted: token } },
    })
    expect(legacyWrite.statusCode).toBe(400)
    expect(readFileSync(legacyFile, 'utf8')).toBe(before)
    expect(existsSync(join(t.dir, 'magic_link_tokens.json'))).toBe(false)
  })

  it('MAGIC_LINK_TOKENS_FILE inside the files directory is a secret name too', async () => {
    const t = await app({ REDIS_URL: undefined })
    const t2 = await app({
      REDIS_URL: undefined,
      CONFIG_FILES_DIR: t.dir,
      MAGIC_LINK_TOKENS_FILE: join(t.dir, 'tokens.json'),
    })
    writeFileSync(join(t.dir, 'tokens.json'), JSON.stringify({ mlt_x: token }))
    expect((await t2.app.inject({ url: '/api/config/tokens', headers: bearer('read') })).statusCode).toBe(403)
    const list = await t2.app.inject({ url: '/api/config', headers: bearer('read') })
    expect(list.body).not.toContain('magic_link_tokens')
    expect((await t2.app.inject({ url: '/api/config/tokens', headers: bearer('admin') })).json().data).toEqual({
      mlt_x: token,
    })
  })

  it('a write of magic_link_tokens is seen at once under its legacy name (one cache entry for both)', async () => {
    const t = await app()
    const read = async () => (await t.app.inject({ url: '/api/config/magic_links', headers: bearer('admin') })).json()
    writeFileSync(join(t.dir, 'magic_links.json'), JSON.stringify({ old: token }))
    expect((await read()).data).toMatchObject({ old: token })
    const post = await t.app.inject({
      method: 'POST',
      url: '/api/config/magic_link_tokens',
      headers: json('admin'),
      payload: { fresh: token },
    })
    expect(post.statusCode).toBe(200)
    expect((await read()).data).toMatchObject({ fresh: token })
  })
})

describe('verify answers only for the keys the caller may read', () => {
  const limited = JSON.stringify([
    { name: 'webhooks-only', token: 'webhook-only-token-0123', scopes: ['config:read'], keys: ['webhook_config'] },
    { name: 'admin', token: TOKENS.admin, scopes: ['config:admin'] },
  ])

  it('a token limited to webhook_config sees nothing of polling_config or magic_link_tokens', async () => {
    const t = await app({ REDIS_URL: undefined, AUTH_TOKENS: limited })
    for (const [key, doc] of [
      ['webhook_config', { webhook_ssl_verify: true }],
      ['polling_config', { enable_polling: true, sender_of_interest_for_polling: ['secret@example.com'] }],
      ['magic_link_tokens', { mlt_abc: token }],
    ] as const) {
      writeFileSync(join(t.dir, `${key}.json`), JSON.stringify({ ...doc, _updated_at: new Date().toISOString() }))
    }
    const verify = (payload: object) =>
      t.app.inject({
        method: 'POST',
        url: '/api/verify_config_store',
        headers: { ...auth('webhook-only-token-0123') },
        payload,
      })
    const all = await verify({ raw: true })
    expect(all.statusCode).toBe(200)
    expect(all.json().keys).toEqual(['webhook_config'])
    expect(all.body).not.toMatch(/polling_config|secret@example|magic_link_tokens|mlt_abc/)
    expect((await verify({ keys: ['polling_config'], raw: true })).statusCode).toBe(403)
    expect((await verify({ keys: ['magic_link_tokens'] })).statusCode).toBe(403)
  })

  it('errors under a secret key never name a token id, even to an admin', async () => {
    const t = await app({ REDIS_URL: undefined })
    writeFileSync(join(t.dir, 'magic_link_tokens.json'), JSON.stringify({ mlt_0123secret: { consumed: 'no' } }))
    const res = await t.app.inject({
      method: 'POST',
      url: '/api/verify_config_store',
      headers: bearer('admin'),
      payload: { keys: ['magic_link_tokens'] },
    })
    expect(res.json().results[0].valid).toBe(false)
    expect(res.body).not.toContain('mlt_0123secret')
    const write = await t.app.inject({
      method: 'POST',
      url: '/api/config/magic_link_tokens',
      headers: json('admin'),
      payload: { mlt_0123secret: { consumed: 'no' } },
    })
    expect(write.statusCode).toBe(400)
    expect(write.body).not.toContain('mlt_0123secret')
  })
})

describe('JWT restriction claims fail closed', () => {
  const jwtApp = (env: Record<string, string> = {}) =>
    app({ REDIS_URL: undefined, AUTH_TOKENS: undefined, JWT_SECRET, ...env })
  const get = async (t: Awaited<ReturnType<typeof jwtApp>>, jwt: string, key = 'polling_config') =>
    (await t.app.inject({ url: `/api/config/${key}`, headers: auth(jwt) })).statusCode

  it.each([
    ['keys as a string', { keys: 'webhook_config' }],
    ['keys null', { keys: null }],
    ['keys with a non-string', { keys: ['webhook_config', 7] }],
    ['keys with a bad pattern', { keys: ['../x'] }],
    ['scope not a string', { scope: ['config:read'] }],
    ['scopes not strings', { scopes: [{ admin: true }] }],
    ['no exp', { exp: undefined }],
    ['exp not a number', { exp: 'tomorrow' }],
    ['iat an hour ahead', { iat: nowSec() + 3600 }],
  ])('%s → 401', async (_name, claims) => {
    const t = await jwtApp()
    expect(await get(t, hs256({ scope: 'config:read', ...claims }))).toBe(401)
  })

  it('a scope named after an Object.prototype member grants nothing', async () => {
    const t = await jwtApp()
    for (const scope of ['constructor', '__proto__', 'toString', 'hasOwnProperty'])
      expect(await get(t, hs256({ scope }))).toBe(403)
  })

  it('iat within the clock skew passes; JWT_MAX_AGE refuses older tokens and tokens without iat', async () => {
    const t = await jwtApp()
    writeFileSync(join(t.dir, 'polling_config.json'), '{"enable_polling":true}')
    expect(await get(t, hs256({ scope: 'config:read', iat: nowSec() + 20 }))).toBe(200)
    const short = await jwtApp({ JWT_MAX_AGE: '1m', CONFIG_FILES_DIR: t.dir })
    expect(await get(short, hs256({ scope: 'config:read', iat: nowSec() - 120 }))).toBe(401)
    expect(await get(short, hs256({ scope: 'config:read', iat: undefined }))).toBe(401)
    expect(await get(short, hs256({ scope: 'config:read' }))).toBe(200)
  })

  it('a valid keys claim still limits', async () => {
    const t = await jwtApp()
    writeFileSync(join(t.dir, 'polling_config.json'), '{"enable_polling":true}')
    expect(await get(t, hs256({ scope: 'config:read', keys: ['webhook_*'] }))).toBe(403)
    expect(await get(t, hs256({ scope: 'config:read', keys: ['polling_*'] }))).toBe(200)
  })
})

describe('the legacy route takes a string or a finite number as key, nothing else', () => {
  it.each([[['abc']], [true], [null], [{ k: 1 }]])('%j → 400 Invalid payload, nothing written', async (key) => {
    const t = await app({ REDIS_URL: undefined })
    const res = await t.app.inject({
      method: 'POST',
      url: '/config_api.php',
      headers: json('write'),
      payload: { key, config: { a: 1 } },
    })
    expect(res.statusCode).toBe(400)
    expect(res.json()).toEqual({ success: false, message: 'Invalid payload' })
    for (const name of ['abc', 'true', 'null']) expect(existsSync(join(t.dir, `${name}.json`))).toBe(false)
  })

  it('a number is a key, as PHP reads it', async () => {
    const t = await app({ REDIS_URL: undefined })
    const res = await t.app.inject({
      method: 'POST',
      url: '/config_api.php',
      headers: json('write'),
      payload: { key: 123, config: { a: 1 } },
    })
    expect(res.statusCode).toBe(200)
    expect(JSON.parse(readFileSync(join(t.dir, '123.json'), 'utf8'))).toMatchObject({ a: 1 })
  })
})

describe('/ready: one upstream probe per layer per second, reasons only for a token', () => {
  it('100 anonymous calls make at most one PHP probe each second, and show no reasons', async () => {
    const t = await app({ EXTERNAL_CONFIG_BASE_URL: php.url, CONFIG_API_TOKEN: php.token })
    php.requests.length = 0
    const started = Date.now()
    const replies = await Promise.all(Array.from({ length: 100 }, () => t.app.inject({ url: '/ready' })))
    const seconds = Math.ceil((Date.now() - started) / 1000)
    expect(replies.every((r) => r.statusCode === 200)).toBe(true)
    expect(php.requests.length).toBeGreaterThanOrEqual(1)
    expect(php.requests.length).toBeLessThanOrEqual(seconds + 1)
  })

  it('with PHP down, anonymous callers see the state; a token sees the reason', async () => {
    const t = await app({ REDIS_URL: undefined, EXTERNAL_CONFIG_BASE_URL: 'http://127.0.0.1:1', CONFIG_API_TOKEN: 'x' })
    const anonymous = await t.app.inject({ url: '/ready' })
    const phpLayer = anonymous.json().layers.find((l: { layer: string }) => l.layer === 'php')
    expect(phpLayer).toMatchObject({ ok: false })
    expect(phpLayer.error).toBeUndefined()
    expect(anonymous.body).not.toMatch(/ECONNREFUSED|127\.0\.0\.1/)
    const badToken = await t.app.inject({ url: '/ready', headers: auth('not-a-token-0123456789') })
    expect(badToken.body).not.toMatch(/ECONNREFUSED/)
    const withToken = await t.app.inject({ url: '/ready', headers: bearer('read') })
    expect(withToken.json().layers.find((l: { layer: string }) => l.layer === 'php').error).toMatch(/ECONNREFUSED/)
  })
})

describe('failed authentication is rate limited per address', () => {
  it('after AUTH_FAILURES_MAX failures: 429 with Retry-After for unknown tokens, known tokens unaffected', async () => {
    const t = await app({ REDIS_URL: undefined, AUTH_FAILURES_MAX: '5' })
    // A token that passed before the failures began keeps working.
    expect((await t.app.inject({ url: '/api/config', headers: bearer('read') })).statusCode).toBe(200)
    const codes: number[] = []
    for (let i = 0; i < 8; i++)
      codes.push(
        (await t.app.inject({ url: '/api/config/k', headers: auth(`wrong-token-${i}-0123456789`) })).statusCode,
      )
    expect(codes).toEqual([401, 401, 401, 401, 401, 429, 429, 429])
    const limited = await t.app.inject({ url: '/api/config/k', headers: bearer('write') })
    expect(limited.statusCode).toBe(429) // never seen before: not even a right token is checked while limited
    expect(Number(limited.headers['retry-after'])).toBeGreaterThan(0)
    expect((await t.app.inject({ url: '/api/config', headers: bearer('read') })).statusCode).toBe(200)
    const legacy = await t.app.inject({ url: '/config_api.php?key=k', headers: auth('wrong-again-0123456789') })
    expect(legacy.json()).toEqual({ success: false, message: 'Too many requests' })
  })

  it('behind proxies named in TRUSTED_PROXIES, each client is counted by its X-Forwarded-For; otherwise by the peer', async () => {
    const through = (t: Awaited<ReturnType<typeof app>>, client: string, token: string) =>
      t.app.inject({
        url: '/api/config/k',
        remoteAddress: '10.0.0.2', // the proxy
        headers: { ...auth(token), 'x-forwarded-for': client },
      })
    const behind = await app({ REDIS_URL: undefined, AUTH_FAILURES_MAX: '3', TRUSTED_PROXIES: '10.0.0.0/8' })
    for (let i = 0; i < 4; i++) await through(behind, '203.0.113.7', `guess-${i}-0123456789abcdef`)
    expect((await through(behind, '203.0.113.7', 'guess-x-0123456789abcdef')).statusCode).toBe(429)
    expect((await through(behind, '198.51.100.9', 'guess-y-0123456789abcdef')).statusCode).toBe(401) // another client
    // without the setting, a header proves nothing: every client behind the proxy is the proxy
    const open = await app({ REDIS_URL: undefined, AUTH_FAILURES_MAX: '3' })
    for (let i = 0; i < 4; i++) await through(open, '203.0.113.7', `guess-${i}-0123456789abcdef`)
    expect((await through(open, '198.51.100.9', 'guess-y-0123456789abcdef')).statusCode).toBe(429)
    await expect(app({ TRUSTED_PROXIES: '10.0.0.0/40' })).rejects.toThrow(
      'TRUSTED_PROXIES: "10.0.0.0/40" is not an address, a CIDR, loopback, linklocal or uniquelocal (got "10.0.0.0/40")',
    )
  })

  it('is shared through Redis: a second instance sees the same failures', async () => {
    const prefix = uniquePrefix()
    const a = await app({ CONFIG_STORE_REDIS_PREFIX: prefix, AUTH_FAILURES_MAX: '3' })
    const b = await app({ CONFIG_STORE_REDIS_PREFIX: prefix, AUTH_FAILURES_MAX: '3' })
    for (let i = 0; i < 3; i++)
      expect(
        (await a.app.inject({ url: '/api/config/k', headers: auth(`bad-${i}-0123456789abcdef`) })).statusCode,
      ).toBe(401)
    expect((await b.app.inject({ url: '/api/config/k', headers: auth('bad-b-0123456789abcdef') })).statusCode).toBe(429)
    expect(await redis.keys(`${prefix}:auth-failures:*`)).toHaveLength(1)
  })
})

describe('headers and log lines', () => {
  it('config answers are no-store and nosniff, errors included', async () => {
    const t = await app({ REDIS_URL: undefined })
    for (const [url, headers] of [
      ['/api/config', bearer('read')],
      ['/api/config/absent', bearer('read')],
      ['/config_api.php?key=a', bearer('read')],
      ['/api/config/k', {}],
      ['/no/such/route', {}],
      ['/health', {}],
      ['/ready', bearer('read')],
      ['/metrics', {}],
    ] as const) {
      const res = await t.app.inject({ url, headers })
      expect(res.headers['cache-control'], url).toBe('no-store')
      expect(res.headers['x-content-type-options'], url).toBe('nosniff')
    }
  })

  it('a long or odd x-request-id is replaced; a plain one is kept; query strings are not logged', async () => {
    const t = await app({ REDIS_URL: undefined })
    const huge = 'x'.repeat(12 * 1024)
    await t.app.inject({
      url: '/api/config/k?token=pasted-secret',
      headers: { ...bearer('read'), 'x-request-id': huge },
    })
    await t.app.inject({ url: '/api/config/k', headers: { ...bearer('read'), 'x-request-id': 'line\nbreak' } })
    await t.app.inject({ url: '/api/config/k', headers: { ...bearer('read'), 'x-request-id': 'trace-abc.123' } })
    const ids = new Set(t.logs.map((l) => l.reqId))
    expect(ids.has(huge)).toBe(false)
    expect(ids.has('line\nbreak')).toBe(false)
    expect(ids.has('trace-abc.123')).toBe(true)
    expect(t.rawLogs.join('\n')).not.toContain('pasted-secret')
    expect(t.logs.some((l) => (l.req as { url?: string } | undefined)?.url === '/api/config/k')).toBe(true)
  })
})

describe('the key list reads only the keys the caller may see', () => {
  it("a corrupt key outside a token's limits neither breaks its listing nor is named to it", async () => {
    const tokens = JSON.stringify([
      { name: 'team-a', token: 'team-a-token-0123456789', scopes: ['config:read'], keys: ['team_a_*'] },
      { name: 'admin', token: TOKENS.admin, scopes: ['config:admin'] },
    ])
    const t = await app({ AUTH_TOKENS: tokens })
    await redis.set(`${t.prefix}team_a_flags`, '{"on":true}')
    await redis.set(`${t.prefix}team_c_payroll`, '{"salary": ') // corrupt: not JSON
    const teamA = await t.app.inject({ url: '/api/config', headers: auth('team-a-token-0123456789') })
    expect(teamA.statusCode).toBe(200)
    expect(teamA.json().keys.map((k: { key: string }) => k.key)).toEqual(['team_a_flags'])
    expect(teamA.body).not.toContain('team_c')
    // an admin, who may see it, is told the list is incomplete, and why
    const admin = await t.app.inject({ url: '/api/config', headers: bearer('admin') })
    expect(admin.statusCode).toBe(503)
    expect(admin.json().message).toContain('team_c_payroll')
  })
})
