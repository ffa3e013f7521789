// The change feed (docs/api.md "The change feed"): Server-Sent Events over a listening app, on real Redis and in
// files-only mode — live events in order, the document on request, key filters and token limits, heartbeats,
// Last-Event-ID across a restart, the reset event, and two instances serving one feed.
import { writeFileSync } from 'node:fs'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { startRedisServer } from '../../scripts/redis-server.js'
import { AUTH_TOKENS, bearer, buildTestApp, redisClientForFile } from '../helpers/app.js'
import { type SseClient, sse } from '../helpers/sse.js'
import { until } from '../helpers/wait.js'

const modes = {
  redis: {},
  'files only': { REDIS_URL: undefined },
} as const

const LIMITED = 'webhooks-only-token-0123456'
const tokens = JSON.stringify([
  ...JSON.parse(AUTH_TOKENS),
  { name: 'webhooks-only', token: LIMITED, scopes: ['config:read'], keys: ['webhook_config'] },
])
const redis = redisClientForFile()
const HOOK = { webhook_url: 'https://hooks.acme.test/hook' }
const TOKEN_DOC = { mlt_x: { expires_at: null, consumed: false, consumed_at: null, single_use: true } }

describe.each(Object.entries(modes))('%s', (mode, env) => {
  async function instance(extra: Record<string, string | undefined> = {}) {
    const t = await buildTestApp({ AUTH_TOKENS: tokens, ...env, ...extra })
    await t.app.listen({ port: 0, host: '127.0.0.1' })
    const base = `http://127.0.0.1:${(t.app.server.address() as AddressInfo).port}`
    const clients: SseClient[] = []
    const feed = async (query = '', headers: Record<string, string> = bearer('admin')) => {
      const c = await sse(`${base}/api/changes${query}`, headers)
      clients.push(c)
      return c
    }
    const post = (key: string, doc: object) =>
      t.app.inject({ method: 'POST', url: `/api/config/${key}`, headers: bearer('admin'), payload: doc })
    const close = async () => {
      for (const c of clients) c.close()
      await t.app.close()
    }
    return { ...t, feed, post, close }
  }

  it('one change event per revision, in order, with its position; the document only on request', async () => {
    const t = await instance()
    const plain = await t.feed()
    const withDocs = await t.feed('?include=document')
    expect(plain.status).toBe(200)
    expect(plain.headers['content-type']).toBe('text/event-stream; charset=utf-8')
    expect(plain.headers['cache-control']).toBe('no-store')
    await t.post('k', { v: 1 })
    await t.app.inject({ method: 'PATCH', url: '/api/config/k', headers: bearer('write'), payload: { w: 2 } })
    await t.app.inject({ method: 'DELETE', url: '/api/config/k', headers: bearer('admin') })
    const events = await plain.waitFor(3)
    expect(events.map((e) => e.event)).toEqual(['change', 'change', 'change'])
    const ids = events.map((e) => e.id as string)
    expect(new Set(ids).size).toBe(3)
    expect(plain.changes().map((c) => [c.key, c.revision, c.op, c.actor, c.via])).toEqual([
      ['k', 1, 'write', 'admin', 'api'],
      ['k', 2, 'write', 'writer', 'api'],
      ['k', 3, 'delete', 'admin', 'api'],
    ])
    const [first] = plain.changes()
    expect(first).toMatchObject({
      source: mode === 'redis' ? 'redis' : 'files',
      sha256: expect.stringMatching(/^[0-9a-f]{64}$/),
    })
    expect(first).not.toHaveProperty('document')
    expect(plain.changes()[2]?.sha256).toBeNull()
    await withDocs.waitFor(3)
    expect(withDocs.events.map((e) => e.id)).toEqual(ids)
    expect(withDocs.changes().map((c) => c.document)).toEqual([
      expect.objectContaining({ v: 1 }),
      expect.objectContaining({ v: 1, w: 2 }),
      undefined,
    ])
    await t.close()
  })

  it('?keys= filters; a token sees only the keys it may read, and a secret key only with admin', async () => {
    const t = await instance()
    const onlyHook = await t.feed('?keys=webhook_config,polling_config')
    const limited = await t.feed('?include=document', { authorization: `Bearer ${LIMITED}` })
    const reader = await t.feed('?include=document', bearer('read'))
    const admin = await t.feed()
    await t.post('magic_link_tokens', TOKEN_DOC)
    await t.post('other', { v: 1 })
    await t.post('webhook_config', HOOK)
    await admin.waitFor(3)
    await limited.waitFor(1)
    await reader.waitFor(2)
    await onlyHook.waitFor(1)
    expect(admin.changes().map((c) => c.key)).toEqual(['magic_link_tokens', 'other', 'webhook_config'])
    expect(onlyHook.changes().map((c) => c.key)).toEqual(['webhook_config'])
    expect(limited.changes().map((c) => c.key)).toEqual(['webhook_config'])
    expect(reader.changes().map((c) => c.key)).toEqual(['other', 'webhook_config'])
    for (const c of [limited, reader, onlyHook]) expect(JSON.stringify(c.events)).not.toContain('mlt_x')
    // Asking for a key outside the token's limits, or a secret one, is refused outright.
    expect((await t.feed('?keys=other', { authorization: `Bearer ${LIMITED}` })).status).toBe(403)
    expect((await t.feed('?keys=magic_link_tokens', bearer('read'))).status).toBe(403)
    expect((await t.feed('?keys=Bad%20Key')).status).toBe(400)
    expect((await t.feed('', { 'last-event-id': 'not a position', ...bearer('read') })).status).toBe(400)
    expect((await t.feed('?include=everything')).status).toBe(400)
    expect((await t.feed('', {})).status).toBe(401)
    await t.close()
  })

  it('heartbeats keep an idle stream alive; closing the app ends open streams', async () => {
    const t = await instance({ CONFIG_FEED_HEARTBEAT_MS: '100' })
    const c = await t.feed()
    const ready = await t.app.inject({ url: '/ready', headers: bearer('read') })
    expect(ready.json().feeds).toBe(1)
    await new Promise((r) => setTimeout(r, 350))
    expect(c.comments.filter((l) => l === 'heartbeat').length).toBeGreaterThanOrEqual(2)
    await t.app.close()
    await until(() => c.ended)
  })

  it('Last-Event-ID resumes after a restart, with the missed events replayed in order', async () => {
    const a = await instance()
    const c = await a.feed()
    await a.post('k', { v: 1 })
    const [seen] = await c.waitFor(1)
    await a.close()
    // While nobody listens: two changes through another instance…
    const b = await instance({ CONFIG_STORE_REDIS_PREFIX: a.prefix, CONFIG_FILES_DIR: a.dir })
    await b.post('k', { v: 2 })
    await b.post('j', { v: 1 })
    await b.close()
    const restarted = await instance({ CONFIG_STORE_REDIS_PREFIX: a.prefix, CONFIG_FILES_DIR: a.dir })
    // …and one behind the service's back, seen by the new instance.
    if (mode === 'redis') await redis.set(`${a.prefix}k`, '{"v": 3}')
    else writeFileSync(join(a.dir, 'k.json'), '{"v": 3}')
    const history = async () =>
      (await restarted.app.inject({ url: '/api/config/k/history', headers: bearer('read') })).json().revisions
    await until(async () => (await history()).length === 3)
    const resumed = await restarted.feed('', { 'last-event-id': seen?.id as string, ...bearer('admin') })
    await resumed.waitFor(3)
    expect(resumed.changes().map((e) => [e.key, e.revision, e.actor])).toEqual([
      ['k', 2, 'admin'],
      ['j', 1, 'admin'],
      ['k', 3, 'external'],
    ])
    await restarted.close()
  })

  it('a Last-Event-ID older than what is kept gets a reset event, then live events', async () => {
    const t = await instance({ CONFIG_FEED_MAX: '10' })
    const c = await t.feed()
    await t.post('k', { i: 0 })
    const [first] = await c.waitFor(1)
    for (let i = 1; i <= 250; i++) await t.post('k', { i })
    const late = await t.feed('', { 'last-event-id': first?.id as string, ...bearer('admin') })
    await late.waitFor(1)
    expect(late.events[0]?.event).toBe('reset')
    expect(JSON.parse(late.events[0]?.data as string)).toMatchObject({
      reason: expect.stringMatching(/no longer kept/),
    })
    await t.post('k', { i: 'after' })
    await late.waitFor(2)
    expect(late.events.slice(1).map((e) => e.event)).toEqual(['change'])
    expect(late.changes()[0]).toMatchObject({ revision: 252 })
    // A position ahead of the feed (another feed's, or from before a wipe) is a reset too.
    const ahead = await t.feed('', {
      'last-event-id': mode === 'redis' ? '99999999999999-0' : '999999',
      ...bearer('admin'),
    })
    await ahead.waitFor(1)
    expect(ahead.events[0]?.event).toBe('reset')
    await t.close()
  })

  it('two instances serve one feed: a write through one is an event at the other', async () => {
    const a = await instance()
    const b = await instance({ CONFIG_STORE_REDIS_PREFIX: a.prefix, CONFIG_FILES_DIR: a.dir })
    const atB = await b.feed()
    const atA = await a.feed()
    await a.post('k', { v: 'through a' })
    await b.post('k', { v: 'through b' })
    await atB.waitFor(2)
    await atA.waitFor(2)
    expect(atB.changes().map((e) => e.revision)).toEqual([1, 2])
    expect(atA.events.map((e) => e.id)).toEqual(atB.events.map((e) => e.id))
    await a.close()
    await b.close()
  })
})

