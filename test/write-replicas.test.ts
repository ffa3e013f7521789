// REDIS_WRITE_REPLICAS (README "Running highly available"): a write is answered 200 only when that many replicas
// hold it and none has left the master; otherwise WRITE_OUTCOME_UNKNOWN, never a 200 and never "nothing written".
// Real servers on loopback: a master and two replicas of it.
import { Redis } from 'ioredis'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type RedisServer, startRedisServer } from '../scripts/redis-server.js'
import { bearer, buildTestApp } from './helpers/app.js'
import { until } from './helpers/wait.js'

let master: RedisServer
const replicas: RedisServer[] = []
beforeAll(async () => {
  master = await startRedisServer({ persist: false, args: ['--repl-diskless-sync-delay', '0'] })
}, 30_000)
afterAll(async () => {
  await Promise.all([master, ...replicas].map((r) => r?.stop()))
})

async function startReplica(): Promise<RedisServer> {
  const replica = await startRedisServer({
    persist: false,
    args: ['--repl-diskless-sync-delay', '0', '--replicaof', '127.0.0.1', String(master.port)],
  })
  replicas.push(replica)
  return replica
}

/** Resolves once the master lists `count` replicas online. */
async function online(count: number): Promise<void> {
  const admin = new Redis({ port: master.port })
  try {
    await until(async () => ((await admin.call('ROLE')) as [string, number, unknown[]])[2].length === count, 10_000, 20)
  } finally {
    admin.disconnect()
  }
}

const post = (t: Awaited<ReturnType<typeof buildTestApp>>, key: string, payload: object) =>
  t.app.inject({ method: 'POST', url: `/api/config/${key}`, headers: bearer('write'), payload })

describe('REDIS_WRITE_REPLICAS', () => {
  it('with no replica to confirm it, a write is WRITE_OUTCOME_UNKNOWN (it is on the master), never 200', async () => {
    const t = await buildTestApp({ REDIS_URL: master.url, REDIS_WRITE_REPLICAS: '1' })
    const r = await post(t, 'alone', { v: 1 })
    expect(r.statusCode).toBe(503)
    expect(r.json().code).toBe('WRITE_OUTCOME_UNKNOWN')
    expect(r.json().message).toMatch(
      /0 of the 1 replicas it waited for \(every replica of the master, at least REDIS_WRITE_REPLICAS=1\)/,
    )
    // The master has it: the answer said it might.
    const admin = new Redis({ port: master.port })
    expect(JSON.parse((await admin.get(`${t.prefix}alone`)) as string).v).toBe(1)
    admin.disconnect()
    // A delete is not claimed either way.
    const d = await t.app.inject({ method: 'DELETE', url: '/api/config/alone', headers: bearer('admin') })
    expect(d.statusCode).toBe(503)
    expect(d.json().message).toMatch(/not known to be deleted from redis/)
    // Nor is the migration lock taken on the master alone: no migration runs, and the lock is let go.
    const m = await t.app.inject({
      method: 'POST',
      url: '/api/migrate_configs_to_redis',
      headers: bearer('admin'),
      payload: { dryRun: true },
    })
    expect(m.statusCode).toBe(503)
    expect(m.json().message).toMatch(/the migration lock 0 of the 1 replicas it waited for/)
    const lockAdmin = new Redis({ port: master.port })
    expect(await lockAdmin.get(`${t.prefix}:migration_lock`)).toBeNull()
    lockAdmin.disconnect()
  })

  it('confirmed by a replica: 200; after a replica leaves the master, writes are unconfirmed though WAIT is met', async () => {
    await startReplica()
    const second = await startReplica()
    await online(2)
    // (Timeouts long enough that a busy machine is not what leaves a write unconfirmed.)
    const t = await buildTestApp({
      REDIS_URL: master.url,
      REDIS_WRITE_REPLICAS: '1',
      REDIS_WRITE_REPLICAS_TIMEOUT_MS: '2000',
      REDIS_COMMAND_TIMEOUT_MS: '5000',
      CONFIG_HISTORY_MAX: '0',
    })
    const ok = await post(t, 'held', { v: 1 })
    expect(ok.statusCode).toBe(200)
    // Writes made together are confirmed together: those that come while one waits for its replica share the next
    // WAIT, and each is answered for itself (a failed precondition among them is its own 412).
    const together = await Promise.all([
      ...Array.from({ length: 40 }, (_, i) => post(t, `many-${i}`, { i })),
      t.app.inject({
        method: 'POST',
        url: '/api/config/held',
        headers: { ...bearer('write'), 'if-match': '"stale"' },
        payload: { v: 0 },
      }),
    ])
    expect(together.slice(0, 40).map((r) => r.statusCode)).toEqual(Array(40).fill(200))
    expect(together[40]?.statusCode).toBe(412)
    // Every replica the master has must confirm a write, not only REDIS_WRITE_REPLICAS of them: a Sentinel may
    // promote the one that has not got it yet. A stalled replica (its connection open) holds writes unconfirmed.
    second.pause()
    try {
      const stalled = await post(t, 'held', { v: 'stalled' })
      expect(stalled.json().code).toBe('WRITE_OUTCOME_UNKNOWN')
      expect(stalled.json().message).toMatch(/1 of the 2 replicas it waited for/)
    } finally {
      second.resume()
    }
    await until(async () => (await post(t, 'held', { v: 1 })).statusCode === 200, 10_000, 50)
    // A replica that leaves could be the one a Sentinel promotes: the other still answers WAIT 1, but a write to
    // this master may be dropped by that failover.
    await second.kill()
    await online(1)
    const fenced = await post(t, 'held', { v: 2 })
    expect(fenced.statusCode).toBe(503)
    expect(fenced.json().code).toBe('WRITE_OUTCOME_UNKNOWN')
    expect(fenced.json().message).toMatch(/replica 127\.0\.0\.1:\d+ left the master: a failover may be under way/)
    expect(t.logs.some((l) => l.level === 40 && /left the Redis master/.test(l.msg))).toBe(true)
    // History off: the layer's own write is confirmed the same way.
    const patch = await t.app.inject({
      method: 'PATCH',
      url: '/api/config/held',
      headers: bearer('write'),
      payload: { w: 3 },
    })
    expect(patch.json().code).toBe('WRITE_OUTCOME_UNKNOWN')
  })

  it('rejects settings that cannot work, naming the variables', async () => {
    await expect(buildTestApp({ REDIS_URL: undefined, REDIS_WRITE_REPLICAS: '1' })).rejects.toThrow(
      /REDIS_WRITE_REPLICAS is for writes to Redis: set REDIS_URL, REDIS_SENTINELS or REDIS_CLUSTER_NODES/,
    )
    await expect(
      buildTestApp({
        REDIS_WRITE_REPLICAS: '1',
        REDIS_WRITE_REPLICAS_TIMEOUT_MS: '500',
        REDIS_COMMAND_TIMEOUT_MS: '500',
      }),
    ).rejects.toThrow(/REDIS_WRITE_REPLICAS_TIMEOUT_MS: must be at least 1 and less than REDIS_COMMAND_TIMEOUT_MS/)
    await expect(buildTestApp({ REDIS_WRITE_REPLICAS: '-1' })).rejects.toThrow(/REDIS_WRITE_REPLICAS/)
  })
})
