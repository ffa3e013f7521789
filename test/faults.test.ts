// Failure modes with real processes: a redis-server of this test's own, stopped and started again mid-test; a PHP
// server that hangs or answers 500; a files directory that cannot be written.
import { existsSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type RedisServer, startRedisServer } from '../scripts/redis-server.js'
import { bearer, buildTestApp, layerOf, tempDir } from './helpers/app.js'
import { phpServerForFile } from './helpers/php-server.js'
import { until } from './helpers/wait.js'

describe('Redis stopped mid-test', () => {
  let server: RedisServer
  beforeAll(async () => {
    server = await startRedisServer()
  })
  afterAll(() => server.stop())

  it('reads fall through to files at once, writes get 503, nothing is lost, and it recovers when Redis returns', async () => {
    // Long timeouts on purpose: a read that waited for Redis instead of failing fast would take seconds.
    const t = await buildTestApp({
      REDIS_URL: server.url,
      REDIS_COMMAND_TIMEOUT_MS: '5000',
      REDIS_CONNECT_TIMEOUT_MS: '5000',
    })
    const get = (key: string) => t.app.inject({ url: `/api/config/${key}`, headers: bearer('read') })
    const post = (key: string, body: object) =>
      t.app.inject({ method: 'POST', url: `/api/config/${key}`, headers: bearer('write'), payload: body })

    expect((await post('acked', { v: 'in redis' })).statusCode).toBe(200)
    writeFileSync(join(t.dir, 'acked.json'), JSON.stringify({ v: 'older file copy' }))
    writeFileSync(join(t.dir, 'file_only.json'), JSON.stringify({ v: 'file' }))
    expect((await get('file_only')).json().meta.source).toBe('files')

    await server.stop()
    // (Once the service has seen its connections close: before that, a first fallback answer may be cached for its
    // second, and the reads below would not each reach the layers.)
    await until(async () => t.app.store.stats().cache.active === false, 5000)

    const start = performance.now()
    for (let i = 0; i < 20; i++) {
      const res = await get('file_only')
      expect(res.statusCode).toBe(200)
      expect(res.headers['x-config-source']).toBe('files')
    }
    expect(performance.now() - start).toBeLessThan(2000) // 20 reads; one Redis timeout alone would be 5000 ms

    // Never back in time: the acknowledged Redis value, from this instance's last-known-good copy, marked stale.
    const acked = await get('acked')
    expect(acked.json()).toMatchObject({ data: { v: 'in redis' }, meta: { source: 'redis', stale: true } })
    expect(acked.headers['x-config-stale']).toBe('1')
    expect((await get('nowhere')).statusCode).toBe(503) // absence cannot be proven while Redis is down

    const refused = await post('refused', { v: 1 })
    expect(refused.statusCode).toBe(503)
    expect(refused.json()).toMatchObject({ code: 'STORE_UNAVAILABLE' })
    expect(refused.json().message).toMatch(/primary layer \(redis\).*nothing was written/)
    expect(existsSync(join(t.dir, 'refused.json'))).toBe(false)

    const ready = (await t.app.inject({ url: '/ready' })).json()
    expect(ready).toMatchObject({ status: 'ready', degraded: true })
    expect(ready.layers[0]).toMatchObject({ layer: 'redis', ok: false })
    // The fallback answer is kept a second at most, even while the cache is not trusted: the 20 reads reached the
    // layers once, not 20 times, and a read a second later tries Redis again.
    const unavailable = ready.layers[0].unavailable as number
    expect(unavailable).toBeGreaterThanOrEqual(1)
    expect(unavailable).toBeLessThan(20)
    await until(
      async () => {
        await get('file_only')
        return (await t.app.inject({ url: '/ready' })).json().layers[0].unavailable > unavailable + 1
      },
      5000,
      100,
    )
    expect(t.logs.some((l) => l.level === 40 && l.layer === 'redis' && l.key === 'file_only')).toBe(true)
    expect(t.app.store.stats().cache.active).toBe(false)

    await server.start()
    await until(async () => (await t.app.inject({ url: '/ready' })).json().degraded === false, 10_000)
    await until(async () => t.app.store.stats().cache.active, 5000)

    expect((await get('acked')).json()).toMatchObject({ data: { v: 'in redis' }, meta: { source: 'redis' } })
    expect((await get('refused')).statusCode).toBe(404)
    expect((await post('refused', { v: 2 })).statusCode).toBe(200)
    expect(t.logs.some((l) => l.level === 30 && l.layer === 'redis' && /recovered/.test(l.msg))).toBe(true)
    await t.app.close()
  })
})