describe('Redis restarted under an open feed', () => {
  it('the stream is read again from where it was, and no event is lost or repeated', async () => {
    const server = await startRedisServer()
    const t = await buildTestApp({ REDIS_URL: server.url })
    await t.app.listen({ port: 0, host: '127.0.0.1' })
    const url = `http://127.0.0.1:${(t.app.server.address() as AddressInfo).port}/api/changes`
    const c = await sse(url, bearer('read'))
    const post = (v: number) =>
      t.app.inject({ method: 'POST', url: '/api/config/k', headers: bearer('write'), payload: { v } })
    expect((await post(1)).statusCode).toBe(200)
    await c.waitFor(1)
    await server.stop()
    expect((await post(2)).statusCode).toBe(503) // nothing written, no event
    await server.start()
    await until(async () => (await post(3)).statusCode === 200, 10_000)
    await c.waitFor(2, 10_000)
    expect(c.changes().map((e) => e.revision)).toEqual([1, 2])
    c.close()
    await t.app.close()
    await server.stop()
  })
})

describe('a client that does not read', () => {
  it('is told to read again (a reset event) once CONFIG_FEED_BUFFER_BYTES wait for it, let go, and resumes', async () => {
    const t = await buildTestApp({ AUTH_TOKENS: tokens })
    await t.app.listen({ port: 0, host: '127.0.0.1' })
    const base = `http://127.0.0.1:${(t.app.server.address() as AddressInfo).port}`
    const stalled = await sse(`${base}/api/changes?include=document`, bearer('admin'))
    stalled.pause()
    const big = { notes: 'x'.repeat(300_000) }
    for (let i = 0; i < 100; i++)
      await t.app.inject({ method: 'POST', url: '/api/config/k', headers: bearer('admin'), payload: { ...big, i } })
    stalled.resume()
    await until(() => stalled.ended, 10_000)
    const got = stalled.changes().length
    expect(got).toBeLessThan(100)
    const reset = stalled.events.at(-1)
    expect(reset?.event).toBe('reset')
    expect(JSON.parse(reset?.data as string).reason).toMatch(
      /fell more than 1048576 bytes behind \(CONFIG_FEED_BUFFER_BYTES\)/,
    )
    expect(reset?.id).toBe(stalled.events.at(-2)?.id) // resume from the last change it was sent
    const resumed = await sse(`${base}/api/changes`, {
      'last-event-id': stalled.events.at(-1)?.id as string,
      ...bearer('admin'),
    })
    await resumed.waitFor(100 - got)
    expect(resumed.changes()[0]?.revision).toBe(got + 1)
    resumed.close()
    await t.app.close()
  })
})

