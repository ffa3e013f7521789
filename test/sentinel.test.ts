// Redis under Sentinel (README "Running highly available"): a real topology on loopback — 1 master, 2 replicas,
// 3 Sentinels — and two instances that reach it through REDIS_SENTINELS. Through a SENTINEL FAILOVER and a SIGKILL of
// the master, under a steady read and write load: reads never fail, both instances follow the new master, and
// invalidation works again afterwards.
import { Redis } from 'ioredis'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type SentinelTopology, startSentinelTopology } from '../scripts/redis-server.js'
import { bearer, buildTestApp } from './helpers/app.js'
import { allASingleRedisDoes, servedFromReplica, startFailoverLoad } from './helpers/ha.js'
import { until } from './helpers/wait.js'

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

  it('does all a single Redis does, through the master the Sentinels name', async () => {
    const env = { REDIS_URL: undefined, REDIS_SENTINELS: topology.sentinels, REDIS_SENTINEL_NAME: topology.name }
    const a = await buildTestApp(env)
    const b = await buildTestApp({ ...env, CONFIG_STORE_REDIS_PREFIX: a.prefix })
    const keys = ['k0', 'k1', 'k2', 'k3']
    for (const key of keys)
      expect(
        (await a.app.inject({ method: 'POST', url: `/api/config/${key}`, headers: bearer('write'), payload: { key } }))
          .statusCode,
      ).toBe(200)
    const admin = new Redis({ port: await masterPort() })
    try {
      await allASingleRedisDoes(a, b, keys, (name, value) => admin.set(name, value))
    } finally {
      admin.disconnect()
    }
  })

  it('three failovers under load: no acknowledged write lost, reads never fail, invalidation comes back', async () => {
    const env = {
      REDIS_URL: undefined,
      REDIS_SENTINELS: topology.sentinels,
      REDIS_SENTINEL_NAME: topology.name,
      REDIS_WRITE_REPLICAS: '1',
      REDIS_WRITE_REPLICAS_TIMEOUT_MS: '2000',
      REDIS_COMMAND_TIMEOUT_MS: '5000',
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

    // A steady load on both instances while the failovers happen.
    const load = startFailoverLoad(a, b, { reads: ['counter'], writes: ['w0', 'w1', 'w2'] })

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
        load.phase = `${what}: started`
        await failover()
        await until(async () => (await masterPort()) !== before, 20_000, 100)
        masterPortNow = await masterPort()
        load.phase = `${what}: sentinel names ${masterPortNow}`
        // Both instances write to the new master, and take its change notices again.
        for (const t of [a, b])
          await until(async () => (await ready(t)).redis?.master === `127.0.0.1:${masterPortNow}`, 20_000, 100)
        await until(async () => (await write()).statusCode === 200, 10_000, 100)
        load.phase = `${what}: done`
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
      await load.stop()
    }
    const admin = new Redis({ port: await masterPort() })
    try {
      await load.check((name, field) => admin.hget(name, field))
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
    await servedFromReplica(withReplica, plain, async () => topology.nodes.find((n) => n.port === port)?.kill())
  }, 30_000)
})
