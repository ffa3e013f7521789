// Cross-instance and cross-writer cache invalidation (docs/architecture.md "The cache and its invalidation"): Redis server-assisted client-side caching in
// broadcast mode. The command connection tracks every key under the prefix and redirects invalidations to the
// subscriber connection, so a write by any client (another instance, the legacy app, redis-cli) drops the key here.
// Writes that do not touch Redis (a PHP primary, deletes) are announced on `<prefix>:invalidate`.
// While either connection is down the cache is switched off, since nothing would tell it about changes.

import type { FastifyBaseLogger as Logger } from 'fastify'
import type { Cluster, Redis } from 'ioredis'
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

interface InvalidationOptions {
  prefix: string
  cache: ConfigCache
  log: Logger
  /** Called for each key another writer changed (null: all of them, after FLUSHDB), once the cache dropped it;
   * `revised`: the change came with its revision (a write through another instance). */
  onChange?: ((key: string | null, revised: boolean) => void) | undefined
}

export function startInvalidation(
  opts: InvalidationOptions & {
    redis: Redis
    subscriber: Redis
    /** Told whether this pair of connections is tracking (default: the cache is switched on and off with it). */
    setActive?: (active: boolean) => void
    /** The node they are connected to, in a cluster (for the log lines). */
    node?: string
  },
): Invalidation {
  const { redis, subscriber, prefix, cache, log, onChange } = opts
  const channel = `${prefix}:invalidate`
  let setup: Promise<void> = Promise.resolve()
  let subscriberId: number | undefined
  let received = 0
  let active = false
  const setActive = (on: boolean) => {
    active = on
    ;(opts.setActive ?? ((a: boolean) => cache.setActive(a)))(on)
  }
  // Which node, in a cluster (each is tracked on connections of its own).
  const where = opts.node === undefined ? {} : { node: opts.node }

  setActive(false)

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
      setActive(true)
      log.info({ layer: 'redis', ...where }, 'cache invalidation active')
    } catch (err) {
      setActive(false)
      log.warn(
        { layer: 'redis', ...where, reason: reasonOf(err) },
        'cache invalidation could not be enabled; cache bypassed',
      )
    }
  }

  const onReady = () => {
    setup = setup.then(enable)
  }
  const onDown = () => {
    if (active) log.warn({ layer: 'redis', ...where }, 'cache invalidation lost; cache bypassed until Redis is back')
    setActive(false)
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

/** Invalidation in a Redis Cluster: every node the cluster client knows, masters and replicas, is tracked on a pair
 * of connections of its own (tracking is per server). A replica sends the invalidations of the writes it replicates,
 * so a promoted replica was tracked already; nodes that join (a resharding, a new replica) are tracked as the
 * cluster client learns of them, and the ones that leave are dropped. The cache is on while every node is tracked.
 * An announcement is published once, and reaches every node's subscribers (cluster pub/sub is broadcast). */
export function startClusterInvalidation(
  opts: InvalidationOptions & {
    cluster: Cluster
    /** A connection of its own to one node (`protocol` 2 for a subscriber). */
    connect: (node: { host: string; port: number }, role: string, protocol?: 2) => Redis
  },
): Invalidation & { close(): Promise<void> } {
  const { cluster, connect, cache } = opts
  const nodes = new Map<string, { invalidation: Invalidation; active: boolean; clients: Redis[] }>()
  const update = () => cache.setActive(nodes.size > 0 && [...nodes.values()].every((n) => n.active))
  let settled: Promise<unknown> = Promise.resolve()
  let past = 0 // notices received on nodes no longer tracked

  /** Tracks the nodes the cluster client has now, and stops tracking the others. */
  function sync(): void {
    const now = new Map(cluster.nodes('all').map((n) => [`${n.options.host}:${n.options.port}`, n.options]))
    for (const [id, node] of nodes)
      if (!now.has(id)) {
        past += node.invalidation.received()
        nodes.delete(id)
        for (const c of node.clients) c.disconnect()
      }
    for (const [id, { host, port }] of now) {
      if (nodes.has(id) || host === undefined || port === undefined) continue
      const redis = connect({ host, port }, 'tracking')
      const subscriber = connect({ host, port }, 'invalidation', 2)
      const node = { active: false, clients: [redis, subscriber], invalidation: undefined as unknown as Invalidation }
      nodes.set(id, node)
      node.invalidation = startInvalidation({
        ...opts,
        redis,
        subscriber,
        node: id,
        setActive: (active) => {
          node.active = active
          update()
        },
      })
      settled = Promise.all([settled, node.invalidation.settled()])
    }
    update()
  }
  cluster.on('refresh', sync)
  cluster.on('+node', sync)
  cluster.on('-node', sync)
  cluster.on('ready', sync)
  cache.setActive(false)

  return {
    settled: async () => {
      await settled
    },
    received: () => [...nodes.values()].reduce((sum, n) => sum + n.invalidation.received(), past),
    async announce(key) {
      try {
        await cluster.publish(`${opts.prefix}:invalidate`, key)
      } catch (err) {
        opts.log.warn({ layer: 'redis', key, reason: reasonOf(err) }, 'could not announce a change to other instances')
      }
    },
    async close() {
      for (const node of nodes.values()) for (const c of node.clients) c.disconnect()
      nodes.clear()
    },
  }
}
