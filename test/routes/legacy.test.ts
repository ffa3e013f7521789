import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { bearer, buildTestApp, configFiles } from '../helpers/app.js'

describe('GET/POST /config_api.php', () => {
  let t: Awaited<ReturnType<typeof buildTestApp>>
  beforeAll(async () => {
    t = await buildTestApp({ REDIS_URL: undefined })
  })
  afterAll(() => t.app.close())

  it('a key never written answers 200 with config {} (both shapes)', async () => {
    const res = await t.app.inject({ url: '/config_api.php?key=never', headers: bearer('read') })
    expect(res.statusCode).toBe(200)
    expect(res.json()).toMatchObject({ success: true, config: {}, status: 'success', data: {} })
  })

  it('POST {key, config} writes, trimming and lowercasing the key as PHP does; GET reads it back', async () => {
    const post = await t.app.inject({
      method: 'POST',
      url: '/config_api.php',
      headers: bearer('write'),
      payload: { key: '  Runtime_Flags ', config: { gmail_ingress_enabled: true } },
    })
    expect(post.statusCode).toBe(200)
    expect(post.json()).toMatchObject({ success: true, status: 'success' })
    const get = await t.app.inject({ url: '/config_api.php?key=%20RUNTIME_FLAGS', headers: bearer('read') })
    const body = get.json()
    expect(body.config).toMatchObject({ gmail_ingress_enabled: true })
    expect(body.config._updated_at).toMatch(/Z$/)
    expect(body.data).toEqual(body.config)
  })

  it.each([
    ['GET with a bad key', { url: '/config_api.php?key=../etc' }, 400, 'Invalid key'],
    ['GET without a key', { url: '/config_api.php' }, 400, 'Invalid key'],
    [
      'POST with a bad key',
      { method: 'POST', url: '/config_api.php', payload: { key: 'a b', config: {} } },
      400,
      'Invalid payload',
    ],
    [
      'POST with config not an object',
      { method: 'POST', url: '/config_api.php', payload: { key: 'k', config: [1] } },
      400,
      'Invalid payload',
    ],
    ['POST without config', { method: 'POST', url: '/config_api.php', payload: { key: 'k' } }, 400, 'Invalid payload'],
    [
      'POST of malformed JSON',
      { method: 'POST', url: '/config_api.php', payload: '{"key":', headers: { 'content-type': 'application/json' } },
      400,
      'Invalid payload',
    ],
    [
      'POST failing the key schema',
      { method: 'POST', url: '/config_api.php', payload: { key: 'polling_config', config: { active_days: [9] } } },
      400,
      'Invalid payload',
    ],
    ['PUT', { method: 'PUT', url: '/config_api.php', payload: {} }, 405, 'Method not allowed'],
    ['DELETE', { method: 'DELETE', url: '/config_api.php' }, 405, 'Method not allowed'],
  ] as const)('%s → %i %s, nothing written', async (_name, request, status, message) => {
    const before = configFiles(t.dir)
    const res = await t.app.inject({
      ...request,
      headers: { ...bearer('admin'), ...('headers' in request ? request.headers : {}) },
    } as never)
    expect(res.statusCode).toBe(status)
    expect(res.json()).toEqual({ success: false, message })
    expect(configFiles(t.dir)).toEqual(before)
  })

  it('401 {success:false, message:"Unauthorized"} without a valid token', async () => {
    for (const headers of [{}, { authorization: 'Bearer nope-nope-nope-nope' }]) {
      const res = await t.app.inject({ url: '/config_api.php?key=k', headers })
      expect(res.statusCode).toBe(401)
      expect(res.json()).toEqual({ success: false, message: 'Unauthorized' })
    }
  })

  it('POST needs the write scope (403 Forbidden)', async () => {
    const res = await t.app.inject({
      method: 'POST',
      url: '/config_api.php',
      headers: bearer('read'),
      payload: { key: 'k', config: {} },
    })
    expect(res.statusCode).toBe(403)
    expect(res.json()).toEqual({ success: false, message: 'Forbidden' })
  })
})

describe('/health and /ready', () => {
  it('/ready reports each layer with its latency, degraded when the primary is down, 503 when none answers', async () => {
    const t = await buildTestApp({ REDIS_URL: 'redis://127.0.0.1:1', CONFIG_FILES_DIR: '/dev/null/files' })
    const res = await t.app.inject({ url: '/ready' })
    expect(res.statusCode).toBe(503)
    expect(res.json()).toMatchObject({ status: 'unavailable', degraded: true })
    expect(res.json().layers.map((l: { layer: string; ok: boolean }) => [l.layer, l.ok])).toEqual([
      ['redis', false],
      ['files', false],
    ])
    expect((await t.app.inject({ url: '/health' })).statusCode).toBe(200)
    await t.app.close()

    const degraded = await buildTestApp({ REDIS_URL: 'redis://127.0.0.1:1' })
    const ready = await degraded.app.inject({ url: '/ready' })
    expect(ready.statusCode).toBe(200)
    expect(ready.json()).toMatchObject({ status: 'ready', degraded: true })
    await degraded.app.close()

    const healthy = await buildTestApp()
    const ok = (await healthy.app.inject({ url: '/ready' })).json()
    expect(ok).toMatchObject({ status: 'ready', degraded: false })
    expect(ok.layers[0]).toMatchObject({ layer: 'redis', ok: true })
    expect(ok.layers[0].latencyMs).toBeGreaterThanOrEqual(0)
    await healthy.app.close()
  })
})
