// REDIS_WRITE_REPLICAS (README "Running highly available"): a write is acknowledged only once the replicas hold it,
// and only while no failover can be taking it away.
//
// Redis replicates asynchronously, and a plain `WAIT N` is not enough, for two reasons. A Sentinel may promote any
// replica of the master, including one that had not received a write that another replica had already confirmed; so
// a write waits for every replica the master had at the last write, and at least N. And when a replica is promoted,
// the old master keeps accepting writes (and keeps its other replicas) until the Sentinels demote it; a WAIT answered
// by one of those replicas is worthless, since they are resynchronised from the new master and drop what they held.
// The promoted replica leaves the old master's replica list the moment it is promoted, though. So each write is sent
// in one pipeline with `WAIT` and `ROLE`, and the reply is trusted only when ROLE still lists every replica the
// master had before: when one left, writes answer WRITE_OUTCOME_UNKNOWN until the connection moves to another
// master, or until no replica has left for `holdMs` (a replica that died, not a promotion).
import calculateSlot from 'cluster-key-slot'
import type { ChainableCommander, Cluster, Redis } from 'ioredis'
import { LayerUnavailableError, reasonOf } from '../src/errors.js'

/** The command connection: to one Redis (direct, or the master Sentinel names), or to a Redis Cluster. */
export type RedisClient = Redis | Cluster

/** Something commands are sent with: the connection itself, or a pipeline on it. */
export type Commands = RedisClient | ChainableCommander

export interface Replication {
  /** Sends the write `send` makes, and answers its reply once it is known to be replicated (REDIS_WRITE_REPLICAS);
   * throws a LayerUnavailableError otherwise: `not_written` when Redis refused it, `unreplicated` when it was
   * applied on the master but is not known to survive a failover, `unknown` when no reply came. `wrote` tells from
   * the reply whether it changed anything (a compare-and-set that did not apply needs no replica). `key`: the Redis
   * key it writes (in a cluster, writes are batched per master by it). */
  write<T>(key: string, send: (c: Commands) => unknown, wrote?: (reply: T) => boolean): Promise<T>
  /** The connection writes are sent on (a script a write uses is defined on it). */
  readonly client: RedisClient
}

export interface ReplicationOptions {
  /** The connection writes are sent on: with REDIS_WRITE_REPLICAS, one of their own, since a WAIT holds back every
   * command queued behind it on its connection (reads included). */
  redis: RedisClient
  /** REDIS_WRITE_REPLICAS: 0 sends writes on their own. */
  replicas: number
  /** How long WAIT waits for them. */
  timeoutMs: number
  /** How long writes stay unconfirmed after a replica left a master that is still the master. */
  holdMs: number
  onFence?: (replicas: string[]) => void
}

/** A write that failed after it was sent, without Redis answering (a timeout, a connection lost), may still have been
 * applied; one refused before sending, or answered with an error, was not. */
export const failedWrite = (err: unknown, sent: boolean) =>
  new LayerUnavailableError(
    'redis',
    reasonOf(err),
    err,
    sent && (err as Error).name !== 'ReplyError' ? 'unknown' : 'not_written',
  )

/** How many times a write redirected in a cluster is sent. */
const REDIRECTIONS = 8

const unreplicated = (reason: string) => new LayerUnavailableError('redis', reason, undefined, 'unreplicated')

/** The replicas ROLE lists for a master (`ip:port`), or undefined when the node is not a master. */
function replicasOf(role: unknown): Set<string> | undefined {
  if (!Array.isArray(role) || role[0] !== 'master') return undefined
  return new Set((role[2] as Array<[string, string, string]>).map(([ip, port]) => `${ip}:${port}`))
}

/** Writes sent on their own, as without REDIS_WRITE_REPLICAS (a layer or history built without a replication). */
export const directWrites = (redis: RedisClient): Replication =>
  createReplication({ redis, replicas: 0, timeoutMs: 0, holdMs: 0 })

