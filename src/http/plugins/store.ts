// The layered store as a Fastify decoration: opened with the app, ready once Redis answered its first connect,
// closed (Redis connections, PHP pool) when the app closes.
import type { FastifyPluginAsync } from 'fastify'
import fp from 'fastify-plugin'
import type { RedisClient } from '../../../stores/redis-replicas.js'
import type { AppConfig } from '../../config.js'
import type { ConfigStore } from '../../store/layered-store.js'
import { openStore } from '../../store/open-store.js'

declare module 'fastify' {
  interface FastifyInstance {
    store: ConfigStore
    /** The Redis command connection, when Redis is configured. */
    redis: RedisClient | undefined
    /** How Redis is reached, when it is configured: one server (REDIS_URL), the master Sentinel names, or a cluster. */
    redisTopology: 'single' | 'sentinel' | 'cluster' | undefined
  }
}

const storePlugin: FastifyPluginAsync<{ config: AppConfig }> = async (app, { config }) => {
  const opened = await openStore(config, app.log)
  app.decorate('store', opened.store)
  app.decorate<RedisClient | undefined>('redis', opened.redis)
  const topology = config.clusterNodes ? 'cluster' : config.sentinels ? 'sentinel' : 'single'
  app.decorate('redisTopology', opened.redis === undefined ? undefined : topology)
  app.addHook('onReady', () => opened.connected)
  // Blocking reads answer at once when the close begins, instead of holding it until their wait ends.
  app.addHook('preClose', async () => opened.store.releaseWaits())
  app.addHook('onClose', () => opened.close())
}

export default fp(storePlugin, { name: 'store', fastify: '5.x' })
