// The Redis side of the store: the layer on a command connection (and, with REDIS_WRITE_REPLICAS, one for writes;
// with REDIS_READ_FROM=replica, one to a replica), and cache invalidation on a subscriber connection (in a cluster, a
// pair per node). Every connection fails fast while Redis is down (no offline queue, no retries of a command),
// reconnects with a capped backoff, and says once, in words an ops engineer can act on, what no retry will cure.
import type { FastifyBaseLogger as Logger } from 'fastify'
import type { Cluster, Redis, RedisOptions } from 'ioredis'
import type { Layer } from '../../stores/layer.js'
import { createRedisLayer } from '../../stores/redis-layer.js'
import { createReplication, type RedisClient, type Replication } from '../../stores/redis-replicas.js'
import { type AppConfig, truthy } from '../config.js'
import { reasonOf } from '../errors.js'
import type { ConfigCache } from './cache.js'
import { type Invalidation, startClusterInvalidation, startInvalidation } from './invalidation.js'

type RedisClass = typeof import('ioredis').Redis
type ClusterClass = typeof import('ioredis').Cluster

/** How long writes stay unconfirmed after a replica left a master that stayed the master (stores/redis-replicas.ts):
 * longer than a Sentinel takes to demote the old master after a promotion. */
const REPLICA_HOLD_MS = 10_000

/** What an ops engineer must fix, for the connection errors that no retry will cure; undefined for the others. */
function misconfiguration(err: Error, config: AppConfig): string | undefined {
  const sentinel = config.sentinels !== undefined
  const cluster = config.clusterNodes !== undefined
  const password = sentinel || cluster ? 'REDIS_PASSWORD' : 'REDIS_URL'
  if (err.message.startsWith('NOAUTH')) return `Redis requires a password (NOAUTH): put it in ${password}`
  if (err.message.startsWith('WRONGPASS')) return `Redis refused the user or password in ${password} (WRONGPASS)`
  if (sentinel && /All sentinels are unreachable/.test(err.message))
    return `no Sentinel in REDIS_SENTINELS answered for the master group ${config.REDIS_SENTINEL_NAME} (is REDIS_SENTINEL_NAME right, and REDIS_SENTINEL_PASSWORD?)`
  if (cluster && /Failed to refresh slots cache|None of startup nodes is available/.test(err.message))
    return 'no node in REDIS_CLUSTER_NODES answered as a member of a Redis Cluster (are the addresses right, and is cluster mode on?)'
  const tls = sentinel || cluster ? truthy(config.REDIS_TLS) : config.REDIS_URL?.startsWith('rediss:') === true
  const code = (err as NodeJS.ErrnoException).code ?? ''
  if (tls && (/TLS|SSL/i.test(err.message) || /^(ERR_SSL|ERR_TLS|EPROTO|ECONNRESET|ETIMEDOUT)/.test(code)))
    return `the TLS handshake with Redis failed: is the server speaking TLS on that port (${sentinel || cluster ? 'REDIS_TLS' : 'rediss:// in REDIS_URL'})?`
  return undefined
}

/** The master the Sentinels name, found again after a failover: on a `+switch-master` the connection is dropped at
 * once and made to the new master. */
function sentinelOptions(config: AppConfig) {
  const tls = truthy(config.REDIS_TLS) ? { tls: {}, sentinelTLS: {}, enableTLSForSentinelMode: true } : {}
  return {
    sentinels: config.sentinels ?? [],
    name: config.REDIS_SENTINEL_NAME as string,
    ...(config.REDIS_SENTINEL_PASSWORD === undefined ? {} : { sentinelPassword: config.REDIS_SENTINEL_PASSWORD }),
    ...(config.REDIS_PASSWORD === undefined ? {} : { password: config.REDIS_PASSWORD }),
    ...tls,
    failoverDetector: true,
  }
}

/** The password and TLS of REDIS_PASSWORD and REDIS_TLS, for a cluster's nodes. */
const nodeAuth = (config: AppConfig) => ({
  ...(config.REDIS_PASSWORD === undefined ? {} : { password: config.REDIS_PASSWORD }),
  ...(truthy(config.REDIS_TLS) ? { tls: {} } : {}),
})

interface ConnectOptions {
  protocol?: 2
  blocking?: boolean
  /** To a replica (REDIS_READ_FROM=replica): one Sentinel names, or a cluster's replicas of each slot. */
  replica?: boolean
  /** One node of a cluster, on its own (cache invalidation). */
  node?: { host: string; port: number }
}

