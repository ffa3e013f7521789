// History (docs/history.md): every change is a revision with its actor, how it came and the hashes around it; the
// routes that list, read, diff and roll back revisions; writes made behind the service recorded as `external`; and
// the audit line. On real Redis and in files-only mode alike.
import { createHash } from 'node:crypto'
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { AUTH_TOKENS, bearer, buildTestApp, redisClientForFile, TOKENS } from '../helpers/app.js'
import { phpServerForFile } from '../helpers/php-server.js'
import { until } from '../helpers/wait.js'

const modes = {
  redis: {},
  'files only': { REDIS_URL: undefined },
} as const

const sha = (doc: unknown) => createHash('sha256').update(JSON.stringify(doc)).digest('hex')
const LIMITED = 'webhooks-only-token-0123456'
const tokens = JSON.stringify([
  ...JSON.parse(AUTH_TOKENS),
  { name: 'webhooks-only', token: LIMITED, scopes: ['config:admin'], keys: ['webhook_config'] },
])
const redis = redisClientForFile()
const php = phpServerForFile()

describe('a burst of writes behind the service', () => {
  it('is observed without a queue of one read per notice: the last state is recorded', async () => {
    const t = await buildTestApp()
    const pipeline = redis.pipeline()
    for (let i = 0; i < 500; i++) pipeline.set(`${t.prefix}k`, JSON.stringify({ i }))
    await pipeline.exec()
    const latest = async () =>
      (await t.app.inject({ url: '/api/config/k/history?limit=1000', headers: bearer('read') })).json().revisions
    await until(async () => (await latest())[0]?.after === sha({ i: 499 }))
    expect((await latest()).length).toBeLessThan(500)
  })
})

describe('a PHP primary (php_first)', () => {
  it('its writes are revisions kept in Redis, with source php; history off, If-Match still holds', async () => {
    for (const [max, history] of [
      ['100', 'redis'],
      ['0', 'off'],
    ] as const) {
      const t = await buildTestApp({
        EXTERNAL_CONFIG_BASE_URL: php.url,
        CONFIG_API_TOKEN: php.token,
        CONFIG_STORE_MODE: 'php_first',
        CONFIG_HISTORY_MAX: max,
      })
      const post = (doc: object, headers = {}) =>
        t.app.inject({
          method: 'POST',
          url: '/api/config/k',
          headers: { ...bearer('write'), ...headers },
          payload: doc,
        })
      const first = await post({ v: 1 })
      expect(first.json().meta).toMatchObject({ source: 'php', revision: history === 'off' ? null : 1 })
      expect((await post({ v: 2 }, { 'if-match': first.headers.etag })).statusCode).toBe(200)
      expect((await post({ v: 3 }, { 'if-match': first.headers.etag })).statusCode).toBe(412)
      const res = await t.app.inject({ url: '/api/config/k/history', headers: bearer('read') })
      if (history === 'off') {
        expect(res.statusCode).toBe(404)
        continue
      }
      expect(res.json().revisions.map((r: { revision: number; source: string }) => [r.revision, r.source])).toEqual([
        [2, 'php'],
        [1, 'php'],
      ])
      expect(await redis.llen(`${t.prefix}:history:{${t.prefix}k}`)).toBe(2)
      // The revision is of the document as PHP stores it (with its own `_updated_at`), as reads serve it.
      const read = await t.app.inject({ url: '/api/config/k', headers: bearer('read') })
      expect(res.json().revisions[0].after).toBe(sha(read.json().data))
    }
  })
})

