// The cache and its invalidation without Redis: what is kept, for how long, within what bound, and when it is not
// trusted at all. The Redis side of invalidation (tracking, the announce channel) is tested against a real
// redis-server in test/layering.test.ts and test/truth.test.ts.
import { EventEmitter } from 'node:events'
import type { Redis } from 'ioredis'
import { describe, expect, it } from 'vitest'
import { ConfigCache } from '../../src/store/cache.js'
import { changedKeys, revisedKeys, startInvalidation } from '../../src/store/invalidation.js'
import { captureLogger } from '../helpers/app.js'

const value = (key: string, json = '{"v":1}') => ({ key, json, source: 'redis' as const, updatedAt: null })

describe('ConfigCache', () => {
  it('a read is refused only when its own key (or every key) was invalidated while it ran', () => {
    const cache = new ConfigCache({ ttlMs: 60_000, maxBytes: 1 << 20 })
    const started = cache.epoch
    cache.invalidate('other') // a write elsewhere, meanwhile
    cache.set(value('a'), started)
    expect(cache.get('a')?.json).toBe('{"v":1}')
    const again = cache.epoch
    cache.invalidate('a')
    cache.set(value('a', '{"v":"old"}'), again)
    expect(cache.get('a')).toBeUndefined()
    const beforeClear = cache.epoch
    cache.clear()
    cache.set(value('b'), beforeClear)
    expect(cache.get('b')).toBeUndefined()
    cache.set(value('b'), cache.epoch) // a read that began after all of it
    expect(cache.get('b')).toBeDefined()
  })

  it('past 10,000 keys remembered, an invalidation counts for every read in flight', () => {
    const cache = new ConfigCache({ ttlMs: 60_000, maxBytes: 1 << 20 })
    const started = cache.epoch
    for (let i = 0; i < 10_000; i++) cache.invalidate(`k${i}`)
    cache.set(value('a'), started)
    expect(cache.get('a')).toBeDefined() // 10,000 others: still told apart
    const next = cache.epoch
    cache.invalidate('one-more')
    cache.set(value('b'), next)
    expect(cache.get('b')).toBeUndefined()
  })

  it('keeps a value until it is invalidated; a value read before an invalidation is refused', () => {
    const cache = new ConfigCache({ ttlMs: 60_000, maxBytes: 1 << 20 })
    const epoch = cache.epoch
    cache.set(value('a'), epoch)
    expect(cache.get('a')?.json).toBe('{"v":1}')
    cache.invalidate('a')
    expect(cache.get('a')).toBeUndefined()
    cache.set(value('a', '{"v":"old"}'), epoch) // read before the invalidation
    expect(cache.get('a')).toBeUndefined()
    cache.set(value('a', '{"v":2}'), cache.epoch)
    expect(cache.get('a')?.json).toBe('{"v":2}')
  })

  it('a TTL of 0 is no cache; an expired entry is dropped; a shorter TTL never outlives the configured one', () => {
    const off = new ConfigCache({ ttlMs: 0, maxBytes: 1 << 20 })
    off.set(value('a'), off.epoch)
    expect(off.get('a')).toBeUndefined()
    const cache = new ConfigCache({ ttlMs: 60_000, maxBytes: 1 << 20 })
    cache.set(value('a'), cache.epoch, -1) // already expired
    expect(cache.get('a')).toBeUndefined()
    expect(cache.size).toBe(0)
  })

  it('is bounded in bytes: the oldest entries go first', () => {
    const cache = new ConfigCache({ ttlMs: 60_000, maxBytes: 20_000 })
    for (let i = 0; i < 20; i++) cache.set(value(`k${i}`, `"${'x'.repeat(1000)}"`), cache.epoch)
    expect(cache.bytes).toBeLessThanOrEqual(20_000)
    expect(cache.get('k0')).toBeUndefined()
    expect(cache.get('k19')).toBeDefined()
  })

  it('switched off, it answers nothing and forgets everything', () => {
    const cache = new ConfigCache({ ttlMs: 60_000, maxBytes: 1 << 20 })
    cache.set(value('a'), cache.epoch)
    cache.setActive(false)
    expect(cache.get('a')).toBeUndefined()
    cache.setActive(true)
    expect(cache.get('a')).toBeUndefined()
  })
})