describe('PHP API failing', () => {
  const php = phpServerForFile()

  const phpFirst = (env: Record<string, string> = {}) =>
    buildTestApp({
      EXTERNAL_CONFIG_BASE_URL: php.url,
      CONFIG_API_TOKEN: php.token,
      CONFIG_STORE_MODE: 'php_first',
      PHP_TIMEOUT_MS: '200',
      PHP_CIRCUIT_RESET_MS: '60000',
      CONFIG_CACHE_TTL_MS: '0',
      ...env,
    })

  it('hanging: reads fall back after the short timeout, then skip PHP entirely; writes to it get 503', async () => {
    const t = await phpFirst()
    await t.app.inject({ method: 'POST', url: '/api/config/hang_key', headers: bearer('write'), payload: { v: 1 } })
    // Newer than PHP's copy, so the fallback (not PHP's last-known-good copy) is the newest known.
    await layerOf(t.app.store, 'redis').set('hang_key', {
      v: 'redis',
      _updated_at: new Date(Date.now() + 5000).toISOString(),
    })
    php.mode = 'hang'
    php.requests.length = 0
    for (let i = 0; i < 5; i++) {
      const res = await t.app.inject({ url: '/api/config/hang_key', headers: bearer('read') })
      expect(res.json()).toMatchObject({ data: { v: 'redis' }, meta: { source: 'redis' } })
    }
    expect(php.requests.length).toBe(3) // the circuit opened after three timeouts
    const write = await t.app.inject({
      method: 'POST',
      url: '/api/config/hang_key',
      headers: bearer('write'),
      payload: { v: 2 },
    })
    expect(write.statusCode).toBe(503)
    expect(t.logs.some((l) => l.level === 40 && l.layer === 'php' && /skipped until it answers/.test(l.msg))).toBe(true)
    await t.app.close()
  })

  it('answering 500: reads are served by the next layer and the reply text never reaches the client', async () => {
    const t = await phpFirst()
    await layerOf(t.app.store, 'redis').set('err_key', { v: 'redis' })
    php.mode = 'error500'
    const res = await t.app.inject({ url: '/api/config/err_key', headers: bearer('read') })
    expect(res.json().meta.source).toBe('redis')
    const missing = await t.app.inject({ url: '/api/config/err_missing', headers: bearer('read') })
    expect(missing.statusCode).toBe(503)
    expect(missing.body).not.toContain('Storage error')
    await t.app.close()
  })
})

describe('a files directory that cannot be written', () => {
  it('refuses writes with 503, cannot prove absence (503), and /ready says so', async () => {
    const parent = tempDir()
    const blocker = join(parent, 'not-a-dir')
    writeFileSync(blocker, 'a regular file where the directory should be')
    const t = await buildTestApp({ REDIS_URL: undefined, CONFIG_FILES_DIR: join(blocker, 'data') })
    const post = await t.app.inject({
      method: 'POST',
      url: '/api/config/k',
      headers: bearer('write'),
      payload: { v: 1 },
    })
    expect(post.statusCode).toBe(503)
    expect(post.json().message).toMatch(/primary layer \(files\)/)
    expect((await t.app.inject({ url: '/api/config/k', headers: bearer('read') })).statusCode).toBe(503)
    expect((await t.app.inject({ url: '/ready' })).statusCode).toBe(503)
    await t.app.close()
  })
})