/** Commands sent in one turn of the event loop leave in one socket write: the socket is corked at the first and
 * uncorked once the turn's I/O callbacks have run. Under load that is one write for many requests' commands instead of
 * one each. Each command keeps its own command timeout. A socket with bytes still queued is not corked (Node writes
 * what queues there together when it drains), and a batch is sent once it holds FLUSH_AT bytes: large documents
 * are not held back behind each other. (ioredis's enableAutoPipelining batches too, but holds every new command back
 * while an earlier batch waits for its answers: a stalled Redis doubled the command timeout.) */
function coalesceWrites(redis: Redis): void {
  const send = redis.sendCommand.bind(redis)
  let corked: Redis['stream'] | undefined
  const flush = () => {
    const socket = corked
    corked = undefined
    socket?.uncork()
  }
  redis.sendCommand = (command, stream) => {
    const socket = redis.stream
    if (corked === undefined && socket?.writable && socket.writableLength === 0) {
      corked = socket
      socket.cork()
      setImmediate(flush)
    }
    const sent = send(command, stream)
    if (corked !== undefined && corked.writableLength >= FLUSH_AT) flush()
    return sent
  }
}
const FLUSH_AT = 64 * 1024

function connectRedis(
  Client: RedisClass,
  config: AppConfig,
  log: Logger,
  role: string,
  { protocol, blocking = false, node, replica = false }: ConnectOptions = {},
) {
  const options = {
    connectionName: `config-store:${role}`,
    enableOfflineQueue: false, // fail fast while Redis is down, never queue
    maxRetriesPerRequest: 0,
    connectTimeout: config.REDIS_CONNECT_TIMEOUT_MS,
    // A blocking read (the feed's XREAD BLOCK) waits on purpose: no command timeout on that connection.
    ...(blocking ? {} : { commandTimeout: config.REDIS_COMMAND_TIMEOUT_MS }),
    autoResubscribe: false,
    retryStrategy: (times: number) => Math.min(50 * 2 ** Math.min(times, 5), 1000),
    ...(protocol === undefined ? {} : { protocol }),
  } satisfies RedisOptions
  const redis: RedisClient =
    node !== undefined
      ? new Client({ ...node, ...nodeAuth(config), ...options })
      : config.clusterNodes !== undefined
        ? new (Client as unknown as { Cluster: ClusterClass }).Cluster(config.clusterNodes, {
            redisOptions: { ...nodeAuth(config), ...options },
            enableOfflineQueue: false,
            // Reads go to masters, so that a read after a write sees it (no replica lag); the replica-reads
            // connection (REDIS_READ_FROM=replica) reads replicas.
            scaleReads: replica ? 'slave' : 'master',
            clusterRetryStrategy: options.retryStrategy,
            slotsRefreshTimeout: config.REDIS_CONNECT_TIMEOUT_MS,
          })
        : config.sentinels === undefined
          ? new Client(config.REDIS_URL as string, options)
          : new Client({ ...sentinelOptions(config), ...(replica ? { role: 'slave' as const } : {}), ...options })
  if (!blocking) {
    if (redis.isCluster) redis.on('+node', coalesceWrites)
    else coalesceWrites(redis as Redis)
  }
  let up = false
  let everUp = false
  let reported: string | undefined
  const state = { redis, lastError: undefined as string | undefined }
  redis.on('ready', () => {
    if (role === 'commands') log.info({ layer: 'redis' }, everUp ? 'redis layer recovered' : 'redis layer connected')
    up = true
    everUp = true
    reported = undefined
    state.lastError = undefined
  })
  redis.on('error', (err) => {
    const cause = misconfiguration(err, config)
    // The cause names what to fix, without the retry's own error text, so that retries do not repeat the ERROR line.
    state.lastError = cause === undefined ? reasonOf(err) : `${cause} (${reasonOf(err)})`
    // A wrong password or TLS setting is never cured by retrying: one ERROR line naming it (again only if it changes).
    if (cause !== undefined && cause !== reported && role === 'commands')
      log.error({ layer: 'redis', reason: reasonOf(err) }, cause)
    else if (up && role === 'commands') log.warn({ layer: 'redis', reason: reasonOf(err) }, 'redis layer down')
    if (cause !== undefined) reported = cause
    up = false
  })
  return state
}

