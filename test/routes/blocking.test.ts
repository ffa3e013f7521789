// Blocking reads: GET …?wait= with If-None-Match naming the current ETag answers when the document changes — by a
// write through this or another instance, an external Redis write, or a file edited by hand — or 304 when the wait
// ends. A wait that never woke would run past the test's timeout: these tests fail rather than pass slowly.
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { bearer, buildTestApp, redisClientForFile } from '../helpers/app.js'
import { until } from '../helpers/wait.js'

const redis = redisClientForFile()

async function world(env: Record<string, string | undefined> = {}) {
  const t = await buildTestApp(env)
  const post = (payload: object, app = t.app) =>
    app.inject({ method: 'POST', url: '/api/config/k', headers: bearer('write'), payload })
  const waitFor = (etag: string, wait = '60s', app = t.app) =>
    app.inject({ url: `/api/config/k?wait=${wait}`, headers: { ...bearer('read'), 'if-none-match': etag } })
  const waiting = async () => (await t.app.inject({ url: '/ready' })).json().waiting as number
  return { ...t, post, waitFor, waiting }
}

describe('blocking reads', () => {
  it('answer as soon as a write through this instance changes the document; /ready counts the wait', async () => {
    const t = await world({ REDIS_URL: undefined })
    const etag = (await t.post({ v: 1 })).headers.etag as string
    const answer = t.waitFor(etag)
    await until(async () => (await t.waiting()) === 1)
    await t.post({ v: 2 })
    const res = await answer
    expect(res.statusCode).toBe(200)
    expect(res.json().data).toMatchObject({ v: 2 })
    expect(res.headers.etag).not.toBe(etag)
    expect(await t.waiting()).toBe(0)
  })

  it('answer 304 with the same ETag when the wait ends unchanged; without a matching tag, at once', async () => {
    const t = await world({ REDIS_URL: undefined })
    const etag = (await t.post({ v: 1 })).headers.etag as string
    const unchanged = await t.waitFor(etag, '300ms')
    expect([unchanged.statusCode, unchanged.headers.etag]).toEqual([304, etag])
    const stale = await t.waitFor('"an-older-one"')
    expect(stale.statusCode).toBe(200) // not the current tag: the current document at once
    expect((await t.app.inject({ url: '/api/config/k?wait=soon', headers: bearer('read') })).statusCode).toBe(400)
  })

  it('wake on a write through another instance, and on an external redis-cli SET', async () => {
    const a = await world()
    const b = await buildTestApp({ CONFIG_STORE_REDIS_PREFIX: a.prefix, CONFIG_FILES_DIR: a.dir })
    const etag = (await a.post({ v: 1 })).headers.etag as string
    const first = a.waitFor(etag)
    await until(async () => (await a.waiting()) === 1)
    await a.post({ v: 2 }, b.app)
    const woke = await first
    expect(woke.json().data).toMatchObject({ v: 2 })
    const second = a.waitFor(woke.headers.etag as string)
    await until(async () => (await a.waiting()) === 1)
    await redis.set(`${a.prefix}k`, JSON.stringify({ v: 'external' }))
    expect((await second).json().data).toEqual({ v: 'external' })
  })

  it('files only: wake on a file edited by hand', async () => {
    const t = await world({ REDIS_URL: undefined })
    const etag = (await t.post({ v: 1 })).headers.etag as string
    const answer = t.waitFor(etag)
    await until(async () => (await t.waiting()) === 1)
    writeFileSync(join(t.dir, 'k.json'), JSON.stringify({ v: 'by hand' }))
    expect((await answer).json().data).toEqual({ v: 'by hand' })
  })

  it('end when the client goes away', async () => {
    const t = await world({ REDIS_URL: undefined })
    const etag = (await t.post({ v: 1 })).headers.etag as string
    await t.app.listen({ host: '127.0.0.1', port: 0 })
    const { port } = t.app.server.address() as { port: number }
    const gone = new AbortController()
    const request = fetch(`http://127.0.0.1:${port}/api/config/k?wait=5m`, {
      headers: { ...bearer('read'), 'if-none-match': etag },
      signal: gone.signal,
    }).catch((err: Error) => err.name)
    await until(async () => (await t.waiting()) === 1)
    gone.abort()
    expect(await request).toBe('AbortError')
    await until(async () => (await t.waiting()) === 0)
  })

  it('end when the service closes, instead of holding the close until the wait is over', async () => {
    const t = await world({ REDIS_URL: undefined })
    const etag = (await t.post({ v: 1 })).headers.etag as string
    const answer = t.waitFor(etag, '5m')
    await until(async () => (await t.waiting()) === 1)
    await t.app.close()
    expect((await answer).statusCode).toBe(304)
  })
})
