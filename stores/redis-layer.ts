// The Redis layer, in the legacy layout: `<prefix><key>` → the document as a JSON string (UTF-8 unescaped,
// `_updated_at` included), plain GET/SET, no TTL, so the legacy app can share the same Redis (docs/legacy.md).
import { randomBytes } from 'node:crypto'
import type { Cluster, Redis } from 'ioredis'
import { LayerUnavailableError, reasonOf } from '../src/errors.js'
import { type ConfigDocument, isValidKey, type Layer, type ReadResult, timed } from './layer.js'
import { directWrites, type RedisClient, type Replication } from './redis-replicas.js'
import { TextReader, type TextReaderOptions, textReaderDefaults } from './text-reader.js'

export interface RedisLayerOptions extends Partial<TextReaderOptions> {
  redis: RedisClient
  prefix: string
  /** Why the connection is down, when it is (NOAUTH, a TLS handshake), for health. */
  connectionError?: () => string | undefined
  /** How writes are sent and confirmed (REDIS_WRITE_REPLICAS); default: on their own. */
  replication?: Replication
  /** A connection to a replica, read when the master cannot be (REDIS_READ_FROM=replica). */
  replica?: RedisClient
}

export interface RedisLayer extends Layer {
  readonly prefix: string
  swap: NonNullable<Layer['swap']>
  /** A lock at `<prefix>:<name>` that expires after `ttlMs` even if its holder dies; null when someone holds it. */
  tryLock(name: string, ttlMs: number): Promise<(() => Promise<void>) | null>
}

// ARGV: expected absent ('1') or not, the expected text, then '1' to delete or '0' and the new text.
const SWAP = `local cur = redis.call('GET', KEYS[1])
if ARGV[1] == '1' then
  if cur then return 0 end
elseif cur ~= ARGV[2] then
  return 0
end
if ARGV[3] == '1' then redis.call('DEL', KEYS[1]) else redis.call('SET', KEYS[1], ARGV[4]) end
return 1`

const UNLOCK = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`

export function createRedisLayer({
  redis,
  prefix,
  connectionError,
  replication = directWrites(redis),
  replica,
  ...limits
}: RedisLayerOptions): RedisLayer {
  const unavailable = (err: unknown) => new LayerUnavailableError('redis', reasonOf(err), err)
  const reader = new TextReader({ ...textReaderDefaults, ...limits })

  /** The master could not be read (`reason`): a replica's copy, marked stale, when one is configured and holds the
   * key. A replica that does not hold it (it may lag) tells nothing: the layer is unavailable. */
  async function fromReplica(key: string, reason: string): Promise<ReadResult> {
    const down = { state: 'unavailable', reason } as const
    if (replica === undefined || replica.status !== 'ready') return down
    const json = await replica.get(prefix + key).catch(() => null)
    const hit = json === null ? undefined : reader.hit(key, json)
    if (hit === undefined || typeof hit === 'string') return down
    const { json: text, updatedAt, doc, etag } = hit // (a TextHit's fields are getters: copied one by one)
    return { state: 'hit', json: text, updatedAt, doc, ...(etag === undefined ? {} : { etag }), stale: true }
  }

  return {
    name: 'redis',
    prefix,

    async get(key: string): Promise<ReadResult> {
      // Known down: answer at once, without making ioredis build and throw an error per read.
      if (redis.status !== 'ready') return fromReplica(key, `Redis connection is ${redis.status}`)
      let json: string | null
      try {
        json = await redis.get(prefix + key)
      } catch (err) {
        return fromReplica(key, reasonOf(err))
      }
      if (json === null) return { state: 'absent' }
      const hit = reader.hit(key, json)
      if (typeof hit !== 'string') return hit
      return { state: 'unavailable', reason: `value at ${prefix}${key} ${hit}`, unreadable: json }
    },

    wrote: (key, json, updatedAt, etag) => reader.remember(key, json, updatedAt, etag),

    async set(key: string, doc: ConfigDocument, json = JSON.stringify(doc)): Promise<void> {
      await replication.write(prefix + key, (c) => c.set(prefix + key, json))
    },

    async delete(key: string) {
      const deleted = (n: number) => n > 0
      return deleted(await replication.write(prefix + key, (c) => c.del(prefix + key), deleted)) ? 'deleted' : 'absent'
    },

    async listKeys(): Promise<string[]> {
      const keys = new Set<string>()
      const match = `${prefix.replace(/[*?[\]\\]/g, '\\$&')}*`
      try {
        // A cluster's keys are spread over its masters: each is scanned.
        for (const node of redis.isCluster ? (redis as Cluster).nodes('master') : [redis as Redis]) {
          let cursor = '0'
          do {
            const [next, batch] = await node.scan(cursor, 'MATCH', match, 'COUNT', 1000)
            cursor = next
            for (const name of batch) {
              // Metadata lives at `<prefix>:<name>` or `<prefix><key>:<suffix>`: never a valid key name (docs/architecture.md "Redis layout").
              const key = name.slice(prefix.length)
              if (isValidKey(key)) keys.add(key)
            }
          } while (cursor !== '0')
        }
      } catch (err) {
        throw unavailable(err)
      }
      return [...keys].sort()
    },

    async swap(key, expected, json) {
      const args = [expected === null ? '1' : '0', expected ?? '', json === null ? '1' : '0', json ?? '']
      const swapped = (reply: unknown) => reply === 1
      return swapped(await replication.write(prefix + key, (c) => c.eval(SWAP, 1, prefix + key, ...args), swapped))
    },

    async tryLock(name, ttlMs) {
      // `<prefix>:<name>` can never be a config key: key names have no colon (docs/architecture.md "Redis layout").
      const lock = `${prefix}:${name}`
      const token = randomBytes(16).toString('hex')
      // Taken as writes are (REDIS_WRITE_REPLICAS): a lock only the master held would be gone after a failover, and a
      // second migration could start beside the first.
      const taken = (reply: unknown) => reply === 'OK'
      try {
        if (!taken(await replication.write(lock, (c) => c.set(lock, token, 'PX', ttlMs, 'NX'), taken))) return null
      } catch (err) {
        if (err instanceof LayerUnavailableError) {
          // Not known to hold: let go of what the master may hold, and say why.
          await redis.eval(UNLOCK, 1, lock, token).catch(() => undefined)
          throw new LayerUnavailableError('redis', `the migration lock ${err.reason}`, err, 'not_written')
        }
        throw unavailable(err)
      }
      return async () => {
        await redis.eval(UNLOCK, 1, lock, token).catch(() => undefined) // if Redis is gone, the TTL frees it
      }
    },

    async health() {
      if (redis.status !== 'ready') {
        return { ok: false, latencyMs: 0, error: connectionError?.() ?? `Redis connection is ${redis.status}` }
      }
      try {
        const { ms } = await timed(() => redis.ping())
        return { ok: true, latencyMs: ms }
      } catch (err) {
        return { ok: false, latencyMs: 0, error: reasonOf(err) }
      }
    },
  }
}
