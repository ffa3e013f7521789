import { createHash } from 'node:crypto'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { buildApp } from '../../src/app.js'
import { loadConfig } from '../../src/config.js'
import { bearer, buildTestApp, captureLogger, closeWhenDone, configFiles, TOKENS, tempDir } from '../helpers/app.js'
import { hs256, JWT_SECRET, rsaKeys } from '../helpers/jwt.js'

async function filesApp(env: Record<string, string | undefined> = {}) {
  const t = await buildTestApp({ REDIS_URL: undefined, ...env })
  return t
}

const auth = (token: string) => ({ authorization: `Bearer ${token}` })
const now = () => Math.floor(Date.now() / 1000)

describe('static tokens', () => {
  it('401 with WWW-Authenticate: Bearer for a missing, malformed or unknown token; nothing written', async () => {
    const t = await filesApp()
    for (const headers of [
      {},
      { authorization: 'Basic abc' },
      { authorization: 'Bearer' },
      auth('not-a-known-token-at-all'),
    ]) {
      const res = await t.app.inject({ method: 'POST', url: '/api/config/k', headers, payload: { a: 1 } })
      expect(res.statusCode).toBe(401)
      expect(res.headers['www-authenticate']).toBe('Bearer')
      expect(res.json()).toMatchObject({ status: 'error', code: 'UNAUTHORIZED' })
    }
    expect(configFiles(t.dir)).toEqual([])
  })

  it('scopes nest: read < write < admin, and too little scope is a 403', async () => {
    const t = await filesApp()
    const post = (scope: keyof typeof TOKENS) =>
      t.app.inject({ method: 'POST', url: '/api/config/k', headers: bearer(scope), payload: { a: 1 } })
    expect((await post('read')).statusCode).toBe(403)
    expect(configFiles(t.dir)).toEqual([])
    expect((await post('write')).statusCode).toBe(200)
    expect((await post('admin')).statusCode).toBe(200)
    const del = (scope: keyof typeof TOKENS) =>
      t.app.inject({ method: 'DELETE', url: '/api/config/k', headers: bearer(scope) })
    expect((await del('write')).json()).toMatchObject({ code: 'FORBIDDEN' })
    expect((await del('admin')).statusCode).toBe(200)
  })

  it('magic_link_tokens needs admin to read and to write', async () => {
    const t = await filesApp()
    const doc = { abc: { expires_at: null, consumed: false, consumed_at: null, single_use: true } }
    const write = await t.app.inject({
      method: 'POST',
      url: '/api/config/magic_link_tokens',
      headers: bearer('write'),
      payload: doc,
    })
    expect(write.statusCode).toBe(403)
    expect(
      (
        await t.app.inject({
          method: 'POST',
          url: '/api/config/magic_link_tokens',
          headers: bearer('admin'),
          payload: doc,
        })
      ).statusCode,
    ).toBe(200)
    expect((await t.app.inject({ url: '/api/config/magic_link_tokens', headers: bearer('write') })).statusCode).toBe(
      403,
    )
    expect(
      (await t.app.inject({ url: '/config_api.php?key=magic_link_tokens', headers: bearer('read') })).json(),
    ).toEqual({
      success: false,
      message: 'Forbidden',
    })
    expect((await t.app.inject({ url: '/api/config/magic_link_tokens', headers: bearer('admin') })).statusCode).toBe(
      200,
    )
  })

  it('accepts a token given as sha256:<hex>', async () => {
    const plain = 'hashed-token-0123456789'
    const hashed = `sha256:${createHash('sha256').update(plain).digest('hex')}`
    const t = await filesApp({ AUTH_TOKENS: JSON.stringify([{ name: 'ops', token: hashed, scopes: ['config:read'] }]) })
    expect((await t.app.inject({ url: '/api/config', headers: auth(plain) })).statusCode).toBe(200)
    expect((await t.app.inject({ url: '/api/config', headers: auth(hashed) })).statusCode).toBe(401)
  })

  it('reads AUTH_TOKENS_FILE', async () => {
    const file = join(tempDir(), 'tokens.json')
    writeFileSync(file, JSON.stringify([{ name: 'ops', token: 'file-token-0123456789', scopes: ['config:write'] }]))
    const t = await filesApp({ AUTH_TOKENS: undefined, AUTH_TOKENS_FILE: file })
    expect((await t.app.inject({ url: '/api/config', headers: auth('file-token-0123456789') })).statusCode).toBe(200)
  })

  it('never logs the Authorization header or a token', async () => {
    const t = await filesApp()
    await t.app.inject({ url: '/api/config/k', headers: { ...bearer('admin'), 'x-request-id': 'r1' } })
    await t.app.inject({ url: '/api/config/k', headers: auth('wrong-token-0123456789') })
    const all = t.rawLogs.join('\n')
    expect(t.rawLogs.length).toBeGreaterThan(0)
    for (const secret of [...Object.values(TOKENS), 'wrong-token-0123456789']) expect(all).not.toContain(secret)
    expect(t.logs.some((l) => l.reqId === 'r1')).toBe(true)
  })
})

