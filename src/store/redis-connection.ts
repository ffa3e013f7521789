// The Redis connections of the store: fail fast while Redis is down (no offline queue, no retries of a command),
// reconnect with a capped backoff, and say once, in words an ops engineer can act on, what no retry will cure.
import type { FastifyBaseLogger as Logger } from 'fastify'
import type { AppConfig } from '../config.js'
import { reasonOf } from '../errors.js'

export type RedisClass = typeof import('ioredis').Redis

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

export function connectRedis(
  Client: RedisClass,
  config: AppConfig,
  log: Logger,
  role: string,
  extra: { protocol?: 2 } = {},
) {
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