describe('Redis', () => {
  it('a change made while no instance ran is recorded, as external, before the next write through the service', async () => {
    const a = await buildTestApp()
    const post = (app: typeof a.app, doc: object) =>
      app.inject({ method: 'POST', url: '/api/config/k', headers: bearer('write'), payload: doc })
    await post(a.app, { v: 1 })
    await a.app.close()
    await redis.set(`${a.prefix}k`, '{"v": "while down"}')
    const b = await buildTestApp({ CONFIG_STORE_REDIS_PREFIX: a.prefix, CONFIG_FILES_DIR: a.dir })
    expect((await post(b.app, { v: 3 })).json().meta.revision).toBe(3)
    const revisions = (await b.app.inject({ url: '/api/config/k/history', headers: bearer('read') })).json().revisions
    expect(revisions.map((r: { revision: number; actor: string }) => [r.revision, r.actor])).toEqual([
      [3, 'writer'],
      [2, 'external'],
      [1, 'writer'],
    ])
    expect(revisions[1].after).toBe(sha({ v: 'while down' }))
  })

  it('trimming drops the documents of the revisions it drops, several at once when CONFIG_HISTORY_MAX is lowered', async () => {
    const a = await buildTestApp()
    const docs = `${a.prefix}:docs:{${a.prefix}k}`
    const post = (app: typeof a.app, doc: object) =>
      app.inject({ method: 'POST', url: '/api/config/k', headers: bearer('write'), payload: doc })
    for (let i = 1; i <= 6; i++) await post(a.app, { i })
    await a.app.close()
    const b = await buildTestApp({
      CONFIG_STORE_REDIS_PREFIX: a.prefix,
      CONFIG_FILES_DIR: a.dir,
      CONFIG_HISTORY_MAX: '2',
    })
    expect((await post(b.app, { i: 7 })).json().meta.revision).toBe(7)
    expect((await redis.hkeys(docs)).sort()).toEqual(['6', '7', 'head'])
    const revisions = (await b.app.inject({ url: '/api/config/k/history', headers: bearer('read') })).json().revisions
    expect(revisions.map((r: { revision: number }) => r.revision)).toEqual([7, 6])
  })

  it('a history kept without its head field (an earlier version) goes on from its latest revision', async () => {
    const t = await buildTestApp()
    const post = (doc: object) =>
      t.app.inject({ method: 'POST', url: '/api/config/k', headers: bearer('write'), payload: doc })
    const first = await post({ v: 1 })
    await redis.hdel(`${t.prefix}:docs:{${t.prefix}k}`, 'head')
    const second = await post({ v: 2 })
    expect(second.json().meta.revision).toBe(2)
    const [latest] = (await t.app.inject({ url: '/api/config/k/history', headers: bearer('read') })).json().revisions
    expect(latest).toMatchObject({ revision: 2, before: sha(first.json().data), after: sha(second.json().data) })
    expect(await redis.hget(`${t.prefix}:docs:{${t.prefix}k}`, 'head')).toBe(`2 ${sha(second.json().data)}`)
  })

  it('a feed name holding something else fails the write before anything is written', async () => {
    const t = await buildTestApp()
    await redis.set(`${t.prefix}:changes`, 'not a stream')
    const res = await t.app.inject({
      method: 'POST',
      url: '/api/config/k',
      headers: bearer('write'),
      payload: { v: 1 },
    })
    expect(res.statusCode).toBe(503)
    expect(
      await redis.exists(`${t.prefix}k`, `${t.prefix}:history:{${t.prefix}k}`, `${t.prefix}:docs:{${t.prefix}k}`),
    ).toBe(0)
  })
})