describe('JWT', () => {
  const jwtApp = (env: Record<string, string> = {}) => filesApp({ AUTH_TOKENS: undefined, JWT_SECRET, ...env })

  it('HS256: scope claim (space-separated) and scopes array', async () => {
    const t = await jwtApp()
    const read = hs256({ scope: 'openid config:read', exp: now() + 60 })
    const write = hs256({ scopes: ['config:write'], exp: now() + 60 })
    expect((await t.app.inject({ url: '/api/config', headers: auth(read) })).statusCode).toBe(200)
    const post = (token: string) =>
      t.app.inject({ method: 'POST', url: '/api/config/k', headers: auth(token), payload: { a: 1 } })
    expect((await post(read)).statusCode).toBe(403)
    expect((await post(write)).statusCode).toBe(200)
  })

  it('401 for a forged, expired or wrong-issuer/audience token; 403 for one without a config scope', async () => {
    const t = await jwtApp({ JWT_ISSUER: 'https://issuer.example', JWT_AUDIENCE: 'config-store' })
    const good = { scope: 'config:read', iss: 'https://issuer.example', aud: 'config-store', exp: now() + 60 }
    const get = (token: string) => t.app.inject({ url: '/api/config', headers: auth(token) })
    expect((await get(hs256(good))).statusCode).toBe(200)
    expect((await get(hs256(good, 'another-secret-that-is-32-characters-long'))).statusCode).toBe(401)
    expect((await get(hs256({ ...good, exp: now() - 10 }))).statusCode).toBe(401)
    expect((await get(hs256({ ...good, iss: 'https://evil.example' }))).statusCode).toBe(401)
    expect((await get(hs256({ ...good, aud: 'other' }))).statusCode).toBe(401)
    const noScope = await get(hs256({ ...good, scope: 'openid' }))
    expect(noScope.statusCode).toBe(403)
  })

  it('the keys claim limits which keys a token may touch, with * as a prefix match', async () => {
    const t = await jwtApp()
    const token = hs256({ scope: 'config:write', keys: ['webhook_config', 'team_a_*'], exp: now() + 60 })
    const post = (key: string) =>
      t.app.inject({ method: 'POST', url: `/api/config/${key}`, headers: auth(token), payload: {} })
    expect((await post('webhook_config')).statusCode).toBe(200)
    expect((await post('team_a_flags')).statusCode).toBe(200)
    const denied = await post('polling_config')
    expect(denied.statusCode).toBe(403)
    expect(denied.json().message).toMatch(/may not touch polling_config/)
    const list = await t.app.inject({ url: '/api/config', headers: auth(token) })
    expect(list.json().keys.map((k: { key: string }) => k.key)).toEqual(['team_a_flags', 'webhook_config'])
  })

  it('RS256 with JWT_PUBLIC_KEY (newlines may be escaped as \\n)', async () => {
    const { publicPem, rs256 } = rsaKeys()
    const t = await filesApp({ AUTH_TOKENS: undefined, JWT_PUBLIC_KEY: publicPem.replace(/\n/g, '\\n') })
    expect(
      (await t.app.inject({ url: '/api/config', headers: auth(rs256({ scope: 'config:read' })) })).statusCode,
    ).toBe(200)
    expect(
      (await t.app.inject({ url: '/api/config', headers: auth(hs256({ scope: 'config:read' })) })).statusCode,
    ).toBe(401)
  })
})

describe('never runs open', () => {
  it('on loopback with no auth configured: generates one admin token and hands it out once', async () => {
    const tokens: string[] = []
    const config = loadConfig({ CONFIG_FILES_DIR: tempDir() })
    const app = await buildApp({ config, logger: captureLogger().logger, onGeneratedToken: (t) => tokens.push(t) })
    closeWhenDone(app)
    expect(tokens).toHaveLength(1)
    const token = tokens[0] as string
    expect((await app.inject({ url: '/api/config' })).statusCode).toBe(401)
    expect((await app.inject({ method: 'DELETE', url: '/api/config/x', headers: auth(token) })).statusCode).toBe(404)
  })

  it('on any other address with no auth configured: refuses to start, saying why', async () => {
    const config = loadConfig({ HOST: '0.0.0.0', CONFIG_FILES_DIR: tempDir() })
    await expect(buildApp({ config, logger: captureLogger().logger })).rejects.toThrow(
      /HOST: 0.0.0.0 is not loopback.*refusing to run without auth/,
    )
  })

  it('/health, /ready and /docs need no token', async () => {
    const t = await filesApp()
    expect((await t.app.inject({ url: '/health' })).statusCode).toBe(200)
    expect((await t.app.inject({ url: '/ready' })).statusCode).toBe(200)
    expect((await t.app.inject({ url: '/docs/json' })).statusCode).toBe(200)
    expect((await t.app.inject({ url: '/docs' })).statusCode).toBeLessThan(400)
  })
})

describe('request log lines', () => {
  it('name the actor (the token name), never the token', async () => {
    const t = await buildTestApp({ REDIS_URL: undefined })
    await t.app.inject({ url: '/api/config', headers: bearer('write') })
    const done = t.logs.find((l) => l.msg === 'request completed')
    expect(done).toMatchObject({ res: { statusCode: 200, actor: 'writer' } })
    expect(t.rawLogs.join('\n')).not.toContain(TOKENS.write)
  })
})
