// The layered store through the HTTP API, on real Redis, a real loopback PHP-contract server and real files.
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { bearer, buildTestApp, redisClientForFile } from './helpers/app.js'
import { phpServerForFile } from './helpers/php-server.js'
import { holdsWithin } from './helpers/wait.js'

const php = phpServerForFile()
const redis = redisClientForFile()

/** Without the cache unless a test turns it on: these tests change lower layers behind the service's back. */
async function layered(env: Record<string, string> = {}) {
  const t = await buildTestApp({
    EXTERNAL_CONFIG_BASE_URL: php.url,
    CONFIG_API_TOKEN: php.token,
    CONFIG_CACHE_TTL_MS: '0',
    ...env,
  })
  const get = (key: string, query = '') => t.app.inject({ url: `/api/config/${key}${query}`, headers: bearer('read') })
  const post = (key: string, body: unknown) =>
    t.app.inject({ method: 'POST', url: `/api/config/${key}`, headers: bearer('write'), payload: body as object })
  const inRedis = async (key: string) => {
    const raw = await redis.get(`${t.prefix}${key}`)
    return raw === null ? null : JSON.parse(raw)
  }
  const inFile = (key: string) => {
    const path = join(t.dir, `${key}.json`)
    return existsSync(path) ? JSON.parse(readFileSync(path, 'utf8')) : null
  }
  const putFile = (key: string, doc: object) => writeFileSync(join(t.dir, `${key}.json`), JSON.stringify(doc))
  return { ...t, get, post, inRedis, inFile, putFile }
}

const unique = (name: string) => `${name}_${Math.random().toString(36).slice(2, 8)}`

describe('reads walk the layer order; the first hit wins and says where it came from', () => {
  it('redis_first: redis, then php, then files', async () => {
    const t = await layered()
    const key = unique('k')
    t.putFile(key, { from: 'files' })
    let res = await t.get(key)
    expect(res.json()).toMatchObject({ status: 'success', key, data: { from: 'files' }, meta: { source: 'files' } })
    expect(res.headers['x-config-source']).toBe('files')

    php.files.set(key, JSON.stringify({ from: 'php' }))
    res = await t.get(key)
    expect(res.json().data.from).toBe('php')

    await redis.set(`${t.prefix}${key}`, JSON.stringify({ from: 'redis', _updated_at: '2026-11-21T09:15:02.123Z' }))
    res = await t.get(key)
    expect(res.json()).toMatchObject({
      data: { from: 'redis' },
      meta: { source: 'redis', updated_at: '2026-11-21T09:15:02.123Z' },
    })
  })

  it("php_first: PHP's value wins over Redis", async () => {
    const t = await layered({ CONFIG_STORE_MODE: 'php_first' })
    const key = unique('k')
    await redis.set(`${t.prefix}${key}`, JSON.stringify({ from: 'redis' }))
    php.files.set(key, JSON.stringify({ from: 'php' }))
    expect((await t.get(key)).json().meta.source).toBe('php')
  })

  it("PHP's {} for a missing key is an absence: the files layer is reached (docs/legacy.md, defect 2)", async () => {
    const t = await layered({ CONFIG_STORE_MODE: 'php_first' })
    const key = unique('k')
    t.putFile(key, { from: 'files' })
    expect((await t.get(key)).json().meta.source).toBe('files')
  })

  it('?source= reads one layer only, never the chain; an unconfigured layer is a 400', async () => {
    const t = await layered()
    const key = unique('k')
    t.putFile(key, { from: 'files' })
    expect((await t.get(key, '?source=files')).json().data.from).toBe('files')
    const fromRedis = await t.get(key, '?source=redis')
    expect(fromRedis.statusCode).toBe(404)
    expect(fromRedis.json()).toMatchObject({ status: 'error', code: 'CONFIG_NOT_FOUND' })
    expect((await t.get(key, '?source=disk')).json().code).toBe('BAD_REQUEST')

    const filesOnly = await buildTestApp({ REDIS_URL: undefined })
    const res = await filesOnly.app.inject({ url: `/api/config/${key}?source=php`, headers: bearer('read') })
    expect(res.statusCode).toBe(400)
    expect(res.json().message).toMatch(/php layer is not configured/)
  })

  it('404 when every layer answered absent; 503 when a layer could not answer, with a WARN naming it', async () => {
    const t = await layered()
    const key = unique('k')
    expect((await t.get(key)).statusCode).toBe(404)
    php.mode = 'error500'
    const res = await t.get(key)
    expect(res.statusCode).toBe(503)
    expect(res.json()).toMatchObject({ code: 'STORE_UNAVAILABLE' })
    expect(res.json().message).not.toMatch(/Storage error|undici|stack/)
    expect(t.logs.find((l) => l.level === 40 && l.layer === 'php' && l.key === key)?.reason).toMatch(/500/)
  })

  it('a fallback past a layer that is down serves the lower layer and logs it', async () => {
    const t = await layered()
    const key = unique('k')
    t.putFile(key, { from: 'files' })
    php.mode = 'error500'
    const res = await t.get(key)
    expect(res.json().meta.source).toBe('files')
    expect(t.logs.some((l) => l.level === 40 && l.layer === 'files' && l.key === key && /fallback/.test(l.msg))).toBe(
      true,
    )
  })
})

