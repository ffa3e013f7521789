// Builds the layered store from the configuration: the Redis connections, the PHP pool, the files directory, the
// cache and its invalidation. Shared by the HTTP server (src/plugins/store.ts) and the command line.

import { existsSync } from 'node:fs'
import { resolve } from 'node:path'
import type { FastifyBaseLogger as Logger } from 'fastify'
import type { Redis } from 'ioredis'
import { createFileLayer, type FileLayer, magicLinkAliases } from '../../stores/file-layer.js'
import type { Layer } from '../../stores/layer.js'
import type { PhpLayer } from '../../stores/php-layer.js'
import { createRedisLayer } from '../../stores/redis-layer.js'
import type { AppConfig } from '../config.js'
import { ConfigCache } from './cache.js'
import { type Invalidation, startInvalidation } from './invalidation.js'
import { LastKnownGood } from './last-known-good.js'
import { type ConfigStore, createConfigStore } from './layered-store.js'
import { connectRedis, type RedisClass } from './redis-connection.js'
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
  let php: PhpLayer | undefined
  let files: FileLayer | undefined
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
        createRedisLayer({
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
      const { createPhpLayer } = await import('../../stores/php-layer.js')
      php = createPhpLayer({
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
      files = createFileLayer({
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