describe('invalidation notices', () => {
  it('tracking messages name prefixed keys; the announce channel names one key; a flush is every key', () => {
    const p = 'r:ss:config:'
    expect(changedKeys('__redis__:invalidate', [Buffer.from(`${p}a`), Buffer.from(`${p}b`)], p)).toEqual(['a', 'b'])
    expect(changedKeys('__redis__:invalidate', null, p)).toEqual([null])
    // The service's own names are no config keys; a key written with its revision is told apart.
    const withRevision = [`${p}:changes`, `${p}:history:{${p}a}`, `${p}a`, `${p}b`].map((n) => Buffer.from(n))
    expect(changedKeys('__redis__:invalidate', withRevision, p)).toEqual(['a', 'b'])
    expect([...revisedKeys(withRevision, p)]).toEqual(['a'])
    expect([...revisedKeys(null, p)]).toEqual([])
    expect(changedKeys(`${p}:invalidate`, Buffer.from('webhook_config'), p)).toEqual(['webhook_config'])
    expect(changedKeys('some:other:channel', Buffer.from('x'), p)).toEqual([])
  })

  /** A Redis connection as far as the invalidation uses one: its status, its events, and the commands it sends. */
  function fakeConnection(fail?: string) {
    const connection = Object.assign(new EventEmitter(), {
      status: 'ready',
      sent: [] as string[],
      async call(...args: string[]) {
        connection.sent.push(args.join(' '))
        if (fail !== undefined && args.includes('ON')) throw new Error(fail)
        return 'OK'
      },
      client: async () => 7,
      subscribe: async () => 2,
      publish: async () => 1,
    })
    return connection
  }

  it('the cache is trusted only while both connections are up and tracking is on', async () => {
    const cache = new ConfigCache({ ttlMs: 60_000, maxBytes: 1 << 20 })
    const [redis, subscriber] = [fakeConnection(), fakeConnection()]
    const { logger } = captureLogger()
    const changes: Array<string | null> = []
    const invalidation = startInvalidation({
      redis: redis as unknown as Redis,
      subscriber: subscriber as unknown as Redis,
      prefix: 'p:',
      cache,
      log: logger,
      onChange: (key) => changes.push(key),
    })
    await invalidation.settled()
    expect(cache.active).toBe(true)
    expect(redis.sent).toContain('CLIENT TRACKING ON REDIRECT 7 BCAST PREFIX p: NOLOOP')
    cache.set(value('a'), cache.epoch)
    subscriber.emit('messageBuffer', Buffer.from('__redis__:invalidate'), [Buffer.from('p:a')])
    expect(cache.get('a')).toBeUndefined()
    expect(changes).toEqual(['a'])
    subscriber.emit('close')
    expect(cache.active).toBe(false)
    subscriber.emit('ready')
    await invalidation.settled()
    expect(cache.active).toBe(true)
  })

  it('a Redis that refuses CLIENT TRACKING (before 6.0, or an ACL without it) leaves the cache off, and says so', async () => {
    const cache = new ConfigCache({ ttlMs: 60_000, maxBytes: 1 << 20 })
    const { logger, lines } = captureLogger()
    const invalidation = startInvalidation({
      redis: fakeConnection("ERR unknown subcommand 'TRACKING'") as unknown as Redis,
      subscriber: fakeConnection() as unknown as Redis,
      prefix: 'p:',
      cache,
      log: logger,
    })
    await invalidation.settled()
    expect(cache.active).toBe(false)
    expect(lines.some((l) => l.level === 40 && /cache bypassed/.test(l.msg))).toBe(true)
  })
})
