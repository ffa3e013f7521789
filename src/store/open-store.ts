// Builds the layered store from the configuration: the Redis connections, the PHP pool, the files directory, the
// cache and its invalidation. Shared by the HTTP server (src/http/plugins/store.ts) and the command line.
import { existsSync } from 'node:fs'
import { resolve } from 'node:path'
import type { FastifyBaseLogger as Logger } from 'fastify'
import { createFileLayer, type FileLayer, magicLinkAliases } from '../../stores/file-layer.js'
import type { Layer } from '../../stores/layer.js'
import type { PhpLayer } from '../../stores/php-layer.js'
import type { RedisClient } from '../../stores/redis-replicas.js'
import type { AppConfig } from '../config.js'
import { reasonOf } from '../errors.js'
import { ConfigCache } from './cache.js'
import { type History, noHistory, UnreadableCopy } from './history/history.js'
import { createJournal } from './history/journal.js'
import { createRedisHistory } from './history/redis.js'
import { LastKnownGood } from './last-known-good.js'
import { type ConfigStore, createConfigStore } from './layered-store.js'
import { type OpenedRedis, openRedis } from './open-redis.js'
import { createValidator, type DocumentValidator } from './validation.js'
import { webhookHostCheck } from './webhook-dns.js'

export interface OpenedStore {
  store: ConfigStore
  /** The Redis command connection, when Redis is configured (shared by the failed-auth rate limit). */
  redis: RedisClient | undefined
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
    webhookHosts: webhookHostCheck({
      mode: config.CONFIG_WEBHOOK_URL_CHECK,
      timeoutMs: config.CONFIG_WEBHOOK_DNS_TIMEOUT_MS,
      servers: config.CONFIG_WEBHOOK_DNS_SERVERS?.split(','),
    }),
  })
  // CONFIG_CACHE_MAX_BYTES bounds every in-memory copy of stored texts: 3/8 for the cache of resolved reads, 1/8 for
  // the last-known-good copies in use, a quarter each for the Redis and files layers' memos of what their texts hold.
  const memory = config.CONFIG_CACHE_MAX_BYTES
  const cache = new ConfigCache({ ttlMs: config.CONFIG_CACHE_TTL_MS, maxBytes: (memory * 3) / 8 })
  const lkg = new LastKnownGood(config.lkgDir, log, memory / 8)
  const loaded = lkg.load()
  const layers: Layer[] = []
  let opened: OpenedRedis | undefined
  let php: PhpLayer | undefined
  let files: FileLayer | undefined
  for (const name of config.layers) {
    if (name === 'redis') {
      opened = await openRedis(config, log, cache, (key, revised) => {
        store.forget(key) // wakes its blocking reads; the cache has dropped it already
        for (const k of key === null ? lkg.keys() : [key]) void store.refresh(k)
        // A change that came without its revision was made behind the service: recorded as external.
        if (key !== null && !revised && layers[0]?.name === 'redis') observe(key)
      })
      layers.push(opened.layer)
    } else if (name === 'php') {
      php = await openPhp(config, log, validator)
      layers.push(php)
    } else {
      files = createFileLayer({
        dir: config.CONFIG_FILES_DIR,
        magicLinkTokensFile: config.MAGIC_LINK_TOKENS_FILE,
        maxBytes: memory / 4,
        maxNodes: config.CONFIG_MAX_NODES,
        // A file changed behind the service's back: its cached value goes, and its blocking reads wake.
        onChange: (name) => {
          const key = validator.aliasOf(name) ?? name
          store.forget(key)
          if (layers[0]?.name === 'files') observe(key)
        },
      })
      layers.push(files)
    }
  }
  const primary = layers[0] as Layer
  if (primary === files) files.watch() // writes behind the service's back become revisions
  const history: History =
    config.CONFIG_HISTORY_MAX === 0
      ? noHistory()
      : opened === undefined
        ? createJournal({
            dir: config.CONFIG_FILES_DIR,
            max: config.CONFIG_HISTORY_MAX,
            feedMax: config.CONFIG_FEED_MAX,
            // A write waiting for another's lock answers well within the time a client gives a request.
            lockWaitMs: Math.min(10_000, config.REQUEST_TIMEOUT_MS / 2),
          })
        : createRedisHistory({
            redis: opened.redis,
            prefix: config.CONFIG_STORE_REDIS_PREFIX,
            max: config.CONFIG_HISTORY_MAX,
            feedMax: config.CONFIG_FEED_MAX,
            connect: opened.connectFeed,
            replication: opened.replication,
            onEventLost: (key, reason) =>
              log.warn(
                { key, reason },
                `a revision of ${key} was recorded, but its change event could not be added to the feed`,
              ),
            current: async (key) => {
              const r = await primary.get(key)
              if (r.state === 'unavailable' && r.unreadable !== undefined)
                throw new UnreadableCopy(r.unreadable, r.reason)
              if (r.state === 'unavailable') throw new Error(r.reason)
              return r.state === 'hit' ? { json: r.json, raw: r.raw } : undefined
            },
          })
  // A change notice about the primary's copy: a write behind the service's back becomes an `external` revision.
  const observe = (key: string) =>
    void store.observe(key).catch((err: unknown) => {
      log.warn({ key, reason: reasonOf(err) }, `a change of ${key} made outside the service could not be recorded`)
    })
  const store = createConfigStore({
    layers,
    validator,
    cache,
    log,
    invalidation: opened?.invalidation,
    maxKeys: config.CONFIG_MAX_KEYS,
    lkg,
    history,
  })
  const connected = Promise.all([opened?.connected, loaded]).then(() => undefined)
  return {
    store,
    redis: opened?.redis,
    connected,
    async close() {
      files?.close()
      await history.close()
      await lkg.flushed()
      await Promise.all([opened?.close(), php?.close()])
    },
  }
}

/** The PHP layer. Loaded only when configured: the HTTP client is a large part of start-up time. */
async function openPhp(config: AppConfig, log: Logger, validator: DocumentValidator): Promise<PhpLayer> {
  const { createPhpLayer } = await import('../../stores/php-layer.js')
  return createPhpLayer({
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
}
