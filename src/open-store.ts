// Builds the layered store from the configuration: the Redis connections, the PHP pool, the files directory, the
// cache and its invalidation. Shared by the HTTP server (src/plugins/store.ts) and the command line.

import { existsSync } from 'node:fs'
import { resolve } from 'node:path'
import type { FastifyBaseLogger as Logger } from 'fastify'
import type { Redis } from 'ioredis'
import { createFileStore, type FileStore, magicLinkAliases } from '../stores/file-store.js'
import type { PhpStore } from '../stores/php-store.js'
import { createRedisStore } from '../stores/redis-store.js'
import type { Layer } from '../stores/types.js'
import { ConfigCache } from './cache.js'
import type { AppConfig } from './config.js'
import { reasonOf } from './errors.js'
import { type Invalidation, startInvalidation } from './invalidation.js'
import { LastKnownGood } from './last-known-good.js'
import { type ConfigStore, createConfigStore } from './store.js'
import { createValidator } from './validation.js'

export interface OpenedStore {
  store: ConfigStore
  /** The Redis command connection, when Redis is configured (shared by the failed-auth rate limit). */
  redis: Redis | undefined
  /** Resolves once Redis answered (and cache invalidation is set up) or failed its first connect, so a fresh
   * process does not start on a fallback. */
  connected: Promise<void>
  close(): Promise<void>
}

type RedisClass = typeof import('ioredis').Redis

/** What an ops engineer must fix, for the connection errors that no retry will cure; undefined for the others. */
function misconfiguration(err: Error, url: string): string | undefined {
  if (err.message.startsWith('NOAUTH')) return 'Redis requires a password (NOAUTH): put it in REDIS_URL'
  if (err.message.startsWith('WRONGPASS')) return 'Redis refused the user or password in REDIS_URL (WRONGPASS)'
  const code = (err as NodeJS.ErrnoException).code ?? ''
  if (
    url.startsWith('rediss:') &&
    (/TLS|SSL/i.test(err.message) || /^(ERR_SSL|ERR_TLS|EPROTO|ECONNRESET|ETIMEDOUT)/.test(code))
  )
    return 'the TLS handshake with Redis failed: is the server speaking TLS on that port (rediss:// in REDIS_URL)?'
  return undefined
}

