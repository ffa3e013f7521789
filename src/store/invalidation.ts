// Cross-instance and cross-writer cache invalidation (docs/architecture.md "The cache and its invalidation"): Redis server-assisted client-side caching in
// broadcast mode. The command connection tracks every key under the prefix and redirects invalidations to the
// subscriber connection, so a write by any client (another instance, the legacy app, redis-cli) drops the key here.
// Writes that do not touch Redis (a PHP primary, deletes) are announced on `<prefix>:invalidate`.
// While either connection is down the cache is switched off, since nothing would tell it about changes.

import type { FastifyBaseLogger as Logger } from 'fastify'
import type { Redis } from 'ioredis'
import { isValidKey } from '../../stores/layer.js'
import { reasonOf } from '../errors.js'
import type { ConfigCache } from './cache.js'

const TRACKING_CHANNEL = '__redis__:invalidate'

export interface Invalidation {
  /** Tells every instance that `key` changed somewhere Redis tracking cannot see. */
  announce(key: string): Promise<void>
  /** Resolves when the set-up started so far has finished (or failed). */
  settled(): Promise<void>
  /** Change notices received since start-up (each key of a tracking message counts once). */
  received(): number
}

/** The keys a pub/sub message says changed: a tracking invalidation of prefixed Redis keys, or a key announced on
 * `<prefix>:invalidate`; null stands for every key (a FLUSHDB or FLUSHALL). The service's own names under the prefix
 * (history, the feed, locks: they hold a colon) are no config key, and are left out. */
export function changedKeys(channel: string, message: Buffer | Buffer[] | null, prefix: string): Array<string | null> {
  if (channel === `${prefix}:invalidate`) return [String(message)]
  if (channel !== TRACKING_CHANNEL) return []
  if (message === null) return [null]
  return [message]
    .flat()
    .map((full) => full.toString().slice(prefix.length))
    .filter(isValidKey)
}

/** The keys of a tracking message that came with their revision: the message names the key's history list too, as
 * it does for a write made through the service (one script writes both, and Redis sends the keys a command changed
 * in one message). Their change is recorded already; the other keys' may not be. */
export function revisedKeys(message: Buffer | Buffer[] | null, prefix: string): Set<string> {
  const start = `${prefix}:history:{${prefix}`
  const revised = new Set<string>()
  for (const full of [message ?? []].flat()) {
    const name = full.toString()
    if (name.startsWith(start) && name.endsWith('}')) revised.add(name.slice(start.length, -1))
  }
  return revised
}

export function startInvalidation(opts: {
  redis: Redis
  subscriber: Redis
  prefix: string
  cache: ConfigCache
  log: Logger
  /** Called for each key another writer changed (null: all of them, after FLUSHDB), once the cache dropped it;
   * `revised`: the change came with its revision (a write through another instance). */
  onChange?: (key: string | null, revised: boolean) => void
}): Invalidation {
  const { redis, subscriber, prefix, cache, log, onChange } = opts
  const channel = `${prefix}:invalidate`
  let setup: Promise<void> = Promise.resolve()
  let subscriberId: number | undefined
  let received = 0

  cache.setActive(false)

  subscriber.on('messageBuffer', (from: Buffer, message: Buffer | Buffer[] | null) => {
    const keys = changedKeys(from.toString(), message, prefix)
    const revised = keys.length > 0 && from.toString() === TRACKING_CHANNEL ? revisedKeys(message, prefix) : undefined
    for (const key of keys) {
      received++
      if (key === null) cache.clear()
      else cache.invalidate(key)
      onChange?.(key, key !== null && revised?.has(key) === true)
    }
  })

  async function enable(): Promise<void> {
    if (redis.status !== 'ready' || subscriber.status !== 'ready') return
    try {
      if (subscriberId === undefined) {
        // RESP2: once subscribed, the connection can no longer say its id.
        const id = Number(await subscriber.client('ID'))
        await subscriber.subscribe(TRACKING_CHANNEL, channel)
        subscriberId = id
      }
      await redis.call('CLIENT', 'TRACKING', 'OFF')
      // NOLOOP: this instance's own writes are dropped from its cache as they are made.
      await redis.call(
        'CLIENT',
        'TRACKING',
        'ON',
        'REDIRECT',
        String(subscriberId),
        'BCAST',
        'PREFIX',
        prefix,
        'NOLOOP',
      )
      cache.setActive(true)
      log.info({ layer: 'redis' }, 'cache invalidation active')
    } catch (err) {
      cache.setActive(false)
      log.warn({ layer: 'redis', reason: reasonOf(err) }, 'cache invalidation could not be enabled; cache bypassed')
    }
  }

  const onReady = () => {
    setup = setup.then(enable)
  }
  const onDown = () => {
    if (cache.active) log.warn({ layer: 'redis' }, 'cache invalidation lost; cache bypassed until Redis is back')
    cache.setActive(false)
  }
  subscriber.on('close', () => {
    subscriberId = undefined
  })
  for (const client of [redis, subscriber]) {
    client.on('ready', onReady)
    client.on('close', onDown)
  }
  onReady()

  return {
    settled: () => setup,
    received: () => received,
    async announce(key) {
      try {
        await redis.publish(channel, key)
      } catch (err) {
        log.warn({ layer: 'redis', key, reason: reasonOf(err) }, 'could not announce a change to other instances')
      }
    },
  }
}
