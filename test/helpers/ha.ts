// The steady load of the failover tests (test/sentinel.test.ts, test/cluster.test.ts): reads of some keys from two
// instances, and one writer per key counting it up as fast as it is answered, alternating between the instances.
// Every acknowledged write is kept with its counter and revision, so that afterwards each can be looked for.
import type { AddressInfo } from 'node:net'
import { expect } from 'vitest'
import { bearer, type buildTestApp } from './app.js'
import { sse } from './sse.js'
import { sleep, until } from './wait.js'

type App = Awaited<ReturnType<typeof buildTestApp>>
/** An external write of a Redis key (redis-cli's SET, on the master that serves it). */
type ExternalSet = (name: string, value: string) => Promise<unknown>

const get = async (t: App, key: string) =>
  (await t.app.inject({ url: `/api/config/${key}`, headers: bearer('read') })).json()
const post = (t: App, key: string, payload: object) =>
  t.app.inject({ method: 'POST', url: `/api/config/${key}`, headers: bearer('write'), payload })

/** What a single Redis does, on two instances `a` and `b` of one prefix, with `keys` (k0…, at least k0-k3) written
 * already through `a`: the list, If-Match and 412, history, the change feed in order, a delete, the migration lock,
 * and invalidation by an external write. */
export async function allASingleRedisDoes(a: App, b: App, keys: string[], set: ExternalSet): Promise<void> {
  // The list (in a cluster: a SCAN of every master).
  const list = (await a.app.inject({ url: '/api/config', headers: bearer('read') })).json()
  expect(list.keys.map((k: { key: string }) => k.key)).toEqual(expect.arrayContaining(keys))
  // A conditional write: If-Match holds with the current tag, 412 with an old one.
  const first = await a.app.inject({ url: '/api/config/k1', headers: bearer('read') })
  const etag = first.headers.etag as string
  const patched = await a.app.inject({
    method: 'PATCH',
    url: '/api/config/k1',
    headers: { ...bearer('write'), 'if-match': etag },
    payload: { extra: 1 },
  })
  expect(patched.statusCode).toBe(200)
  const stale = await a.app.inject({
    method: 'PATCH',
    url: '/api/config/k1',
    headers: { ...bearer('write'), 'if-match': etag },
    payload: { extra: 2 },
  })
  expect(stale.statusCode).toBe(412)
  // History and the change feed (in a cluster its stream is in another slot than any key).
  await a.app.listen({ port: 0, host: '127.0.0.1' })
  const feed = await sse(
    `http://127.0.0.1:${(a.app.server.address() as AddressInfo).port}/api/changes`,
    bearer('admin'),
  )
  try {
    expect((await post(b, 'k2', { key: 'k2', v: 2 })).statusCode).toBe(200)
    const deleted = await a.app.inject({ method: 'DELETE', url: '/api/config/k3', headers: bearer('admin') })
    expect(deleted.statusCode).toBe(200)
    expect((await get(a, 'k3')).code).toBe('CONFIG_NOT_FOUND')
    const changes = (await feed.waitFor(2)).map((e) => JSON.parse(e.data))
    expect(changes.map((c) => [c.key, c.op, c.revision])).toEqual([
      ['k2', 'write', 2],
      ['k3', 'delete', 2],
    ])
  } finally {
    feed.close()
  }
  const history = (await a.app.inject({ url: '/api/config/k1/history', headers: bearer('read') })).json()
  expect(history.revisions.map((r: { revision: number }) => r.revision)).toEqual([2, 1])
  // The migration lock: taken and released by a migration; held by another, a migration is refused.
  const migrate = () =>
    a.app.inject({
      method: 'POST',
      url: '/api/migrate_configs_to_redis',
      headers: bearer('admin'),
      payload: { dryRun: true },
    })
  expect((await migrate()).statusCode).toBe(200)
  await set(`${a.prefix}:migration_lock`, 'held by another migration')
  expect((await migrate()).json().code).toBe('MIGRATION_IN_PROGRESS')
  await invalidationReachesBoth(a, b, 'k0', 'external k0', set)
}

/** Both instances hold `key` in their caches (written first if no layer holds it); an external write of it then
 * reaches both within 200 ms (only a change notice can tell them). */