describe('writes go to the primary only, stamped once, centrally', () => {
  it('redis_first: the document lands in Redis, nowhere else, with a fresh _updated_at', async () => {
    const t = await layered()
    const key = unique('k')
    const res = await t.post(key, { a: 1, _updated_at: '1999-01-01T00:00:00.000Z' })
    expect(res.statusCode).toBe(200)
    const body = res.json()
    expect(body).toMatchObject({ status: 'success', key, meta: { source: 'redis' } })
    expect(body.data._updated_at).not.toBe('1999-01-01T00:00:00.000Z')
    expect(body.data._updated_at).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/)
    expect(await t.inRedis(key)).toEqual(body.data)
    expect(php.files.has(key)).toBe(false)
    expect(t.inFile(key)).toBeNull()
  })

  it('php_first: the document lands in PHP', async () => {
    const t = await layered({ CONFIG_STORE_MODE: 'php_first' })
    const key = unique('k')
    expect((await t.post(key, { a: 1 })).json().meta.source).toBe('php')
    expect(JSON.parse(php.files.get(key) as string)).toMatchObject({ a: 1 })
    expect(await t.inRedis(key)).toBeNull()
  })

  it('a write whose primary is down is refused with 503 and nothing is written anywhere (docs/legacy.md, defect 3)', async () => {
    const t = await layered({ CONFIG_STORE_MODE: 'php_first' })
    const key = unique('k')
    php.mode = 'error500'
    const res = await t.post(key, { a: 1 })
    expect(res.statusCode).toBe(503)
    expect(res.json().message).toMatch(/primary layer \(php\)/)
    php.mode = 'ok'
    expect(php.files.has(key)).toBe(false)
    expect(await t.inRedis(key)).toBeNull()
    expect(t.inFile(key)).toBeNull()
  })

  it('a write is visible to the very next read, even with an older value cached and lower layers holding others', async () => {
    const t = await layered()
    const key = unique('k')
    t.putFile(key, { v: 'file' })
    expect((await t.get(key)).json().data.v).toBe('file')
    await t.post(key, { v: 'new' })
    expect((await t.get(key)).json()).toMatchObject({ data: { v: 'new' }, meta: { source: 'redis' } })
  })
})

describe('DELETE removes the key from every layer', () => {
  it('while PHP holds the key: 409 and nothing deleted (PHP cannot delete; a blank would fool the legacy app)', async () => {
    const t = await layered()
    const key = unique('k')
    await t.post(key, { v: 1 })
    php.files.set(key, JSON.stringify({ v: 'php' }))
    t.putFile(key, { v: 'file' })
    const refused = await t.app.inject({ method: 'DELETE', url: `/api/config/${key}`, headers: bearer('admin') })
    expect(refused.statusCode).toBe(409)
    expect(refused.json()).toMatchObject({ code: 'DELETE_REFUSED', message: expect.stringMatching(/PHP host/) })
    expect(JSON.parse(php.files.get(key) as string)).toMatchObject({ v: 'php' }) // not blanked
    expect(await t.inRedis(key)).toMatchObject({ v: 1 })
    expect(t.inFile(key)).toMatchObject({ v: 'file' })
  })

  it('once PHP no longer holds it: every other layer, and nothing left to resurrect the key', async () => {
    const t = await layered()
    const key = unique('k')
    await t.post(key, { v: 1 })
    t.putFile(key, { v: 'file' })
    const res = await t.app.inject({ method: 'DELETE', url: `/api/config/${key}`, headers: bearer('admin') })
    expect(res.statusCode).toBe(200)
    expect(res.json()).toMatchObject({
      status: 'success',
      key,
      layers: { redis: 'deleted', php: 'absent', files: 'deleted' },
    })
    expect(php.files.has(key)).toBe(false) // never written as a blank document
    expect((await t.get(key)).statusCode).toBe(404)
    const again = await t.app.inject({ method: 'DELETE', url: `/api/config/${key}`, headers: bearer('admin') })
    expect(again.statusCode).toBe(404)
  })

  it('with PHP unreachable: 503 and nothing deleted, since PHP may hold the key', async () => {
    const t = await layered()
    const key = unique('k')
    await t.post(key, { v: 1 })
    php.mode = 'error500'
    const res = await t.app.inject({ method: 'DELETE', url: `/api/config/${key}`, headers: bearer('admin') })
    expect(res.statusCode).toBe(503)
    expect(res.json().message).toMatch(/php layer could not be reached.*nothing was deleted/)
    expect(await t.inRedis(key)).toMatchObject({ v: 1 })
  })
})

