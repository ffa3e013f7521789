// A Redis Cluster (README "Running highly available"): a real one on loopback — 3 masters with 1 replica each — and
// two instances that reach it through REDIS_CLUSTER_NODES. Everything a single Redis does works with keys spread
// over every master; then, under a steady read and write load, a replica is promoted, a master is SIGKILLed and the
// slot holding a config key is resharded: no acknowledged write lost, reads never fail, invalidation holds.
import { spawnSync } from 'node:child_process'
import { Cluster, Redis } from 'ioredis'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type ClusterTopology, startClusterTopology, startRedisServer } from '../scripts/redis-server.js'
import { bearer, buildTestApp } from './helpers/app.js'
import { allASingleRedisDoes, invalidationReachesBoth, servedFromReplica, startFailoverLoad } from './helpers/ha.js'
import { sleep, until } from './helpers/wait.js'

let topology: ClusterTopology
let admin: Cluster
beforeAll(async () => {
  topology = await startClusterTopology()
  admin = new Cluster([{ host: '127.0.0.1', port: topology.nodes[0]?.port as number }])
}, 60_000)
afterAll(async () => {
  admin?.disconnect()
  await topology?.stop()
})

type App = Awaited<ReturnType<typeof buildTestApp>>
/** An external write, on the master that serves the key. */
const set = (name: string, value: string) => admin.set(name, value)
const env = () => ({
  REDIS_URL: undefined,
  REDIS_CLUSTER_NODES: topology.addresses,
  REDIS_WRITE_REPLICAS: '1',
  // Long enough that a loaded machine is not what leaves a write unconfirmed (a failover is).
  REDIS_WRITE_REPLICAS_TIMEOUT_MS: '2000',
  REDIS_COMMAND_TIMEOUT_MS: '5000',
  CONFIG_HISTORY_MAX: '100000',
})
const post = (t: App, key: string, payload: object) =>
  t.app.inject({ method: 'POST', url: `/api/config/${key}`, headers: bearer('write'), payload })

/** The master (its port) serving `key`'s slot, as the nodes say now. */
async function masterOf(full: string): Promise<{ port: number; id: string; slot: number }> {
  const slot = (await admin.cluster('KEYSLOT', full)) as number
  const slots = (await admin.cluster('SLOTS')) as unknown as Array<[number, number, [string, number, string]]>
  const range = slots.find(([from, to]) => slot >= from && slot <= to)
  if (range === undefined) throw new Error(`no master serves slot ${slot}`)
  return { port: range[2][1], id: range[2][2], slot }
}