describe.each(Object.entries(modes))('%s', (mode, env) => {
  async function world(extra: Record<string, string | undefined> = {}) {
    const t = await buildTestApp({ AUTH_TOKENS: tokens, ...env, ...extra })
    const call = (method: 'GET' | 'POST' | 'PATCH' | 'DELETE', url: string, payload?: object, headers = {}) =>
      t.app.inject({ method, url, headers: { ...bearer('admin'), ...headers }, ...(payload ? { payload } : {}) })
    const history = async (key: string, query = '') =>
      (await call('GET', `/api/config/${key}/history${query}`)).json().revisions as Array<Record<string, unknown>>
    /** A write made behind the service's back, as the legacy app or an operator would make it. */
    const external = async (key: string, doc: object) => {
      if (mode === 'redis') await redis.set(`${t.prefix}${key}`, JSON.stringify(doc, null, 1))
      else writeFileSync(join(t.dir, `${key}.json`), JSON.stringify(doc, null, 2))
    }
    return { ...t, call, history, external }
  }

  it('every write is a revision: its number, actor, via, and the sha256 before and after; writes answer it', async () => {
    const t = await world()
    const posted = await t.call('POST', '/api/config/k', { v: 1 }, bearer('write'))
    expect(posted.headers['x-config-revision']).toBe('1')
    expect(posted.json().meta.revision).toBe(1)
    const patched = await t.call('PATCH', '/api/config/k', { w: 2 })
    expect([patched.headers['x-config-revision'], patched.json().meta.revision]).toEqual(['2', 2])
    const deleted = await t.call('DELETE', '/api/config/k')
    expect(deleted.json().revision).toBe(3)
    const again = await t.call('POST', '/api/config/k', { v: 4 })
    const revisions = await t.history('k')
    expect(revisions.map((r) => [r.revision, r.op, r.actor, r.via])).toEqual([
      [4, 'write', 'admin', 'api'],
      [3, 'delete', 'admin', 'api'],
      [2, 'write', 'admin', 'api'],
      [1, 'write', 'writer', 'api'],
    ])
    expect(revisions[0]?.source).toBe(mode === 'redis' ? 'redis' : 'files')
    // The hashes chain: each revision's `before` is the previous one's `after`; `after` is the document's sha256.
    expect(revisions[3]).toMatchObject({ before: null, after: sha(posted.json().data) })
    expect(revisions[2]).toMatchObject({ before: sha(posted.json().data), after: sha(patched.json().data) })
    expect(revisions[1]).toMatchObject({ before: sha(patched.json().data), after: null })
    expect(revisions[0]).toMatchObject({ before: null, after: sha(again.json().data) })
    // The ETag is the same digest.
    expect(Buffer.from(JSON.parse(again.headers.etag as string), 'base64url').toString('hex')).toBe(revisions[0]?.after)
    expect(Date.parse(revisions[0]?.time as string)).toBeGreaterThan(Date.parse(revisions[3]?.time as string) - 1)
    // Paging: older than revision 3, at most 1.
    expect((await t.history('k', '?before=3&limit=1')).map((r) => r.revision)).toEqual([2])
    expect((await t.call('GET', '/api/config/k/history?limit=0')).statusCode).toBe(400)
    expect((await t.call('GET', '/api/config/k/history?before=x')).statusCode).toBe(400)
    expect(await t.history('never_written')).toEqual([])
  })

  it('the legacy route is via legacy-api; an audit line per change names actor, key, revision, via and hashes', async () => {
    const t = await world()
    const res = await t.call('POST', '/config_api.php', {
      key: 'magic_link_tokens',
      config: { mlt_secret: { expires_at: null, consumed: false, consumed_at: null, single_use: true } },
    })
    expect(res.statusCode).toBe(200)
    const [latest] = await t.history('magic_link_tokens')
    expect(latest).toMatchObject({ revision: 1, actor: 'admin', via: 'legacy-api' })
    const audit = t.logs.find((l) => l.audit === true && l.key === 'magic_link_tokens')
    expect(audit).toMatchObject({ level: 30, actor: 'admin', via: 'legacy-api', revision: 1, after: latest?.after })
    expect(audit).toHaveProperty('before', null)
    // A secret document's content is never in it.
    expect(JSON.stringify(t.logs)).not.toContain('mlt_secret')
  })

  it('?revision=N reads that revision (with its ETag, 304 on If-None-Match); unknown and deleted revisions are 404', async () => {
    const t = await world()
    const first = await t.call('POST', '/api/config/k', { v: 1 })
    await t.call('POST', '/api/config/k', { v: 2 })
    const old = await t.call('GET', '/api/config/k?revision=1', undefined, bearer('read'))
    expect(old.statusCode).toBe(200)
    expect(old.json()).toMatchObject({
      data: first.json().data,
      meta: { revision: 1, updated_at: first.json().meta.updated_at },
    })
    expect(old.headers.etag).toBe(first.headers.etag)
    expect(
      (await t.call('GET', '/api/config/k?revision=1', undefined, { 'if-none-match': old.headers.etag })).statusCode,
    ).toBe(304)
    const missing = await t.call('GET', '/api/config/k?revision=9')
    expect([missing.statusCode, missing.json().code]).toEqual([404, 'REVISION_NOT_FOUND'])
    await t.call('DELETE', '/api/config/k')
    expect((await t.call('GET', '/api/config/k?revision=3')).json().code).toBe('CONFIG_NOT_FOUND')
    expect((await t.call('GET', '/api/config/k?revision=0')).statusCode).toBe(400)
    expect((await t.call('GET', '/api/config/k?revision=1&wait=1s')).statusCode).toBe(400)
  })

  it('diff: an RFC 6902 JSON Patch between two revisions, or to now', async () => {
    const t = await world()
    await t.call('POST', '/api/config/k', { a: 1, list: [1, 2], gone: true })
    await t.call('POST', '/api/config/k', { a: 2, list: [1], added: 'x' })
    const d = (await t.call('GET', '/api/config/k/diff?from=1&to=2', undefined, bearer('read'))).json()
    expect(d).toMatchObject({ key: 'k', from: 1, to: 2 })
    const ops = (d.patch as Array<{ op: string; path: string }>).filter((o) => o.path !== '/_updated_at')
    expect(ops).toEqual(
      expect.arrayContaining([
        { op: 'replace', path: '/a', value: 2 },
        { op: 'remove', path: '/list/1' },
        { op: 'remove', path: '/gone' },
        { op: 'add', path: '/added', value: 'x' },
      ]),
    )
    expect(ops).toHaveLength(4)
    await t.call('PATCH', '/api/config/k', { a: 3 })
    const toNow = (await t.call('GET', '/api/config/k/diff?from=2')).json()
    expect(toNow.to).toBeNull()
    expect(toNow.patch).toContainEqual({ op: 'replace', path: '/a', value: 3 })
    expect((await t.call('GET', '/api/config/k/diff?from=7')).json().code).toBe('REVISION_NOT_FOUND')
    expect((await t.call('GET', '/api/config/k/diff')).statusCode).toBe(400)
    await t.call('DELETE', '/api/config/k')
    expect((await t.call('GET', '/api/config/k/diff?from=4&to=1')).json()).toMatchObject({
      code: 'BAD_REQUEST',
      message: expect.stringMatching(/revision 4 of k is a delete/),
    })
  })

  it('rollback writes an old document as a new revision, stamped now; one that fails today’s schema is 400 and writes nothing', async () => {
    const t = await world()
    const first = await t.call('POST', '/api/config/k', { v: 'first' })
    await t.call('POST', '/api/config/k', { v: 'second' })
    const back = await t.call('POST', '/api/config/k/rollback', { revision: 1 }, bearer('write'))
    expect(back.statusCode).toBe(200)
    expect(back.json()).toMatchObject({ data: { v: 'first' }, meta: { revision: 3 } })
    expect(back.json().meta.updated_at).not.toBe(first.json().meta.updated_at)
    expect(back.headers['x-config-revision']).toBe('3')
    expect((await t.history('k'))[0]).toMatchObject({ revision: 3, via: 'rollback', actor: 'writer' })
    // If-Match applies.
    const stale = await t.call('POST', '/api/config/k/rollback', { revision: 2 }, { 'if-match': first.headers.etag })
    expect(stale.statusCode).toBe(412)
    // A document the schema refuses today (written behind the service) cannot come back.
    await t.call('POST', '/api/config/polling_config', { active_days: [1, 2] })
    await t.external('polling_config', { active_days: [9] })
    await until(async () => (await t.history('polling_config')).length === 2)
    const [externalRev] = await t.history('polling_config')
    expect(externalRev).toMatchObject({ revision: 2, actor: 'external', via: 'external' })
    await t.call('POST', '/api/config/polling_config', { active_days: [3] })
    const refused = await t.call('POST', '/api/config/polling_config/rollback', { revision: 2 })
    expect([refused.statusCode, refused.json().code]).toEqual([400, 'VALIDATION_FAILED'])
    expect((await t.history('polling_config')).length).toBe(3)
    expect((await t.call('GET', '/api/config/polling_config')).json().data.active_days).toEqual([3])
    expect((await t.call('POST', '/api/config/k/rollback', { revision: 99 })).statusCode).toBe(404)
    expect((await t.call('POST', '/api/config/k/rollback', { revision: 'one' })).statusCode).toBe(400)
    expect((await t.call('POST', '/api/config/k/rollback', {}, bearer('read'))).statusCode).toBe(403)
  })

  it('a write behind the service is an external revision, once; the next write through the service follows it', async () => {
    const t = await world()
    await t.call('POST', '/api/config/k', { v: 1 })
    await t.external('k', { v: 'by hand' })
    await until(async () => (await t.history('k')).length === 2)
    const [ext, own] = await t.history('k')
    expect(ext).toMatchObject({
      revision: 2,
      actor: 'external',
      via: 'external',
      op: 'write',
      after: sha({ v: 'by hand' }),
    })
    expect(ext?.before).toBe(own?.after)
    await t.call('POST', '/api/config/k', { v: 3 })
    const revisions = await t.history('k')
    expect(revisions.map((r) => r.revision)).toEqual([3, 2, 1])
    expect(revisions[0]?.before).toBe(ext?.after)
    expect((await t.call('GET', '/api/config/k?revision=2')).json().data).toEqual({ v: 'by hand' })
  })

  it('a write whose revision cannot be recorded still answers 200, says it has none, and warns', async () => {
    const t = await world()
    await t.call('POST', '/api/config/k', { v: 1 })
    if (mode === 'redis') {
      // The history list of the key replaced by a string: the script refuses, and nothing is written.
      await redis.set(`${t.prefix}:history:{${t.prefix}k}`, 'not a list')
      const res = await t.call('POST', '/api/config/k', { v: 2 })
      expect(res.statusCode).toBe(503)
      expect((await t.call('GET', '/api/config/k')).json().data).toMatchObject({ v: 1 })
      return
    }
    mkdirSync(join(t.dir, '.history', 'other.jsonl'), { recursive: true }) // a journal file that cannot be read
    const res = await t.call('POST', '/api/config/other', { v: 2 })
    expect(res.statusCode).toBe(200)
    expect(res.json().meta.revision).toBeNull()
    expect(res.headers['x-config-revision']).toBeUndefined()
    expect(t.logs.find((l) => l.level === 40 && /revision could not be recorded/.test(String(l.msg)))).toBeDefined()
    expect((await t.call('GET', '/api/config/other')).json().data).toMatchObject({ v: 2 })
  })

  it('CONFIG_HISTORY_MAX=0 turns history off: writes say they made no revision; history and the feed are 404', async () => {
    const t = await world({ CONFIG_HISTORY_MAX: '0' })
    const res = await t.call('POST', '/api/config/k', { v: 1 })
    expect([res.statusCode, res.json().meta.revision]).toEqual([200, null])
    expect((await t.call('PATCH', '/api/config/k', { w: 1 }, { 'if-match': res.headers.etag })).statusCode).toBe(200)
    expect((await t.call('DELETE', '/api/config/k')).json().revision).toBeNull()
    for (const url of ['/api/config/k/history', '/api/config/k?revision=1', '/api/changes']) {
      const off = await t.call('GET', url)
      expect([off.statusCode, off.json().message], url).toEqual([404, expect.stringMatching(/history is off/)])
    }
    expect((await t.call('GET', '/ready')).json().history).toBe('off')
    expect(t.logs.filter((l) => l.level >= 40)).toEqual([])
  })

  it('CONFIG_HISTORY_MAX bounds the revisions kept per key', async () => {
    const t = await world({ CONFIG_HISTORY_MAX: '3' })
    for (let i = 1; i <= 20; i++) await t.call('POST', '/api/config/k', { i })
    expect((await t.history('k')).map((r) => r.revision)).toEqual([20, 19, 18])
    expect((await t.call('GET', '/api/config/k?revision=17')).json().code).toBe('REVISION_NOT_FOUND')
    expect((await t.call('GET', '/api/config/k?revision=18')).json().data).toMatchObject({ i: 18 })
  })

  it('20 concurrent PATCHes: 20 revisions, numbered without gaps or repeats', async () => {
    const t = await world()
    await t.call('POST', '/api/config/k', { base: true })
    const answers = await Promise.all(
      Array.from({ length: 20 }, (_, i) => t.call('PATCH', '/api/config/k', { [`f${i}`]: i })),
    )
    expect(answers.map((a) => a.statusCode)).toEqual(Array(20).fill(200))
    expect(answers.map((a) => a.json().meta.revision).sort((a, b) => a - b)).toEqual(
      Array.from({ length: 20 }, (_, i) => i + 2),
    )
    expect((await t.history('k')).map((r) => r.revision)).toEqual(Array.from({ length: 21 }, (_, i) => 21 - i))
  })

  it('history follows the key rules: a secret key is admin only; a token limited to some keys sees only theirs', async () => {
    const t = await world()
    await t.call('POST', '/api/config/magic_link_tokens', {
      mlt_x: { expires_at: null, consumed: false, consumed_at: null, single_use: true },
    })
    await t.call('POST', '/api/config/polling_config', { active_days: [1] })
    await t.call('POST', '/api/config/webhook_config', { webhook_url: 'https://hooks.acme.test/hook' })
    for (const url of [
      '/api/config/magic_link_tokens/history',
      '/api/config/magic_link_tokens?revision=1',
      '/api/config/magic_link_tokens/diff?from=1',
    ]) {
      const res = await t.call('GET', url, undefined, bearer('write'))
      expect(res.statusCode, url).toBe(403)
      expect(res.body).not.toContain('mlt_x')
    }
    const limited = { authorization: `Bearer ${LIMITED}` }
    expect((await t.call('GET', '/api/config/polling_config/history', undefined, limited)).statusCode).toBe(403)
    expect((await t.call('POST', '/api/config/polling_config/rollback', { revision: 1 }, limited)).statusCode).toBe(403)
    expect((await t.call('GET', '/api/config/webhook_config/history', undefined, limited)).statusCode).toBe(200)
    expect((await t.call('GET', '/api/config/Bad Key/history')).statusCode).toBe(400)
    expect((await t.call('GET', '/api/config/magic_link_tokens/history')).json().revisions).toHaveLength(1)
    expect((await t.app.inject({ url: '/api/config/k/history' })).statusCode).toBe(401)
    expect(
      (await t.app.inject({ url: '/api/config/k/history', headers: { authorization: `Bearer ${TOKENS.read}x` } }))
        .statusCode,
    ).toBe(401)
  })
})

