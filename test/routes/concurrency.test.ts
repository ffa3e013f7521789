// Optimistic concurrency: every read answers a strong ETag, If-None-Match gives 304, and POST, PATCH and DELETE
// honour If-Match / If-None-Match: * atomically — in Redis by a Lua swap, across instances, and in files-only mode
// by writes serialised per key. PATCH without If-Match is atomic too.
import { describe, expect, it } from 'vitest'
import { bearer, buildTestApp } from '../helpers/app.js'

const modes = {
  redis: {},
  'files only': { REDIS_URL: undefined },
} as const

describe.each(Object.entries(modes))('%s', (_mode, env) => {
  async function world(extra: Record<string, string | undefined> = {}) {
    const t = await buildTestApp({ ...env, ...extra })
    const write = (method: 'POST' | 'PATCH' | 'DELETE', key: string, payload?: object, headers = {}) =>
      t.app.inject({
        method,
        url: `/api/config/${key}`,
        headers: { ...bearer('admin'), ...headers },
        ...(payload ? { payload } : {}),
      })
    const read = (key: string, headers = {}) =>
      t.app.inject({ url: `/api/config/${key}`, headers: { ...bearer('read'), ...headers } })
    return { ...t, write, read }
  }

  it('a read answers a strong ETag, the one its write answered; If-None-Match with it is a 304', async () => {
    const t = await world()
    const written = await t.write('POST', 'k', { v: 1 })
    const etag = written.headers.etag as string
    expect(etag).toMatch(/^"[\w-]{43}"$/)
    const read = await t.read('k')
    expect(read.headers.etag).toBe(etag)
    expect((await t.read('k')).headers.etag).toBe(etag) // from the cache, the same
    const same = await t.read('k', { 'if-none-match': etag })
    expect([same.statusCode, same.body, same.headers.etag]).toEqual([304, '', etag])
    expect((await t.read('k', { 'if-none-match': `W/${etag}` })).statusCode).toBe(304) // weak comparison
    expect((await t.read('k', { 'if-none-match': '"other"' })).statusCode).toBe(200)
    const changed = await t.write('POST', 'k', { v: 2 })
    expect(changed.headers.etag).not.toBe(etag)
    expect((await t.read('k', { 'if-none-match': etag })).statusCode).toBe(200)
  })

  it('If-Match: the current tag writes; a stale one, or a key that does not exist, is 412 and writes nothing', async () => {
    const t = await world()
    const first = (await t.write('POST', 'k', { v: 1 })).headers.etag as string
    const second = await t.write('POST', 'k', { v: 2 }, { 'if-match': first })
    expect(second.statusCode).toBe(200)
    const stale = await t.write('POST', 'k', { v: 3 }, { 'if-match': first })
    expect(stale.statusCode).toBe(412)
    expect(stale.json()).toMatchObject({ code: 'PRECONDITION_FAILED' })
    expect((await t.write('PATCH', 'k', { w: 1 }, { 'if-match': first })).statusCode).toBe(412)
    expect((await t.write('POST', 'k', { v: 4 }, { 'if-match': `W/${second.headers.etag}` })).statusCode).toBe(412)
    expect((await t.read('k')).json().data).toMatchObject({ v: 2 })
    expect((await t.read('k')).json().data).not.toHaveProperty('w')
    expect((await t.write('POST', 'absent', { v: 1 }, { 'if-match': '*' })).statusCode).toBe(412)
    expect((await t.read('absent')).statusCode).toBe(404)
    expect((await t.write('PATCH', 'k', { w: 1 }, { 'if-match': '*' })).statusCode).toBe(200)
  })

  it('If-None-Match: * creates only', async () => {
    const t = await world()
    expect((await t.write('POST', 'new_key', { v: 1 }, { 'if-none-match': '*' })).statusCode).toBe(200)
    const again = await t.write('POST', 'new_key', { v: 2 }, { 'if-none-match': '*' })
    expect(again.statusCode).toBe(412)
    expect((await t.read('new_key')).json().data).toMatchObject({ v: 1 })
  })

  it('DELETE with a stale If-Match is 412 and deletes nothing; with the current one it deletes', async () => {
    const t = await world()
    const first = (await t.write('POST', 'k', { v: 1 })).headers.etag as string
    const current = (await t.write('POST', 'k', { v: 2 })).headers.etag as string
    expect((await t.write('DELETE', 'k', undefined, { 'if-match': first })).statusCode).toBe(412)
    expect((await t.read('k')).statusCode).toBe(200)
    const deleted = await t.write('DELETE', 'k', undefined, { 'if-match': current })
    expect(deleted.statusCode).toBe(200)
    expect(Object.values(deleted.json().layers)).toContain('deleted')
    expect((await t.read('k')).statusCode).toBe(404)
  })

  it('20 concurrent merge-patches of different fields leave all 20 fields', async () => {
    const t = await world()
    await t.write('POST', 'k', { base: true })
    const answers = await Promise.all(
      Array.from({ length: 20 }, (_, i) => t.write('PATCH', 'k', { [`field_${i}`]: i })),
    )
    expect(answers.map((a) => a.statusCode)).toEqual(Array(20).fill(200))
    const data = (await t.read('k')).json().data
    for (let i = 0; i < 20; i++) expect(data[`field_${i}`], `field_${i}`).toBe(i)
    expect(data.base).toBe(true)
  })
})

describe('across instances on one Redis', () => {
  it('an If-Match write through one instance fails once another instance has written; concurrent PATCHes through both keep every field', async () => {
    const a = await buildTestApp()
    const b = await buildTestApp({ CONFIG_STORE_REDIS_PREFIX: a.prefix, CONFIG_FILES_DIR: a.dir })
    const post = (app: typeof a.app, payload: object, headers = {}) =>
      app.inject({ method: 'POST', url: '/api/config/k', headers: { ...bearer('write'), ...headers }, payload })
    const tag = (await post(a.app, { v: 1 })).headers.etag as string
    expect((await post(b.app, { v: 2 }, { 'if-match': tag })).statusCode).toBe(200)
    expect((await post(a.app, { v: 3 }, { 'if-match': tag })).statusCode).toBe(412)
    const patches = Array.from({ length: 20 }, (_, i) =>
      (i % 2 ? a : b).app.inject({
        method: 'PATCH',
        url: '/api/config/k',
        headers: bearer('write'),
        payload: { [`f${i}`]: i },
      }),
    )
    expect((await Promise.all(patches)).map((r) => r.statusCode)).toEqual(Array(20).fill(200))
    const data = (await a.app.inject({ url: '/api/config/k', headers: bearer('read') })).json().data
    expect(Object.keys(data).filter((f) => f.startsWith('f'))).toHaveLength(20)
  })
})
