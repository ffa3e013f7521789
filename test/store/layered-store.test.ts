// The layered store on its own: in-memory layers, a real cache, a real last-known-good in a temp directory, and no
// Redis, PHP, files or app. What each rule of docs/architecture.md means for reads, writes, deletes and listings.
import { describe, expect, it } from 'vitest'
import { ConfigCache } from '../../src/store/cache.js'
import { createJournal } from '../../src/store/history/journal.js'
import { LastKnownGood } from '../../src/store/last-known-good.js'
import { createConfigStore, type StoreOptions } from '../../src/store/layered-store.js'
import { createValidator } from '../../src/store/validation.js'
import type { Layer } from '../../stores/layer.js'
import { captureLogger, tempDir } from '../helpers/app.js'
import { type MemoryLayer, memoryLayer } from '../helpers/memory-layer.js'

const OLD = '2026-01-01T00:00:00.000Z'
const NEW = '2026-06-01T00:00:00.000Z'

function storeOf(layers: MemoryLayer[], options: Omit<Partial<StoreOptions>, 'lkg'> & { lkg?: boolean } = {}) {
  const { logger, lines } = captureLogger('debug')
  const lkg = options.lkg ? new LastKnownGood(tempDir('lkg'), logger) : undefined
  const store = createConfigStore({
    layers: layers as Layer[],
    validator: createValidator({ unknownKeys: 'allow' }),
    cache: new ConfigCache({ ttlMs: 60_000, maxBytes: 1 << 20 }),
    log: logger,
    history: createJournal({ dir: tempDir('journal'), max: 100, feedMax: 1000 }),
    ...options,
    lkg,
  })
  return { store, logs: lines }
}

const error = (promise: Promise<unknown>) =>
  promise.then(
    () => 'no error',
    (err: { code?: string }) => err.code,
  )

describe('reads', () => {
  it('the first layer in order that holds the key wins; none holding it is a 404', async () => {
    const redis = memoryLayer('redis', { a: { from: 'redis' } })
    const files = memoryLayer('files', { a: { from: 'files' }, b: { from: 'files' } })
    const { store } = storeOf([redis, files])
    expect(await store.read('a')).toMatchObject({ source: 'redis', json: '{"from":"redis"}' })
    expect(await store.read('b')).toMatchObject({ source: 'files', json: '{"from":"files"}' })
    expect(await error(store.read('c'))).toBe('CONFIG_NOT_FOUND')
    expect(await error(store.read('Not A Key'))).toBe('INVALID_KEY')
  })

  it('a read is cached, and served from the cache without touching a layer', async () => {
    const redis = memoryLayer('redis', { a: { v: 1 } })
    const { store } = storeOf([redis])
    expect(store.readCached('a')).toBeUndefined()
    await store.read('a')
    const reads = redis.calls.get
    expect(store.readCached('a')).toMatchObject({ json: '{"v":1}' })
    await store.read('a')
    expect(redis.calls.get).toBe(reads)
    expect(store.stats().cache).toMatchObject({ active: true, entries: 1 })
  })

  it('a layer down: the next one answers (a fallback, logged once), and absence cannot be proven', async () => {
    const redis = memoryLayer('redis', { a: { from: 'redis' } })
    const files = memoryLayer('files', { a: { from: 'files' } })
    const { store, logs } = storeOf([redis, files])
    redis.down = true
    for (let i = 0; i < 3; i++) expect(await store.read('a')).toMatchObject({ source: 'files' })
    expect(logs.filter((l) => /\(fallback\)/.test(l.msg))).toHaveLength(1)
    expect(await error(store.read('nowhere'))).toBe('STORE_UNAVAILABLE')
    expect(store.stats().unavailable.redis).toBeGreaterThanOrEqual(2)
  })

  it('a layer down whose last-known-good copy is newer than the fallback: that copy, marked stale', async () => {
    const redis = memoryLayer('redis', { a: { v: 'redis', _updated_at: NEW } })
    const files = memoryLayer('files', { a: { v: 'files', _updated_at: OLD }, b: { v: 'files', _updated_at: NEW } })
    const { store } = storeOf([redis, files], { lkg: true })
    await store.readFrom('redis', 'a')
    await store.readFrom('redis', 'b').catch(() => undefined) // absent in redis: nothing remembered
    redis.down = true
    store.forget('a')
    expect(await store.read('a')).toMatchObject({
      source: 'redis',
      stale: true,
      json: '{"v":"redis","_updated_at":"2026-06-01T00:00:00.000Z"}',
    })
    expect(await store.read('b')).toMatchObject({ source: 'files' })
    expect((await store.read('b')).stale).toBeUndefined()
  })

  it('readFrom reads one layer only and names an unconfigured one', async () => {
    const redis = memoryLayer('redis', { a: { v: 1 } })
    const { store } = storeOf([redis, memoryLayer('files')])
    expect(await store.readFrom('redis', 'a')).toMatchObject({ source: 'redis' })
    expect(await error(store.readFrom('files', 'a'))).toBe('CONFIG_NOT_FOUND')
    expect(await error(store.readFrom('php', 'a'))).toBe('BAD_REQUEST')
  })
})