describe('Redis Cluster', () => {
  it('does all a single Redis does, with keys on every master', async () => {
    const a = await buildTestApp(env())
    const b = await buildTestApp({ ...env(), CONFIG_STORE_REDIS_PREFIX: a.prefix })
    const keys = Array.from({ length: 24 }, (_, i) => `k${i}`)
    // (The instances may still be learning the slots on a loaded machine.)
    await until(async () => (await post(a, 'k0', { key: 'k0' })).statusCode === 200, 5000, 50)
    for (const key of keys) expect((await post(a, key, { key })).statusCode).toBe(200)
    const masters = new Set(await Promise.all(keys.map(async (k) => (await masterOf(`${a.prefix}${k}`)).port)))
    expect(masters.size).toBe(3)
    await allASingleRedisDoes(a, b, keys, set)
    // /ready names the topology and, to authenticated callers, the masters.
    const ready = (await a.app.inject({ url: '/ready', headers: bearer('read') })).json()
    expect(ready.redis.topology).toBe('cluster')
    expect(ready.redis.masters).toHaveLength(3)
    // Cache invalidation from every master.
    for (const key of ['k4', 'k5', 'k6', 'k7', 'k8', 'k9'])
      await invalidationReachesBoth(a, b, key, `external ${key}`, set)
  }, 60_000)

  it('a replica promoted, a master SIGKILLed, a slot resharded, under load: nothing acknowledged lost', async () => {
    const a = await buildTestApp(env())
    const b = await buildTestApp({ ...env(), CONFIG_STORE_REDIS_PREFIX: a.prefix })
    // A key in the lowest slot of its master: `redis-cli --cluster reshard` moves a source's lowest slots first.
    const lowest = async (port: number) => {
      const slots = (await admin.cluster('SLOTS')) as unknown as Array<[number, number, [string, number, string]]>
      return Math.min(...slots.filter((s) => s[2][1] === port).map(([from]) => from))
    }
    const target = topology.nodes[0]?.port as number
    const firstSlot = await lowest(target)
    const inSlot: string[] = []
    for (let i = 0; inSlot.length < 2; i++)
      if ((await admin.cluster('KEYSLOT', `${a.prefix}m${i}`)) === firstSlot) inSlot.push(`m${i}`)
    const [moved, movedQuiet] = inSlot as [string, string]
    const watched = ['w0', 'w1', 'w2', moved]
    for (const key of [...watched, movedQuiet]) expect((await post(a, key, { n: 0 })).statusCode).toBe(200)
    /** A key the load does not write, on the master that serves `key` now (for the invalidation checks). */
    const quietBeside = async (key: string) => {
      const { port } = await masterOf(`${a.prefix}${key}`)
      for (let i = 0; ; i++) if ((await masterOf(`${a.prefix}q${i}`)).port === port) return `q${i}`
    }

    const load = startFailoverLoad(a, b, { reads: watched, writes: watched })
    try {
      await sleep(500)
      // A replica promoted by hand (CLUSTER FAILOVER: the master hands over once the replica has caught up).
      load.phase = 'CLUSTER FAILOVER'
      const { id } = await masterOf(`${a.prefix}w0`)
      const nodes = (await admin.cluster('NODES')) as string
      const replicaLine = nodes.split('\n').find((l) => l.includes(`slave ${id}`)) as string
      const replicaPort = Number(replicaLine.split(' ')[1]?.split(':')[1]?.split('@')[0])
      const replica = new Redis({ port: replicaPort })
      await replica.cluster('FAILOVER')
      replica.disconnect()
      await until(async () => (await masterOf(`${a.prefix}w0`)).port === replicaPort, 20_000, 100)
      await until(async () => (await post(a, 'w0', { n: -1 })).statusCode === 200, 10_000, 100)
      await invalidationReachesBoth(a, b, await quietBeside('w0'), 'after CLUSTER FAILOVER', set)

      // A master killed: the cluster promotes its replica once the node timeout passes.
      load.phase = 'SIGKILL of a master'
      const victim = (await masterOf(`${a.prefix}w1`)).port
      await topology.nodes.find((n) => n.port === victim)?.kill()
      await until(
        async () => (await masterOf(`${a.prefix}w1`).catch(() => ({ port: victim }))).port !== victim,
        20_000,
        100,
      )
      // Its shard has no replica left, so REDIS_WRITE_REPLICAS=1 holds its writes unconfirmed until the killed node
      // is back, as a replica of the new master.
      const killed = topology.nodes.find((n) => n.port === victim)
      await killed?.start()
      await until(async () => (await post(a, 'w1', { n: -1 })).statusCode === 200, 20_000, 100)
      await invalidationReachesBoth(a, b, await quietBeside('w1'), 'after SIGKILL', set)

      // The slot holding `moved` resharded to another master, its key migrated while it is read and written.
      load.phase = 'reshard'
      const from = await masterOf(`${a.prefix}${moved}`)
      const to = (await admin.cluster('SLOTS')) as unknown as Array<[number, number, [string, number, string]]>
      const destination = to.map((s) => s[2]).find(([, port]) => port !== from.port && port !== victim) as [
        string,
        number,
        string,
      ]
      const reshard = spawnSync(
        'redis-cli',
        [
          '--cluster',
          'reshard',
          `127.0.0.1:${from.port}`,
          '--cluster-from',
          from.id,
          '--cluster-to',
          destination[2],
          '--cluster-slots',
          '1',
          '--cluster-yes',
        ],
        { encoding: 'utf8' },
      )
      expect(reshard.status, reshard.stdout + reshard.stderr).toBe(0)
      await until(async () => (await masterOf(`${a.prefix}${moved}`)).port === destination[1], 10_000, 50)
      await until(async () => (await post(a, moved, { n: -1 })).statusCode === 200, 10_000, 100)
      await invalidationReachesBoth(a, b, movedQuiet, 'after reshard', set)
      load.phase = 'done'
    } finally {
      await load.stop()
    }
    await load.check((name, field) => admin.hget(name, field))
  }, 120_000)

  it('REDIS_READ_FROM=replica: while a master is down, its replica serves what it holds, marked stale', async () => {
    const prefix = `test:replica-reads:${Date.now()}:`
    await admin.set(`${prefix}lagging`, JSON.stringify({ v: 2, _updated_at: new Date().toISOString() }))
    const { port } = await masterOf(`${prefix}lagging`)
    const master = new Redis({ port })
    await master.wait(1, 1000)
    master.disconnect()
    // Neither instance has read the key: no last-known-good copy of it anywhere.
    // (The default timeouts: a read of the dead master must fail fast, within the outage.)
    const base = {
      ...env(),
      CONFIG_STORE_REDIS_PREFIX: prefix,
      REDIS_WRITE_REPLICAS_TIMEOUT_MS: undefined,
      REDIS_COMMAND_TIMEOUT_MS: undefined,
    }
    const withReplica = await buildTestApp({ ...base, REDIS_READ_FROM: 'replica' })
    const plain = await buildTestApp(base)
    await servedFromReplica(withReplica, plain, async () => topology.nodes.find((n) => n.port === port)?.kill())
    // Once the replica is promoted, the dead node leaves the cluster client's view and the cache is trusted again
    // (every node it knows is tracked).
    await until(
      async () =>
        (await plain.app.inject({ url: '/api/config/lagging', headers: bearer('read') })).statusCode === 200 &&
        plain.app.store.readCached('lagging') !== undefined,
      20_000,
      100,
    )
  }, 30_000)
})

describe('Redis Cluster, misconfigured', () => {
  it('nodes that are no cluster: one ERROR line naming REDIS_CLUSTER_NODES, reads served from files', async () => {
    const plain = await startRedisServer({ persist: false })
    try {
      const t = await buildTestApp({ REDIS_URL: undefined, REDIS_CLUSTER_NODES: `127.0.0.1:${plain.port}` })
      await until(async () => t.logs.some((l) => l.level === 50), 5000, 20)
      await sleep(1500) // the retries that follow do not repeat it
      const errors = t.logs.filter((l) => l.level === 50).map((l) => String(l.msg))
      expect(errors).toEqual([
        expect.stringMatching(/no node in REDIS_CLUSTER_NODES answered as a member of a Redis Cluster/),
      ])
      const ready = (await t.app.inject({ url: '/ready', headers: bearer('read') })).json()
      expect(ready.degraded).toBe(true)
      expect(ready.redis).toEqual({ topology: 'cluster', masters: [] })
      expect((await post(t, 'x', { v: 1 })).json().code).toBe('STORE_UNAVAILABLE')
    } finally {
      await plain.stop()
    }
  })
})
