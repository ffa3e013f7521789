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
   * the reply whether it changed anything (a compare-and-set that did not apply needs no replica). */
  write<T>(send: (c: Commands) => unknown, wrote?: (reply: T) => boolean): Promise<T>
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

/** A failed write: applied or not, as far as the error tells (see failedWrite in redis-layer.ts). */
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

export function createReplication({ redis, replicas, timeoutMs, holdMs, onFence }: ReplicationOptions): Replication {
  if (replicas === 0)
    return {
      client: redis,
      async write<T>(send: (c: Commands) => unknown) {
        const sent = redis.status === 'ready'
        try {
          return (await send(redis)) as T
        } catch (err) {
          throw failedWrite(err, sent)
        }
      },
    }

  /** Per master written to: its replicas as ROLE listed them last, until when writes to it stay unconfirmed, and
   * the replicas whose leaving started that. In a cluster, masters are told apart by their node id (CLUSTER MYID). */
  const masters = new Map<string, { known: Set<string>; fencedUntil: number; gone: string[] }>()
  const cluster = redis.isCluster
  const endpoint = () => {
    const socket = (redis as Redis).stream
    return `${socket?.remoteAddress}:${socket?.remotePort}`
  }

  /** Why writes to the master that answered `role` (its node id `id` in a cluster) cannot be confirmed now, given
   * that `acknowledged` replicas answered WAIT; undefined when they can. */
  function unconfirmed(
    at: string | undefined,
    role: unknown,
    id: unknown,
    acknowledged: number,
    target: number,
  ): string | undefined {
    // A master not written to before (a failover moved the connection, or another slot's master): what another had
    // tells nothing about it. Under Sentinel only the latest master is kept.
    const node = at ?? String(id)
    let state = masters.get(node)
    if (state === undefined) {
      if (!cluster) masters.clear()
      state = { known: new Set(), fencedUntil: 0, gone: [] }
      masters.set(node, state)
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
    send: (c: Commands) => unknown
    wrote: (reply: unknown) => boolean
    resolve: (reply: unknown) => void
    reject: (err: unknown) => void
  }

  /** Sends `batch` in one pipeline closed by one WAIT and ROLE (WAIT covers every write before it on the
   * connection), and settles each write. */
  async function sendBatch(batch: Pending[]): Promise<void> {
    const sent = redis.status === 'ready'
    const at = cluster ? undefined : endpoint()
    // Every replica the master had at the last write, and at least N: a Sentinel may promote any replica it has,
    // including one that had not received the write yet while another had already confirmed it. (In a cluster the
    // master is known only from the reply, so N.)
    const target = Math.max(replicas, (at === undefined ? undefined : masters.get(at))?.known.size ?? 0)
    let replies: Array<[Error | null, unknown]> | null = null
    for (let attempt = 1; ; attempt++) {
      try {
        const pipeline = redis.pipeline()
        for (const w of batch) w.send(pipeline)
        pipeline.wait(target, timeoutMs).role()
        if (cluster) pipeline.cluster('MYID')
        replies = await pipeline.exec()
      } catch (err) {
        for (const w of batch) w.reject(failedWrite(err, sent))
        return
      }
      // ioredis does not follow a redirection for a pipeline that holds commands other than reads: the write was
      // not applied, so it is sent again once the slots are known anew (a resharding moves keys one by one).
      const error = replies?.[0]?.[0]
      if (!cluster || attempt >= REDIRECTIONS || !/^(MOVED|ASK|TRYAGAIN|CLUSTERDOWN) /.test(error?.message ?? '')) break
      await new Promise<void>((resolve) => (redis as Cluster).refreshSlotsCache(() => resolve()))
      await new Promise((resolve) => setTimeout(resolve, 10 * attempt))
    }
    const [waited, role, id] = (replies ?? []).slice(batch.length)
    const why = unconfirmed(at, role?.[1], id?.[1], Number(waited?.[1] ?? 0), target)
    batch.forEach((w, i) => {
      const [err, reply] = replies?.[i] ?? [new Error('no reply'), undefined]
      if (err !== null) w.reject(failedWrite(err, sent))
      else if (why !== undefined && w.wrote(reply)) w.reject(unreplicated(why))
      else w.resolve(reply)
    })
  }

  // Group commit: while one batch waits for its replicas, the writes that come meanwhile gather into the next, so a
  // connection is held by one WAIT per batch, not per write. (In a cluster each write is a batch of its own: a
  // pipeline holds the keys of one node only.)
  let queue: Pending[] = []
  let sending = false
  async function drain(): Promise<void> {
    sending = true
    while (queue.length > 0) {
      const batch = queue
      queue = []
      await sendBatch(batch).catch((err: unknown) => {
        for (const w of batch) w.reject(err)
      })
    }
    sending = false
  }

  return {
    client: redis,
    write<T>(send: (c: Commands) => unknown, wrote: (reply: T) => boolean = () => true) {
      return new Promise<T>((resolve, reject) => {
        const w = {
          send,
          wrote: wrote as (r: unknown) => boolean,
          resolve: resolve as (r: unknown) => void,
          reject,
        }
        if (cluster) return void sendBatch([w]).catch(reject)
        queue.push(w)
        if (!sending) void drain()
      })
    },
  }
}
