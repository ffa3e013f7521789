import { Redis } from 'ioredis'
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest'
import { createRedisLayer } from '../../stores/redis-layer.js'
import { uniquePrefix } from '../helpers/app.js'
import { layerContract } from './contract.js'

const url = inject('redisUrl')
const client = () => new Redis(url, { enableOfflineQueue: false, maxRetriesPerRequest: 0, lazyConnect: true })

layerContract('redis', async () => {
  const redis = client()
  await redis.connect()
  return {
    layer: createRedisLayer({ redis, prefix: uniquePrefix() }),
    breakIt: async () => redis.disconnect(),
    cleanup: async () => redis.disconnect(),
  }
})

describe('redis layer: the legacy layout', () => {
  let redis: Redis
  let other: Redis
  beforeAll(async () => {
    redis = client()
    other = new Redis(url)
    await redis.connect()
  })
  afterAll(() => {
    redis.disconnect()
    other.disconnect()
  })

  it('stores <prefix><key> as a plain JSON string with UTF-8 unescaped, no TTL', async () => {
    const prefix = uniquePrefix()
    const store = createRedisLayer({ redis, prefix })
    await store.set('webhook_config', {
      webhook_url: 'https://hooks.acme.test/é',
      _updated_at: '2026-11-21T09:15:02.123Z',
    })
    const raw = await other.get(`${prefix}webhook_config`)
    expect(raw).toContain('https://hooks.acme.test/é') // not \u00e9
    expect(JSON.parse(raw as string)._updated_at).toBe('2026-11-21T09:15:02.123Z')
    expect(await other.type(`${prefix}webhook_config`)).toBe('string')
    expect(await other.ttl(`${prefix}webhook_config`)).toBe(-1)
  })

  it('a text the service wrote is read back without a parse; another text is parsed again', async () => {
    const prefix = uniquePrefix()
    const layer = createRedisLayer({ redis, prefix })
    const json = '{"v":1,"_updated_at":"2026-12-02T00:00:00.000Z"}'
    await redis.set(`${prefix}k`, json)
    layer.wrote?.('k', json, '2026-12-02T00:00:00.000Z', '"tag"')
    expect(await layer.get('k')).toMatchObject({ state: 'hit', reused: true, json, etag: '"tag"' })
    await other.set(`${prefix}k`, '{"v": 2}')
    expect(await layer.get('k')).toMatchObject({ state: 'hit', reused: false, json: '{"v":2}' })
  })

  it('reads what the legacy Python app wrote (its json.dumps spacing, ensure_ascii=False)', async () => {
    const prefix = uniquePrefix()
    await other.set(
      `${prefix}runtime_flags`,
      '{"gmail_ingress_enabled": true, "note": "été", "_updated_at": "2026-01-19T00:36:24+00:00"}',
    )
    const read = await createRedisLayer({ redis, prefix }).get('runtime_flags')
    expect(read).toMatchObject({ state: 'hit', doc: { gmail_ingress_enabled: true, note: 'été' } })
    // Served in compact form, whatever the writer's spacing.
    expect(read.state === 'hit' && read.json).toBe(
      '{"gmail_ingress_enabled":true,"note":"été","_updated_at":"2026-01-19T00:36:24+00:00"}',
    )
  })

  it('lists keys with SCAN and skips metadata names that cannot be config keys', async () => {
    const prefix = uniquePrefix()
    const store = createRedisLayer({ redis, prefix })
    await store.set('alpha', { a: 1 })
    await other.set(`${prefix}:migration_lock`, 'x')
    await other.set(`${prefix}alpha:history`, 'x')
    await other.set(`${prefix}Bad Key`, '{}')
    await other.set(`other:${prefix}beta`, '{}')
    expect(await store.listKeys()).toEqual(['alpha'])
  })

  it('answers unavailable, not a document, for a value that is not a JSON object', async () => {
    const prefix = uniquePrefix()
    await other.set(`${prefix}broken`, 'not json{')
    await other.set(`${prefix}array`, '[1,2]')
    const store = createRedisLayer({ redis, prefix })
    expect((await store.get('broken')).state).toBe('unavailable')
    expect((await store.get('array')).state).toBe('unavailable')
  })

  it('escapes glob characters of the prefix when scanning', async () => {
    const prefix = `${uniquePrefix()}[x]*`
    const store = createRedisLayer({ redis, prefix })
    await store.set('gamma', { g: 1 })
    await other.set(`${prefix.replace('[x]*', 'x')}delta`, '{}')
    expect(await store.listKeys()).toEqual(['gamma'])
  })
})
