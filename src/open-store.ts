// Builds the layered store from the configuration: the Redis connections, the PHP pool, the files directory, the
// cache and its invalidation. Shared by the HTTP server (src/plugins/store.ts) and the command line.

import type { FastifyBaseLogger as Logger } from 'fastify'
import type { Redis } from 'ioredis'
import { createFileStore, type FileStore } from '../stores/file-store.js'
import type { PhpStore } from '../stores/php-store.js'
import { createRedisStore } from '../stores/redis-store.js'
import type { Layer } from '../stores/types.js'
import { ConfigCache } from './cache.js'
import type { AppConfig } from './config.js'
import { reasonOf } from './errors.js'
import { type Invalidation, startInvalidation } from './invalidation.js'
import { type ConfigStore, createConfigStore } from './store.js'
import { createValidator } from './validation.js'

export interface OpenedStore {
  store: ConfigStore
  /** Resolves once Redis answered (and cache invalidation is set up) or failed its first connect, so a fresh
   * process does not start on a fallback. */
  connected: Promise<void>
  close(): Promise<void>
}

type RedisClass = typeof import('ioredis').Redis

function connectRedis(Client: RedisClass, config: AppConfig, log: Logger, role: string, extra: { protocol?: 2 } = {}) {
  const redis = new Client(config.REDIS_URL as string, {
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
  redis.on('ready', () => {
    if (role === 'commands') log.info({ layer: 'redis' }, up ? 'redis layer recovered' : 'redis layer connected')
    up = true
  })
  redis.on('error', (err) => {
    if (up && role === 'commands') log.warn({ layer: 'redis', reason: reasonOf(err) }, 'redis layer down')
    up = false
  })
  return redis
}

export async function openStore(config: AppConfig, log: Logger): Promise<OpenedStore> {
  const validator = createValidator({
    schemasDir: config.CONFIG_SCHEMAS_DIR,
    unknownKeys: config.CONFIG_STORE_UNKNOWN_KEYS,
  })
  const cache = new ConfigCache({ ttlMs: config.CONFIG_CACHE_TTL_MS, maxBytes: config.CONFIG_CACHE_MAX_BYTES })
  const layers: Layer[] = []
  const clients: Redis[] = []
  let php: PhpStore | undefined
  let files: FileStore | undefined
  let invalidation: Invalidation | undefined
  for (const name of config.layers) {
    if (name === 'redis') {
      // Loaded only when configured (start-up time). `default`: what a bundled dynamic import of CommonJS exposes.
      const Client = (await import('ioredis')).default as unknown as RedisClass
      const redis = connectRedis(Client, config, log, 'commands')
      clients.push(redis)
      layers.push(createRedisStore({ redis, prefix: config.CONFIG_STORE_REDIS_PREFIX }))
      // RESP2 for the subscriber: ioredis passes on tracking invalidations only as pub/sub messages.
      const subscriber = connectRedis(Client, config, log, 'invalidation', { protocol: 2 })
      clients.push(subscriber)
      invalidation = startInvalidation({ redis, subscriber, prefix: config.CONFIG_STORE_REDIS_PREFIX, cache, log })
    } else if (name === 'php') {
      // Loaded only when configured: the HTTP client is a large part of start-up time.
      const { createPhpStore } = await import('../stores/php-store.js')
      php = createPhpStore({
        baseUrl: config.EXTERNAL_CONFIG_BASE_URL as string,
        token: config.CONFIG_API_TOKEN as string,
        connectTimeoutMs: config.PHP_CONNECT_TIMEOUT_MS,
        timeoutMs: config.PHP_TIMEOUT_MS,
        circuitResetMs: config.PHP_CIRCUIT_RESET_MS,
        onCircuitChange: (open, reason) =>
          open
            ? log.warn({ layer: 'php', reason }, 'php layer down; skipped until it answers again')
            : log.info({ layer: 'php' }, 'php layer recovered'),
      })
      layers.push(php)
    } else {
      files = createFileStore({ dir: config.CONFIG_FILES_DIR, magicLinkTokensFile: config.MAGIC_LINK_TOKENS_FILE })
      layers.push(files)
    }
  }
  const store = createConfigStore({ layers, validator, cache, log, invalidation })
  const connected = Promise.all(
    clients.map(
      (c) =>
        new Promise<void>((resolve) => {
          if (c.status === 'ready') return resolve()
          c.once('ready', () => resolve())
          c.once('error', () => resolve())
        }),
    ),
  ).then(() => invalidation?.settled())
  return {
    store,
    connected,
    async close() {
      files?.close()
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