export async function invalidationReachesBoth(a: App, b: App, key: string, v: string, set: ExternalSet): Promise<void> {
  if ((await get(a, key)).status !== 'success') expect((await post(a, key, { v: 'before' })).statusCode).toBe(200)
  for (const t of [a, b])
    await until(
      async () => (await get(t, key)).status === 'success' && t.app.store.readCached(key) !== undefined,
      5000,
      20,
    )
  await set(`${a.prefix}${key}`, JSON.stringify({ v, _updated_at: new Date().toISOString() }))
  const started = Date.now()
  for (const t of [a, b]) await until(async () => (await get(t, key)).data?.v === v, 1000, 5)
  expect(Date.now() - started, `${v}: the external write seen by both instances`).toBeLessThanOrEqual(200)
}

export function startFailoverLoad(
  a: App,
  b: App,
  { reads: readKeys, writes: writeKeys }: { reads: string[]; writes: string[] },
) {
  const reads = { ok: 0, failed: [] as unknown[] }
  const writes: Record<string, number> = {}
  const acknowledged: Array<{ key: string; n: number; revision: number }> = []
  let loading = true
  let phase = 'before'
  const reader = (async () => {
    while (loading) {
      for (const t of [a, b])
        for (const key of readKeys) {
          const r = (await t.app.inject({ url: `/api/config/${key}`, headers: bearer('read') })).json()
          if (r.status === 'success') reads.ok++
          else reads.failed.push({ ...r, key, phase, instance: t === a ? 'a' : 'b' })
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
  const running = Promise.all([reader, ...writeKeys.map(writer)])

  return {
    /** Named in a failed read, to say when it failed. */
    set phase(name: string) {
      phase = name
    },
    /** Stops the load (also when a check failed: it must not outlive the test's instances). */
    async stop(): Promise<void> {
      loading = false
      await running
    },
    /** After stop: no read failed, every write was answered 200, 503 or WRITE_OUTCOME_UNKNOWN, and every
     * acknowledged write is in its key's history as that revision with its counter (`hget` reads the documents' hash
     * on the last master). */
    async check(hget: (name: string, field: string) => Promise<string | null>): Promise<void> {
      expect(reads.failed).toEqual([])
      expect(reads.ok).toBeGreaterThan(0)
      expect(
        Object.keys(writes).filter((o) => !['ok', 'STORE_UNAVAILABLE', 'WRITE_OUTCOME_UNKNOWN'].includes(o)),
      ).toEqual([])
      expect(acknowledged.length).toBeGreaterThan(100)
      const lost: typeof acknowledged = []
      for (const w of acknowledged) {
        const doc = await hget(`${a.prefix}:docs:{${a.prefix}${w.key}}`, String(w.revision))
        if (doc === null || JSON.parse(doc).n !== w.n) lost.push(w)
      }
      const what = `${lost.length} of ${acknowledged.length} acknowledged writes lost (${JSON.stringify(writes)})`
      expect(lost, what).toEqual([])
    },
  }
}

/** `lagging` is held by a master (`kill` kills it) and its replicas, and neither instance has read it (no
 * last-known-good copy anywhere): while the master is down, the instance with REDIS_READ_FROM=replica serves it from
 * a replica, marked stale, and the other cannot serve it. */
export async function servedFromReplica(withReplica: App, plain: App, kill: () => Promise<unknown>): Promise<void> {
  const read = async (t: App) => (await t.app.inject({ url: '/api/config/lagging', headers: bearer('read') })).json()
  // The master answers (a new instance may still be connecting to it, on a loaded machine).
  await until(async () => (await read(withReplica)).status === 'success', 5000, 20)
  expect((await read(withReplica)).meta.stale).toBeUndefined()
  await kill()
  // Until a replica is promoted (a second or more), the master is gone.
  let stale: { data: { v: number }; meta: object } | undefined
  await until(
    async () => {
      const r = await read(withReplica)
      if (r.meta?.stale === true) stale = r
      return stale !== undefined
    },
    1000,
    10,
  )
  const fromPlain = await read(plain)
  expect(stale?.data.v).toBe(2)
  expect(stale?.meta).toMatchObject({ source: 'redis', stale: true })
  // (The log line may reach the captured stream a moment after the answer.)
  await until(() => withReplica.logs.some((l) => /served lagging from a redis replica \(stale/.test(l.msg)), 2000)
  expect(fromPlain.code).toBe('STORE_UNAVAILABLE')
}