export interface OpenedRedis {
  layer: Layer
  /** The command connection (shared by the failed-auth rate limit). */
  redis: RedisClient
  /** How writes are sent and confirmed (REDIS_WRITE_REPLICAS). */
  replication: Replication
  invalidation: Invalidation
  /** A connection of its own for the change feed's blocking reads (no command timeout), closed with the others. */
  connectFeed(): RedisClient
  /** Resolves once both connections answered or failed their first connect, and invalidation was set up. */
  connected: Promise<void>
  close(): Promise<void>
}

/** The Redis layer and its invalidation. ioredis is loaded only when Redis is configured (start-up time). */
export async function openRedis(
  config: AppConfig,
  log: Logger,
  cache: ConfigCache,
  onChange: (key: string | null, revised: boolean) => void,
): Promise<OpenedRedis> {
  // `default`: what a bundled dynamic import of CommonJS exposes.
  const Client = (await import('ioredis')).default as unknown as RedisClass
  const commands = connectRedis(Client, config, log, 'commands')
  const { redis } = commands
  // Writes that wait for replicas go on a connection of their own: a WAIT holds back what is queued behind it.
  const writes = config.REDIS_WRITE_REPLICAS > 0 ? connectRedis(Client, config, log, 'replicated-writes').redis : redis
  const replication = createReplication({
    redis: writes,
    replicas: config.REDIS_WRITE_REPLICAS,
    timeoutMs: config.REDIS_WRITE_REPLICAS_TIMEOUT_MS,
    holdMs: REPLICA_HOLD_MS,
    onFence: (gone) =>
      log.warn(
        { layer: 'redis', replicas: gone },
        `replica ${gone.join(', ')} left the Redis master: writes answer WRITE_OUTCOME_UNKNOWN until the master changes or ${REPLICA_HOLD_MS / 1000} s pass without another replica leaving (REDIS_WRITE_REPLICAS)`,
      ),
  })
  const replica =
    config.REDIS_READ_FROM === 'replica'
      ? connectRedis(Client, config, log, 'replica-reads', { replica: true }).redis
      : undefined
  const layer = createRedisLayer({
    redis,
    replication,
    ...(replica === undefined ? {} : { replica }),
    prefix: config.CONFIG_STORE_REDIS_PREFIX,
    connectionError: () => commands.lastError,
    maxBytes: config.CONFIG_CACHE_MAX_BYTES / 4,
    maxNodes: config.CONFIG_MAX_NODES,
  })
  const prefix = config.CONFIG_STORE_REDIS_PREFIX
  const clients = [...new Set([redis, writes, ...(replica === undefined ? [] : [replica])])]
  // RESP2 for a subscriber: ioredis passes on tracking invalidations only as pub/sub messages.
  const connectNode = (node: { host: string; port: number }, role: string, protocol?: 2) =>
    connectRedis(Client, config, log, role, { node, ...(protocol === undefined ? {} : { protocol }) }).redis as Redis
  let closeInvalidation = async () => {}
  let invalidation: Invalidation
  if (redis.isCluster) {
    const cluster = startClusterInvalidation({
      cluster: redis as Cluster,
      connect: connectNode,
      prefix,
      cache,
      log,
      onChange,
    })
    invalidation = cluster
    closeInvalidation = () => cluster.close()
  } else {
    const subscriber = connectRedis(Client, config, log, 'invalidation', { protocol: 2 }).redis as Redis
    invalidation = startInvalidation({ redis: redis as Redis, subscriber, prefix, cache, log, onChange })
    clients.push(subscriber)
  }
  const connectFeed = () => {
    const feed = connectRedis(Client, config, log, 'feed', { blocking: true }).redis
    clients.push(feed)
    return feed
  }
  const firstConnect = (c: RedisClient) =>
    new Promise<void>((resolve) => {
      if (c.status === 'ready') return resolve()
      c.once('ready', () => resolve())
      c.once('error', () => resolve())
    })
  // QUIT lets replies in flight arrive; a client that is not connected would wait for a reconnect that may never
  // come (and hold the shutdown until its deadline), so it is just disconnected.
  const quit = (c: RedisClient) =>
    c.status === 'ready'
      ? c.quit().then(
          () => undefined,
          () => c.disconnect(),
        )
      : c.disconnect()
  return {
    layer,
    redis,
    replication,
    invalidation,
    connectFeed,
    connected: Promise.all(clients.map(firstConnect)).then(() => invalidation.settled()),
    close: async () => {
      await closeInvalidation()
      await Promise.all(clients.map(quit))
    },
  }
}