describe('a history page in Redis', () => {
  it('reads only the revisions it answers, not the whole list', async () => {
    const t = await buildTestApp({ CONFIG_HISTORY_MAX: '500' })
    for (let i = 1; i <= 120; i++)
      await t.app.inject({ method: 'POST', url: '/api/config/k', headers: bearer('admin'), payload: { i } })
    const { Redis } = await import('ioredis')
    const { inject } = await import('vitest')
    const monitor = await new Redis(inject('redisUrl')).monitor()
    const ranges: string[][] = []
    monitor.on('monitor', (_time: string, args: string[]) => {
      if (args[0]?.toLowerCase() === 'lrange' && args[1]?.startsWith(t.prefix)) ranges.push(args.slice(2))
    })
    const page = async (query: string) =>
      (await t.app.inject({ url: `/api/config/k/history?${query}`, headers: bearer('read') })).json()
        .revisions as Array<{
        revision: number
      }>
    expect((await page('limit=5')).map((r) => r.revision)).toEqual([120, 119, 118, 117, 116])
    expect((await page('limit=3&before=50')).map((r) => r.revision)).toEqual([49, 48, 47])
    expect((await page('limit=3&before=2')).map((r) => r.revision)).toEqual([1])
    const doc = await t.app.inject({ url: '/api/config/k?revision=7', headers: bearer('read') })
    expect(doc.json().data.i).toBe(7)
    await until(() => ranges.length >= 3)
    expect(ranges).toEqual([
      ['0', '4'],
      ['71', '73'],
      ['119', '121'],
    ])
    monitor.disconnect()
  })
})