describe('GET /api/config lists every key known to a layer or a schema', () => {
  it('merges layers and built-in schemas, with source and updated_at', async () => {
    const t = await layered()
    const key = unique('k')
    t.putFile(key, { a: 1, _updated_at: '2026-01-01T00:00:00.000Z' })
    await t.post('runtime_flags', { gmail_ingress_enabled: true })
    const res = await t.app.inject({ url: '/api/config', headers: bearer('read') })
    const keys = res.json().keys as Array<{ key: string }>
    expect(keys).toContainEqual({ key, source: 'files', updated_at: '2026-01-01T00:00:00.000Z', schema: 'none' })
    expect(keys).toContainEqual(expect.objectContaining({ key: 'runtime_flags', source: 'redis', schema: 'builtin' }))
    expect(keys).toContainEqual({ key: 'routing_rules', source: null, updated_at: null, schema: 'builtin' })
  })
})

describe('the cache never serves a value older than an acknowledged write', () => {
  const cached = { CONFIG_CACHE_TTL_MS: '60000' }

  it('two instances sharing Redis: a write through one is read at once through the other', async () => {
    const a = await layered(cached)
    const b = await layered({ ...cached, CONFIG_STORE_REDIS_PREFIX: a.prefix, CONFIG_FILES_DIR: a.dir })
    expect(a.app.store.stats().cache.active && b.app.store.stats().cache.active).toBe(true)
    const key = unique('k')
    await a.post(key, { v: 1 })
    expect((await b.get(key)).json().data.v).toBe(1) // now cached in b
    expect((await b.get(key)).json().data.v).toBe(1)
    expect(b.app.store.stats().cache.entries).toBeGreaterThan(0)
    await a.post(key, { v: 2 })
    expect((await b.get(key)).json().data.v).toBe(2)
  })

  it('an external redis-cli style SET or DEL reaches both instances within 100 ms', async () => {
    const a = await layered(cached)
    const b = await layered({ ...cached, CONFIG_STORE_REDIS_PREFIX: a.prefix, CONFIG_FILES_DIR: a.dir })
    expect(a.app.store.stats().cache.active && b.app.store.stats().cache.active).toBe(true)
    const key = unique('k')
    await a.post(key, { v: 'old' })
    for (const t of [a, b]) expect((await t.get(key)).json().data.v).toBe('old')
    await redis.set(`${a.prefix}${key}`, JSON.stringify({ v: 'external' }))
    const seen = await holdsWithin(async () => {
      const [ra, rb] = await Promise.all([a.get(key), b.get(key)])
      return ra.json().data.v === 'external' && rb.json().data.v === 'external'
    }, 100)
    expect(seen).toBe(true)
    await redis.del(`${a.prefix}${key}`)
    expect(await holdsWithin(async () => (await b.get(key)).statusCode === 404, 100)).toBe(true)
  })

  it('php_first: a write through one instance is announced to the other through Redis', async () => {
    const env = { ...cached, CONFIG_STORE_MODE: 'php_first' }
    const a = await layered(env)
    const b = await layered({ ...env, CONFIG_STORE_REDIS_PREFIX: a.prefix })
    expect(a.app.store.stats().cache.active && b.app.store.stats().cache.active).toBe(true)
    const key = unique('k')
    await a.post(key, { v: 1 })
    expect((await b.get(key)).json().data.v).toBe(1)
    await a.post(key, { v: 2 })
    expect(await holdsWithin(async () => (await b.get(key)).json().data.v === 2, 100)).toBe(true)
  })
})