describe('a stream and a blocking read end with the token that opened them', () => {
  it('a JWT that expires ends its stream, which delivers nothing after; a wait ends at the expiry too', async () => {
    const { hs256, JWT_SECRET } = await import('../helpers/jwt.js')
    const t = await buildTestApp({ REDIS_URL: undefined, JWT_SECRET, AUTH_TOKENS })
    await t.app.listen({ port: 0, host: '127.0.0.1' })
    const base = `http://127.0.0.1:${(t.app.server.address() as AddressInfo).port}`
    const exp = Math.floor(Date.now() / 1000) + 2
    const jwt = hs256({ sub: 'short-lived', scope: 'config:admin', exp })
    const stream = await sse(`${base}/api/changes?include=document`, { authorization: `Bearer ${jwt}` })
    expect(stream.status).toBe(200)
    const etag = (
      await t.app.inject({
        method: 'POST',
        url: '/api/config/k',
        headers: { ...bearer('admin') },
        payload: { v: 1 },
      })
    ).headers.etag as string
    await stream.waitFor(1)
    const waited = await fetch(`${base}/api/config/k?wait=5m`, {
      headers: { authorization: `Bearer ${jwt}`, 'if-none-match': etag },
    })
    expect(waited.status).toBe(304) // answered when the token expired (well within the test's time), not in 5 minutes
    await until(() => stream.ended, 5000)
    await t.app.inject({ method: 'POST', url: '/api/config/k', headers: bearer('admin'), payload: { v: 2 } })
    expect(stream.changes().map((c) => c.revision)).toEqual([1])
    expect(t.app.store.stats().listeners).toBe(0)
    stream.close()
    await t.app.close()
  })
})