export function createReplication({ redis, replicas, timeoutMs, holdMs, onFence }: ReplicationOptions): Replication {
  if (replicas === 0)
    return {
      client: redis,
      async write<T>(_key: string, send: (c: Commands) => unknown) {
        const sent = redis.status === 'ready'
        try {
          return (await send(redis)) as T
        } catch (err) {
          throw failedWrite(err, sent)
        }
      },
    }

  /** Per master written to: its replicas as ROLE listed them last, until when writes to it stay unconfirmed, and
   * the replicas whose leaving started that. */
  const masters = new Map<string, { known: Set<string>; fencedUntil: number; gone: string[] }>()
  const cluster = redis.isCluster
  /** The master a write of `key` goes to: the connection's endpoint, or in a cluster the node that ioredis's slot map
   * names for the key's slot. */
  const masterOf = (key: string): string => {
    if (cluster) return (redis as Cluster).slots[calculateSlot(key)]?.[0] ?? 'unknown'
    const socket = (redis as Redis).stream
    return `${socket?.remoteAddress}:${socket?.remotePort}`
  }

  /** Why writes to the master `at`, which answered `role`, cannot be confirmed now, given that `acknowledged` of the
   * `target` replicas answered WAIT; undefined when they can. */
  function unconfirmed(at: string, role: unknown, acknowledged: number, target: number): string | undefined {
    // A master not written to before (a failover moved the connection): what another had tells nothing about it.
    // Under Sentinel only the latest master is kept.
    let state = masters.get(at)
    if (state === undefined) {
      if (!cluster) masters.clear()
      state = { known: new Set(), fencedUntil: 0, gone: [] }
      masters.set(at, state)
    }
    const now = replicasOf(role)
    if (now === undefined) return 'the node written to is not the master any more (a failover)'
    const left = [...state.known].filter((r) => !now.has(r))
    state.known = now
    if (left.length > 0) {
      state.fencedUntil = Date.now() + holdMs
      state.gone = left
      onFence?.(left)
    }
    if (Date.now() < state.fencedUntil)
      return `replica ${state.gone.join(', ')} left the master: a failover may be under way, which would drop this write`
    if (acknowledged < target)
      return `${acknowledged} of the ${target} replicas it waited for (every replica of the master, at least REDIS_WRITE_REPLICAS=${replicas}) confirmed it within ${timeoutMs} ms`
    return undefined
  }

  interface Pending {
    key: string
    send: (c: Commands) => unknown
    wrote: (reply: unknown) => boolean
    resolve: (reply: unknown) => void
    reject: (err: unknown) => void
  }

  /** Sends `batch` (writes to one master) in one pipeline closed by one WAIT and ROLE (WAIT covers every write before
   * it on the connection), and settles each write. */
  async function sendBatch(batch: Pending[]): Promise<void> {
    const sent = redis.status === 'ready'
    const first = batch[0] as Pending
    let replies: Array<[Error | null, unknown]> | null = null
    let at = masterOf(first.key)
    let target = replicas
    for (let attempt = 1; ; attempt++) {
      // Every replica the master had at the last write, and at least N: a Sentinel may promote any replica it has,
      // including one that had not received the write yet while another had already confirmed it.
      target = Math.max(replicas, masters.get(at)?.known.size ?? 0)
      try {
        const pipeline = redis.pipeline()
        for (const w of batch) w.send(pipeline)
        replies = await pipeline.wait(target, timeoutMs).role().exec()
      } catch (err) {
        // The slot map changed since the batch was made, and its keys are no longer on one node: one by one.
        if (batch.length > 1 && /same slots allocation group/.test((err as Error).message)) {
          for (const w of batch) await sendBatch([w])
          return
        }
        for (const w of batch) w.reject(failedWrite(err, sent))
        return
      }
      // ioredis does not follow a redirection for a pipeline that holds commands other than reads: the write was
      // not applied, so it is sent again once the slots are known anew (a resharding moves keys one by one).
      const error = replies?.[0]?.[0]
      if (!cluster || attempt >= REDIRECTIONS || !/^(MOVED|ASK|TRYAGAIN|CLUSTERDOWN) /.test(error?.message ?? '')) break
      await new Promise<void>((resolve) => (redis as Cluster).refreshSlotsCache(() => resolve()))
      await new Promise((resolve) => setTimeout(resolve, 10 * attempt))
      at = masterOf(first.key)
    }
    const [waited, role] = (replies ?? []).slice(batch.length)
    const why = unconfirmed(at, role?.[1], Number(waited?.[1] ?? 0), target)
    batch.forEach((w, i) => {
      const [err, reply] = replies?.[i] ?? [new Error('no reply'), undefined]
      if (err !== null) w.reject(failedWrite(err, sent))
      else if (why !== undefined && w.wrote(reply)) w.reject(unreplicated(why))
      else w.resolve(reply)
    })
  }

  // Group commit, per master: while one batch waits for its replicas, the writes to that master that come meanwhile
  // gather into the next, so a connection is held by one WAIT per batch, not per write.
  const queues = new Map<string, { waiting: Pending[]; sending: boolean }>()
  async function drain(master: string, q: { waiting: Pending[]; sending: boolean }): Promise<void> {
    q.sending = true
    while (q.waiting.length > 0) {
      const batch = q.waiting
      q.waiting = []
      await sendBatch(batch).catch((err: unknown) => {
        for (const w of batch) w.reject(err)
      })
    }
    q.sending = false
    queues.delete(master)
  }

  return {
    client: redis,
    write<T>(key: string, send: (c: Commands) => unknown, wrote: (reply: T) => boolean = () => true) {
      return new Promise<T>((resolve, reject) => {
        const w = {
          key,
          send,
          wrote: wrote as (r: unknown) => boolean,
          resolve: resolve as (r: unknown) => void,
          reject,
        }
        const master = cluster ? masterOf(key) : ''
        let q = queues.get(master)
        if (q === undefined) {
          q = { waiting: [], sending: false }
          queues.set(master, q)
        }
        q.waiting.push(w)
        if (!q.sending) void drain(master, q)
      })
    },
  }
}
