// The command connection's write coalescing (src/store/open-redis.ts), on a real Redis: the commands of one turn of
// the event loop leave in one socket write (counted as this process's write system calls, Linux /proc/self/io), and
// a large one is not held back for the turn's end.
import { readFileSync } from 'node:fs'
import type { Redis } from 'ioredis'
import { describe, expect, it } from 'vitest'
import { buildTestApp, layerOf } from '../helpers/app.js'

const writeCalls = () => Number(/syscw:\s+(\d+)/.exec(readFileSync('/proc/self/io', 'utf8'))?.[1])

describe('the Redis command connection', () => {
  it('sends the commands of one turn in one write, each answered for itself', async () => {
    const t = await buildTestApp()
    const redis = layerOf(t.app.store, 'redis')
    await t.app.store.write('k0', { n: 0 })
    await redis.get('k0') // connected and warm
    const before = writeCalls()
    const reads = await Promise.all(Array.from({ length: 200 }, (_, i) => redis.get(`k${i % 2}`)))
    const writes = writeCalls() - before
    expect(reads[0]).toMatchObject({ state: 'hit', doc: { n: 0 } })
    expect(reads[1]).toEqual({ state: 'absent' })
    expect(reads.filter((r) => r.state === 'hit')).toHaveLength(100)
    // One write for the 200 GETs (and a few of the test runner's own); one write per command would be 200.
    expect(writes).toBeLessThan(20)
  })

  it('sends a large command at once rather than holding it behind the others of its turn', async () => {
    const t = await buildTestApp()
    const client = t.app.redis as Redis
    await client.get('warm')
    const small = client.get(`${t.prefix}small`) // the first of a turn: the socket is corked until the turn ends
    expect(client.stream.writableCorked).toBe(1)
    const big = client.set(`${t.prefix}big`, 'x'.repeat(100_000)) // over 64 KB: the batch leaves now
    expect(client.stream.writableCorked).toBe(0)
    expect(await Promise.all([small, big])).toEqual([null, 'OK'])
    expect(await client.strlen(`${t.prefix}big`)).toBe(100_000)
  })
})