describe('a client that leaves during the replay', () => {
  it('leaves no subscription behind', async () => {
    const { connect } = await import('node:net')
    const t = await buildTestApp({ REDIS_URL: undefined, AUTH_TOKENS })
    await t.app.listen({ port: 0, host: '127.0.0.1' })
    const port = (t.app.server.address() as AddressInfo).port
    for (let i = 0; i < 3; i++)
      await t.app.inject({ method: 'POST', url: '/api/config/k', headers: bearer('admin'), payload: { i } })
    // 30 clients that ask for a replay and hang up at once, on raw sockets
    await Promise.all(
      Array.from(
        { length: 30 },
        () =>
          new Promise<void>((resolve) => {
            const socket = connect(port, '127.0.0.1', () => {
              socket.end(
                `GET /api/changes?include=document HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${bearer('admin').authorization.slice(7)}\r\nLast-Event-ID: 0\r\n\r\n`,
              )
              socket.destroy()
              resolve()
            })
          }),
      ),
    )
    await until(() => t.app.store.stats().listeners === 0, 3000)
    // and stays so: nothing comes back to life
    await new Promise((r) => setTimeout(r, 300))
    expect(t.app.store.stats().listeners).toBe(0)
    await t.app.close()
  })
})

describe('long requests are capped per token, per address and in all', () => {
  it('beyond CONFIG_LONG_REQUESTS_PER_CLIENT a stream or a wait is a 429; health and other tokens keep working', async () => {
    const t = await buildTestApp({
      REDIS_URL: undefined,
      AUTH_TOKENS: tokens,
      MAX_CONNECTIONS: '30',
      CONFIG_LONG_REQUESTS_PER_CLIENT: '3',
    })
    await t.app.listen({ port: 0, host: '127.0.0.1' })
    const base = `http://127.0.0.1:${(t.app.server.address() as AddressInfo).port}`
    const etag = (
      await t.app.inject({ method: 'POST', url: '/api/config/k', headers: bearer('admin'), payload: { v: 1 } })
    ).headers.etag as string
    const streams = [await sse(`${base}/api/changes`, bearer('read')), await sse(`${base}/api/changes`, bearer('read'))]
    const waiting = fetch(`${base}/api/config/k?wait=1m`, { headers: { ...bearer('read'), 'if-none-match': etag } })
    await until(() => t.app.longRequests.held === 3)
    const refused = await sse(`${base}/api/changes`, bearer('read'))
    expect(refused.status).toBe(429)
    const refusedWait = await fetch(`${base}/api/config/k?wait=1m`, {
      headers: { ...bearer('read'), 'if-none-match': etag },
    })
    expect(refusedWait.status).toBe(429)
    expect(((await refusedWait.json()) as { message: string }).message).toMatch(
      /the token reader holds 3 change streams and blocking reads already/,
    )
    expect((await fetch(`${base}/health`)).status).toBe(200)
    // the cap per address holds for another token from the same address too
    const otherToken = await sse(`${base}/api/changes`, bearer('admin'))
    expect(otherToken.status).toBe(429)
    // a wait that is answered at once (its tag is not the current one) takes no slot
    expect((await fetch(`${base}/api/config/k?wait=1m`, { headers: bearer('read') })).status).toBe(200)
    streams[0]?.close()
    await until(() => t.app.longRequests.held === 2)
    const again = await sse(`${base}/api/changes`, bearer('read'))
    expect(again.status).toBe(200)
    await t.app.inject({ method: 'POST', url: '/api/config/k', headers: bearer('admin'), payload: { v: 2 } })
    expect((await waiting).status).toBe(200)
    for (const c of [...streams, again, refused, otherToken]) c?.close()
    await t.app.close()
    await expect(buildTestApp({ MAX_CONNECTIONS: '10', CONFIG_LONG_REQUESTS_MAX: '10' })).rejects.toThrow(
      /^CONFIG_LONG_REQUESTS_MAX: must be below MAX_CONNECTIONS \(10\)/,
    )
  })
})
