// Redis under Sentinel (README "Running highly available"): a real topology on loopback — 1 master, 2 replicas,
// 3 Sentinels — and two instances that reach it through REDIS_SENTINELS. Through a SENTINEL FAILOVER and a SIGKILL of
// the master, under a steady read and write load: reads never fail, both instances follow the new master, and
// invalidation works again afterwards.
import { Redis } from 'ioredis'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type SentinelTopology, startSentinelTopology } from '../scripts/redis-server.js'
import { bearer, buildTestApp } from './helpers/app.js'
import { sleep, until } from './helpers/wait.js'

let topology: SentinelTopology
let sentinel: Redis
beforeAll(async () => {
  topology = await startSentinelTopology()
  sentinel = new Redis({ port: topology.sentinelPorts[0] as number })
}, 60_000)
afterAll(async () => {
  sentinel?.disconnect()
  await topology?.stop()
})

async function masterPort(): Promise<number> {
  const [, port] = (await sentinel.call('SENTINEL', 'GET-MASTER-ADDR-BY-NAME', topology.name)) as [string, string]
  return Number(port)
}

describe('Redis under Sentinel', () => {
  it('a master group the Sentinels do not know: one ERROR line naming the variables, reads served from files', async () => {
    const t = await buildTestApp({
      REDIS_URL: undefined,
      REDIS_SENTINELS: topology.sentinels,
      REDIS_SENTINEL_NAME: 'no-such-group',
    })
    await until(async () => t.logs.some((l) => l.level === 50), 5000, 20)
    const errors = t.logs.filter((l) => l.level === 50).map((l) => String(l.msg))
    expect(errors).toEqual([expect.stringMatching(/REDIS_SENTINELS .*no-such-group.*REDIS_SENTINEL_NAME/)])
    const ready = (await t.app.inject({ url: '/ready', headers: bearer('read') })).json()
    expect(ready.degraded).toBe(true)
    expect(ready.redis).toEqual({ topology: 'sentinel', master: null })
  })

  it('three failovers under load: no acknowledged write lost, reads never fail, invalidation comes back', async () => {
    const env = {
      REDIS_URL: undefined,
      REDIS_SENTINELS: topology.sentinels,
      REDIS_SENTINEL_NAME: topology.name,
      REDIS_WRITE_REPLICAS: '1',
      CONFIG_HISTORY_MAX: '100000',
    }
    const a = await buildTestApp(env)
    const b = await buildTestApp({ ...env, CONFIG_STORE_REDIS_PREFIX: a.prefix })
    const get = async (t: typeof a, key: string) =>
      (await t.app.inject({ url: `/api/config/${key}`, headers: bearer('read') })).json()
    const ready = async (t: typeof a) => (await t.app.inject({ url: '/ready', headers: bearer('read') })).json()
    let counter = 0
    const write = () =>
      a.app.inject({ method: 'POST', url: '/api/config/counter', headers: bearer('write'), payload: { n: ++counter } })

    expect((await write()).statusCode).toBe(200)
    expect((await get(b, 'counter')).data).toMatchObject({ n: 1 })
    const external = {
      method: 'POST',
      url: '/api/config/external',
      headers: bearer('write'),
      payload: { v: 0 },
    } as const
    expect((await a.app.inject(external)).statusCode).toBe(200)
    const first = await masterPort()
    expect((await ready(a)).redis).toEqual({ topology: 'sentinel', master: `127.0.0.1:${first}` })
    const anonymous = (await a.app.inject({ url: '/ready' })).json()
    expect(anonymous.redis).toEqual({ topology: 'sentinel' }) // no host or port for anonymous probes

    // A steady load on both instances while the failovers happen: reads, and writers that each count up one key as
    // fast as they are answered. Every acknowledged write is kept with its counter and revision.
    const reads = { ok: 0, failed: [] as unknown[] }
    const writes: Record<string, number> = {}
    const acknowledged: Array<{ key: string; n: number; revision: number }> = []
    let loading = true
    let phase = 'before'
    const reader = (async () => {
      while (loading) {
        for (const t of [a, b]) {
          const r = await get(t, 'counter')
          if (r.status === 'success') reads.ok++
          else reads.failed.push({ ...r, phase, instance: t === a ? 'a' : 'b', at: (await ready(t)).redis?.master })
        }
        await sleep(5)
      }
    })()
    const writer = async (key: string) => {
      for (let n = 1; loading; n++) {
        const t = n % 2 === 0 ? a : b
        const w = await t.app.inject({
          method: 'POST',
          url: `/api/config/${key}`,
          headers: bearer('write'),
          payload: { n },
        })
        const outcome = w.statusCode === 200 ? 'ok' : String(w.json().code)
        writes[outcome] = (writes[outcome] ?? 0) + 1
        if (w.statusCode === 200) acknowledged.push({ key, n, revision: w.json().meta.revision })
        else await sleep(5)
      }
    }
    const load = Promise.all([reader, ...['w0', 'w1', 'w2'].map(writer)])

    try {
      // (A Sentinel refuses a new failover while it still reconfigures the replicas after the last one, or while no
      // replica has synced with the new master yet.)
      const forced = () =>
        until(
          () =>
            sentinel.call('SENTINEL', 'FAILOVER', topology.name).then(
              () => true,
              (err: Error) => {
                if (!/^(INPROG|NOGOODSLAVE)/.test(err.message)) throw err
                return false
              },
            ),
          20_000,
          200,
        )
      const failovers: Array<[string, () => Promise<unknown>]> = [
        ['SENTINEL FAILOVER', forced],
        ['a second SENTINEL FAILOVER', forced],
        ['SIGKILL of the master', async () => topology.nodes.find((n) => n.port === (masterPortNow as number))?.kill()],
      ]
      let masterPortNow = first
      for (const [what, failover] of failovers) {
        const before = masterPortNow
        phase = `${what}: started`
        await failover()
        await until(async () => (await masterPort()) !== before, 20_000, 100)
        masterPortNow = await masterPort()
        phase = `${what}: sentinel names ${masterPortNow}`
        // Both instances write to the new master, and take its change notices again.
        for (const t of [a, b])
          await until(async () => (await ready(t)).redis?.master === `127.0.0.1:${masterPortNow}`, 20_000, 100)
        await until(async () => (await write()).statusCode === 200, 10_000, 100)
        phase = `${what}: done`
        const admin = new Redis({ port: masterPortNow })
        try {
          // Both hold the current value in their caches: only a change notice can tell them it changed.
          // (A read that overlaps any invalidation does not fill the cache, and the load writes all the time: read
          // until one does.)
          for (const t of [a, b])
            await until(
              async () =>
                (await get(t, 'external')).status === 'success' && t.app.store.readCached('external') !== undefined,
              5000,
              20,
            )
          const value = { v: what, _updated_at: new Date().toISOString() }
          await admin.set(`${a.prefix}external`, JSON.stringify(value))
          const started = Date.now()
          for (const t of [a, b]) await until(async () => (await get(t, 'external')).data?.v === what, 1000, 5)
          expect(Date.now() - started, `${what}: the external write seen by both instances`).toBeLessThanOrEqual(200)
        } finally {
          admin.disconnect()
        }
      }
    } finally {
      // Stopped also when a check above fails: the load must not outlive the test's instances.
      loading = false
      await load
    }
    expect(reads.failed).toEqual([])
    expect(reads.ok).toBeGreaterThan(0)
    expect(Object.keys(writes).every((o) => ['ok', 'STORE_UNAVAILABLE', 'WRITE_OUTCOME_UNKNOWN'].includes(o))).toBe(
      true,
    )
    // Every acknowledged write is in the last master's history, as that revision, with its counter; and each key
    // holds its last acknowledged counter or a later one.
    expect(acknowledged.length).toBeGreaterThan(100)
    const admin = new Redis({ port: await masterPort() })
    try {
      const lost: typeof acknowledged = []
      for (const w of acknowledged) {
        const doc = await admin.hget(`${a.prefix}:docs:{${a.prefix}${w.key}}`, String(w.revision))
        if (doc === null || JSON.parse(doc).n !== w.n) lost.push(w)
      }
      expect(
        lost,
        `${lost.length} of ${acknowledged.length} acknowledged writes lost (${JSON.stringify(writes)})`,
      ).toEqual([])
      for (const key of ['w0', 'w1', 'w2']) {
        const last = Math.max(...acknowledged.filter((w) => w.key === key).map((w) => w.n))
        expect(JSON.parse((await admin.get(`${a.prefix}${key}`)) as string).n).toBeGreaterThanOrEqual(last)
      }
    } finally {
      admin.disconnect()
    }
  }, 120_000)

  it('REDIS_READ_FROM=replica: while the master is down, a replica serves what it holds, marked stale', async () => {
    const env = { REDIS_URL: undefined, REDIS_SENTINELS: topology.sentinels, REDIS_SENTINEL_NAME: topology.name }
    const port = await masterPort()
    const prefix = `test:replica-reads:${Date.now()}:`
    const admin = new Redis({ port })
    await admin.set(`${prefix}lagging`, JSON.stringify({ v: 2, _updated_at: new Date().toISOString() }))
    await admin.wait(1, 1000)
    admin.disconnect()
    // Neither instance has read the key: no last-known-good copy of it anywhere.
    const withReplica = await buildTestApp({ ...env, CONFIG_STORE_REDIS_PREFIX: prefix, REDIS_READ_FROM: 'replica' })
    const plain = await buildTestApp({ ...env, CONFIG_STORE_REDIS_PREFIX: prefix })
    const read = async (t: typeof plain) =>
      (await t.app.inject({ url: '/api/config/lagging', headers: bearer('read') })).json()
    await topology.nodes.find((n) => n.port === port)?.kill()
    // Until a Sentinel promotes the replica (a second or more), the master is gone.
    await until(async () => (await read(withReplica)).meta?.stale === true, 1000, 10)
    const fromPlain = await read(plain)
    const stale = await read(withReplica)
    expect(stale.data.v).toBe(2)
    expect(stale.meta).toMatchObject({ source: 'redis', stale: true })
    expect(withReplica.logs.some((l) => /served lagging from a redis replica \(stale/.test(l.msg))).toBe(true)
    expect(fromPlain.code).toBe('STORE_UNAVAILABLE')
  }, 30_000)
})