function connectRedis(Client: RedisClass, config: AppConfig, log: Logger, role: string, extra: { protocol?: 2 } = {}) {
  const url = config.REDIS_URL as string
  const redis = new Client(url, {
    connectionName: `config-store:${role}`,
    enableOfflineQueue: false, // fail fast while Redis is down, never queue
    maxRetriesPerRequest: 0,
    connectTimeout: config.REDIS_CONNECT_TIMEOUT_MS,
    commandTimeout: config.REDIS_COMMAND_TIMEOUT_MS,
    autoResubscribe: false,
    retryStrategy: (times) => Math.min(50 * 2 ** Math.min(times, 5), 1000),
    ...extra,
  })
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
    const cause = misconfiguration(err, url)
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

/** The warning for a files directory that does not exist yet, or undefined (a typo in CONFIG_FILES_DIR must not go
 * unnoticed until a write creates the wrong directory). */
export function missingFilesDir(config: AppConfig): string | undefined {
  if (existsSync(config.CONFIG_FILES_DIR)) return undefined
  return `CONFIG_FILES_DIR ${resolve(config.CONFIG_FILES_DIR)} does not exist: the files layer holds nothing, and the first write to it will create it`
}

export async function openStore(config: AppConfig, log: Logger): Promise<OpenedStore> {
  const missing = missingFilesDir(config)
  if (missing !== undefined) log.warn({ layer: 'files' }, missing)
  const validator = createValidator({
    schemasDir: config.CONFIG_SCHEMAS_DIR,
    unknownKeys: config.CONFIG_STORE_UNKNOWN_KEYS,
    aliases: magicLinkAliases(config.CONFIG_FILES_DIR, config.MAGIC_LINK_TOKENS_FILE),
  })
  // CONFIG_CACHE_MAX_BYTES bounds every in-memory copy of stored texts: 3/8 for the cache of resolved reads, 1/8 for
  // the last-known-good copies in use, a quarter each for the Redis and files layers' memos of what their texts hold.
  const memory = config.CONFIG_CACHE_MAX_BYTES
  const limits = (share: number) => ({ maxBytes: memory * share, maxNodes: config.CONFIG_MAX_NODES })
  const cache = new ConfigCache({ ttlMs: config.CONFIG_CACHE_TTL_MS, maxBytes: (memory * 3) / 8 })
  const lkg = new LastKnownGood(config.lkgDir, log, memory / 8)
  const loaded = lkg.load()
  const layers: Layer[] = []
  const clients: Redis[] = []
  let php: PhpStore | undefined
  let files: FileStore | undefined
  let invalidation: Invalidation | undefined
  let redis: Redis | undefined
  for (const name of config.layers) {
    if (name === 'redis') {
      // Loaded only when configured (start-up time). `default`: what a bundled dynamic import of CommonJS exposes.
      const Client = (await import('ioredis')).default as unknown as RedisClass
      const commands = connectRedis(Client, config, log, 'commands')
      redis = commands.redis
      clients.push(redis)
      layers.push(
        createRedisStore({
          redis,
          prefix: config.CONFIG_STORE_REDIS_PREFIX,
          connectionError: () => commands.lastError,
          ...limits(1 / 4),
        }),
      )
      // RESP2 for the subscriber: ioredis passes on tracking invalidations only as pub/sub messages.
      const subscriber = connectRedis(Client, config, log, 'invalidation', { protocol: 2 }).redis
      clients.push(subscriber)
      invalidation = startInvalidation({
        redis,
        subscriber,
        prefix: config.CONFIG_STORE_REDIS_PREFIX,
        cache,
        log,
        onChange: (key) => {
          for (const k of key === null ? lkg.keys() : [key]) void store.refresh(k)
        },
      })
    } else if (name === 'php') {
      // Loaded only when configured: the HTTP client is a large part of start-up time.
      const { createPhpStore } = await import('../stores/php-store.js')
      php = createPhpStore({
        baseUrl: config.EXTERNAL_CONFIG_BASE_URL as string,
        token: config.CONFIG_API_TOKEN as string,
        connectTimeoutMs: config.PHP_CONNECT_TIMEOUT_MS,
        timeoutMs: config.PHP_TIMEOUT_MS,
        circuitResetMs: config.PHP_CIRCUIT_RESET_MS,
        maxBytes: config.CONFIG_MAX_BYTES,
        maxNodes: config.CONFIG_MAX_NODES,
        reshape: (key, doc) => validator.fromPhp(key, doc),
        onCircuitChange: (open, reason) =>
          open
            ? log.warn({ layer: 'php', reason }, 'php layer down; skipped until it answers again')
            : log.info({ layer: 'php' }, 'php layer recovered'),
      })
      layers.push(php)
    } else {
      files = createFileStore({
        dir: config.CONFIG_FILES_DIR,
        magicLinkTokensFile: config.MAGIC_LINK_TOKENS_FILE,
        ...limits(1 / 4),
      })
      layers.push(files)
    }
  }
  const store = createConfigStore({
    layers,
    validator,
    cache,
    log,
    invalidation,
    maxKeys: config.CONFIG_MAX_KEYS,
    lkg,
  })
  const connected = Promise.all(
    clients.map(
      (c) =>
        new Promise<void>((resolve) => {
          if (c.status === 'ready') return resolve()
          c.once('ready', () => resolve())
          c.once('error', () => resolve())
        }),
    ),
  )
    .then(() => invalidation?.settled())
    .then(() => loaded)
  return {
    store,
    redis,
    connected,
    async close() {
      files?.close()
      await lkg.flushed()
      // QUIT lets replies in flight arrive; a client that is not connected would wait for a reconnect that may never
      // come (and hold the shutdown until its deadline), so it is just disconnected.
      const quit = (c: Redis) =>
        c.status === 'ready'
          ? c.quit().then(
              () => undefined,
              () => c.disconnect(),
            )
          : c.disconnect()
      await Promise.all([...clients.map(quit), php?.close()])
    },
  }
}