describe('writes', () => {
  it('validated, stamped now, written to the primary only, and the cached value dropped', async () => {
    const redis = memoryLayer('redis', { a: { v: 1 } })
    const files = memoryLayer('files')
    const { store } = storeOf([redis, files])
    await store.read('a')
    const before = Date.now()
    const w = await store.write('a', { v: 2, _updated_at: OLD })
    expect(Date.parse(w.updatedAt)).toBeGreaterThanOrEqual(before)
    expect(redis.docs.get('a')).toEqual({ v: 2, _updated_at: w.updatedAt })
    expect(files.docs.size).toBe(0)
    expect(store.readCached('a')).toBeUndefined()
    expect(await error(store.write('polling_config', { active_days: [9] }))).toBe('VALIDATION_FAILED')
  })

  it('the primary down: 503 and nothing written anywhere', async () => {
    const redis = memoryLayer('redis')
    const files = memoryLayer('files')
    const { store } = storeOf([redis, files])
    redis.down = true
    expect(await error(store.write('a', { v: 1 }))).toBe('STORE_UNAVAILABLE')
    expect(redis.docs.size + files.docs.size).toBe(0)
  })

  it('an unknown outcome is settled by reading back: landed is a success, not landed is WRITE_OUTCOME_UNKNOWN', async () => {
    const redis = memoryLayer('redis')
    const { store } = storeOf([redis])
    redis.failNextSet = 'applied'
    expect((await store.write('a', { v: 1 })).json).toMatch(/^\{"v":1,/)
    redis.failNextSet = 'lost'
    expect(await error(store.write('b', { v: 1 }))).toBe('WRITE_OUTCOME_UNKNOWN')
  })

  it('a read that began before a write never caches the value the write replaced', async () => {
    const redis = memoryLayer('redis', { a: { v: 'old' } })
    const { store } = storeOf([redis])
    const slow = redis.holdReads()
    const reading = store.read('a') // has read 'old', its answer still in flight …
    await store.write('a', { v: 'new' }) // … while this lands
    slow.release()
    expect(JSON.parse((await reading).json).v).toBe('old') // what it read, answered …
    expect(store.readCached('a')).toBeUndefined() // … but never cached over the acknowledged write
    expect(JSON.parse((await store.read('a')).json).v).toBe('new')
  })

  it('PATCH merges into the effective document (RFC 7396); a legacy file name is never written', async () => {
    const { store } = storeOf([memoryLayer('redis', { a: { keep: 1, drop: 2, deep: { x: 1 } } })])
    const w = await store.patch('a', { drop: null, deep: { y: 2 } })
    expect(JSON.parse(w.json)).toMatchObject({ keep: 1, deep: { x: 1, y: 2 } })
    expect(JSON.parse(w.json)).not.toHaveProperty('drop')
    expect(await error(store.patch('missing', { a: 1 }))).toBe('CONFIG_NOT_FOUND')
  })

  it('CONFIG_MAX_KEYS: a new key beyond the quota is refused, an existing one stays writable', async () => {
    const { store } = storeOf([memoryLayer('redis', { a: {}, b: {} })], { maxKeys: 2 })
    expect(await error(store.write('c', { v: 1 }))).toBe('QUOTA_EXCEEDED')
    expect((await store.write('a', { v: 1 })).key).toBe('a')
  })
})

describe('deletes and listings', () => {
  it('a delete reaches every layer; a layer down is a 503 naming it; nothing anywhere is a 404', async () => {
    const redis = memoryLayer('redis', { a: {}, b: {} })
    const files = memoryLayer('files', { a: {}, b: {} })
    const { store } = storeOf([redis, files])
    expect(await store.remove('a')).toEqual({ layers: { redis: 'deleted', files: 'deleted' }, revision: 1 })
    expect(await error(store.remove('a'))).toBe('CONFIG_NOT_FOUND')
    files.down = true
    const refused = await store.remove('b').catch((err) => err)
    expect(refused).toMatchObject({
      code: 'STORE_UNAVAILABLE',
      details: [
        { path: 'redis', message: 'deleted' },
        { path: 'files', message: 'unavailable' },
      ],
    })
  })

  it('a listing is complete, or an error: every key any layer holds and every built-in key', async () => {
    const redis = memoryLayer('redis', { team_flags: { v: 1 } })
    const files = memoryLayer('files', { polling_config: { active_days: [1] } })
    const { store } = storeOf([redis, files])
    const listed = await store.list()
    expect(listed.find((k) => k.key === 'team_flags')).toEqual({
      key: 'team_flags',
      source: 'redis',
      updated_at: null,
      schema: 'none',
    })
    expect(listed.find((k) => k.key === 'polling_config')).toMatchObject({ source: 'files', schema: 'builtin' })
    expect(listed.find((k) => k.key === 'webhook_config')).toMatchObject({ source: null, schema: 'builtin' })
    redis.down = true
    expect(await error(store.list())).toBe('STORE_UNAVAILABLE')
  })

  it('import is all or nothing: a write that fails puts back what was already written', async () => {
    const redis = memoryLayer('redis', { a: { v: 'before' } })
    const { store } = storeOf([redis])
    redis.refuse.add('c')
    const failed = await store
      .importBundle({ a: { v: 'imported' }, b: { v: 'imported' }, c: { v: 1 } })
      .catch((err) => err)
    expect(failed.message).toMatch(/^import failed at c .*; rolled back a, b$/)
    expect(redis.docs.get('a')).toEqual({ v: 'before' })
    expect(redis.docs.has('b')).toBe(false)
    expect(await store.importBundle({ a: { v: 'x', _updated_at: OLD } }, { dryRun: true })).toEqual({
      keys: ['a'],
      unchanged: [],
      primary: 'redis',
      dryRun: true,
    })
    expect(await error(store.importBundle({ polling_config: { active_days: [9] } }))).toBe('VALIDATION_FAILED')
  })

  it('health probes each layer at most once a second, and reports what could not be answered', async () => {
    const redis = memoryLayer('redis')
    const { store } = storeOf([redis, memoryLayer('files')])
    redis.down = true
    await store.read('a').catch(() => undefined)
    const [first] = await Promise.all([store.health(), store.health(), store.health()])
    expect(first[0]).toEqual({ layer: 'redis', ok: false, latencyMs: 0, error: 'redis is down', unavailable: 1 })
    expect(redis.calls.health).toBe(1)
    expect(store.stats()).toMatchObject({ layers: ['redis', 'files'], primary: 'redis', unavailable: { redis: 1 } })
  })
})
