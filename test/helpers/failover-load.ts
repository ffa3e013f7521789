// The steady load of the failover tests (test/sentinel.test.ts, test/cluster.test.ts): reads of some keys from two
// instances, and one writer per key counting it up as fast as it is answered, alternating between the instances.
// Every acknowledged write is kept with its counter and revision, so that afterwards each can be looked for.
import { expect } from 'vitest'
import { bearer, type buildTestApp } from './app.js'
import { sleep, until } from './wait.js'

type App = Awaited<ReturnType<typeof buildTestApp>>

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
  expect((await read(withReplica)).meta.stale).toBeUndefined() // the master answers
  await kill()
  // Until a replica is promoted (a second or more), the master is gone.
  await until(async () => (await read(withReplica)).meta?.stale === true, 1000, 10)
  const fromPlain = await read(plain)
  const stale = await read(withReplica)
  expect(stale.data.v).toBe(2)
  expect(stale.meta).toMatchObject({ source: 'redis', stale: true })
  expect(withReplica.logs.some((l) => /served lagging from a redis replica \(stale/.test(l.msg))).toBe(true)
  expect(fromPlain.code).toBe('STORE_UNAVAILABLE')
}
