// REDIS_WRITE_REPLICAS (README "Running highly available"): a write is acknowledged only once N replicas hold it,
// and only while no failover can be taking it away.
//
// Redis replicates asynchronously, and a plain `WAIT N` is not enough. When a replica is promoted, the old master
// keeps accepting writes (and keeps its other replicas) until the Sentinels demote it; a WAIT answered by one of
// those replicas is worthless, since they are resynchronised from the new master and drop what they held. The promoted
// replica leaves the old master's replica list the moment it is promoted, though. So each write is sent in one
// pipeline with `WAIT N` and `ROLE`, and the reply is trusted only when ROLE still lists every replica the master had
// before: when one left, writes answer WRITE_OUTCOME_UNKNOWN until the connection moves to another master, or until
// no replica has left for `holdMs` (a replica that died, not a promotion).
import type { ChainableCommander, Redis } from 'ioredis'
import { LayerUnavailableError, reasonOf } from '../src/errors.js'

/** Something commands are sent with: the connection itself, or a pipeline on it. */
export type Commands = Redis | ChainableCommander

export interface Replication {
  /** Sends the write `send` makes, and answers its reply once it is known to be replicated (REDIS_WRITE_REPLICAS);
   * throws a LayerUnavailableError otherwise: `not_written` when Redis refused it, `unreplicated` when it was
   * applied on the master but is not known to survive a failover, `unknown` when no reply came. */
  write<T>(send: (c: Commands) => unknown): Promise<T>
}

export interface ReplicationOptions {
  redis: Redis
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

const unreplicated = (reason: string) => new LayerUnavailableError('redis', reason, undefined, 'unreplicated')

/** The replicas ROLE lists for a master (`ip:port`), or undefined when the node is not a master. */
function replicasOf(role: unknown): Set<string> | undefined {
  if (!Array.isArray(role) || role[0] !== 'master') return undefined
  return new Set((role[2] as Array<[string, string, string]>).map(([ip, port]) => `${ip}:${port}`))
}

export function createReplication({ redis, replicas, timeoutMs, holdMs, onFence }: ReplicationOptions): Replication {
  if (replicas === 0)
    return {
      async write<T>(send: (c: Commands) => unknown) {
        const sent = redis.status === 'ready'
        try {
          return (await send(redis)) as T
        } catch (err) {
          throw failedWrite(err, sent)
        }
      },
    }

  /** The master written to, its replicas as ROLE listed them last, and until when writes stay unconfirmed. */
  let master: string | undefined
  let known = new Set<string>()
  let fencedUntil = 0
  let gone: string[] = []
  const endpoint = () => `${redis.stream?.remoteAddress}:${redis.stream?.remotePort}`

  return {
    async write<T>(send: (c: Commands) => unknown) {
      const sent = redis.status === 'ready'
      let replies: Array<[Error | null, unknown]> | null
      const at = endpoint()
      try {
        const pipeline = redis.pipeline()
        send(pipeline)
        replies = await pipeline.wait(replicas, timeoutMs).role().exec()
      } catch (err) {
        throw failedWrite(err, sent)
      }
      const [written, waited, role] = replies ?? []
      if (written === undefined || written[0] !== null) throw failedWrite(written?.[0] ?? 'no reply', sent)
      // Another master (a failover moved the connection): what the last one had tells nothing about this one.
      if (at !== master) {
        master = at
        known = new Set()
        fencedUntil = 0
      }
      const now = replicasOf(role?.[1])
      if (now === undefined) throw unreplicated('the node written to is not the master any more (a failover)')
      const left = [...known].filter((r) => !now.has(r))
      known = now
      if (left.length > 0) {
        fencedUntil = Date.now() + holdMs
        gone = left
        onFence?.(left)
      }
      if (Date.now() < fencedUntil)
        throw unreplicated(
          `replica ${gone.join(', ')} left the master: a failover may be under way, which would drop this write`,
        )
      const acknowledged = Number(waited?.[1] ?? 0)
      if (acknowledged < replicas)
        throw unreplicated(
          `${acknowledged} of the ${replicas} replicas REDIS_WRITE_REPLICAS asks for confirmed it within ${timeoutMs} ms`,
        )
      return written[1] as T
    },
  }
}