describe('a value in Redis that is not a document', () => {
  it('is replaced by a write, and removed by a delete, each recorded with its sha256 and a note', async () => {
    const t = await buildTestApp()
    const corrupt = '{"salary": '
    const corruptSha = createHash('sha256').update(corrupt).digest('hex')
    await redis.set(`${t.prefix}k`, corrupt)
    const read = await t.app.inject({ url: '/api/config/k', headers: bearer('read') })
    expect(read.statusCode).toBe(503) // it cannot be served
    const write = await t.app.inject({
      method: 'POST',
      url: '/api/config/k',
      headers: bearer('admin'),
      payload: { a: 1 },
    })
    expect(write.statusCode).toBe(200)
    expect(JSON.parse((await redis.get(`${t.prefix}k`)) as string).a).toBe(1)
    await redis.set(`${t.prefix}k`, corrupt)
    const del = await t.app.inject({ method: 'DELETE', url: '/api/config/k', headers: bearer('admin') })
    expect(del.statusCode).toBe(200)
    expect(await redis.get(`${t.prefix}k`)).toBeNull()
    const revisions = (await t.app.inject({ url: '/api/config/k/history', headers: bearer('read') })).json().revisions
    expect(revisions).toMatchObject([
      { revision: 2, op: 'delete', before: corruptSha, note: 'the copy it replaced could not be parsed' },
      { revision: 1, op: 'write', before: corruptSha, note: 'the copy it replaced could not be parsed' },
    ])
    expect(t.logs.some((l) => l.audit === true && l.revision === 1 && l.before === corruptSha)).toBe(true)
  })
})
