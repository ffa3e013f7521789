// Liveness and readiness (docs/api.md): /health says the process serves; /ready says which layers answer.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { Cluster, Redis } from 'ioredis'
import { Type } from 'typebox'
import { Timestamp } from '../src/http/schemas.js'
import { LayerReportSchema } from '../src/store/schemas.js'
import { VERSION } from '../src/version.js'

const ReadyReply = Type.Object({
  status: Type.Union([Type.Literal('ready'), Type.Literal('unavailable')]),
  degraded: Type.Boolean({ description: 'true when the primary layer is down' }),
  layers: Type.Array(LayerReportSchema),
  waiting: Type.Integer({ description: 'blocking reads (GET …?wait=) waiting now' }),
  feeds: Type.Integer({ description: 'change feed streams (GET /api/changes) open now' }),
  history: Type.Union([Type.Literal('redis'), Type.Literal('journal'), Type.Literal('off')], {
    description: 'where revisions and the change feed are kept',
  }),
  redis: Type.Optional(
    Type.Object(
      {
        topology: Type.Union([Type.Literal('single'), Type.Literal('sentinel'), Type.Literal('cluster')]),
        master: Type.Optional(
          Type.Union([Type.String(), Type.Null()], {
            description: 'host:port of the node writes go to; null while not connected (to authenticated callers only)',
          }),
        ),
        masters: Type.Optional(
          Type.Array(Type.String(), {
            description:
              'in a cluster, host:port of each master the cluster client knows (to authenticated callers only)',
          }),
        ),
      },
      { description: 'how Redis is reached, when it is configured' },
    ),
  ),
  timestamp: Timestamp,
})

const healthRoutes: FastifyPluginAsyncTypebox = async (app) => {
  /** The address the command connection is connected to (under Sentinel, the master it named last); in a cluster,
   * the masters it knows. */
  const masterOf = (shown: boolean) => {
    const redis = app.redis
    if (!shown || redis === undefined) return {}
    if (redis.isCluster) {
      const masters = redis.status === 'ready' ? (redis as Cluster).nodes('master') : []
      return { masters: masters.map((n) => `${n.options.host}:${n.options.port}`).sort() }
    }
    const socket = redis.status === 'ready' ? (redis as Redis).stream : undefined
    return { master: socket?.remoteAddress ? `${socket.remoteAddress}:${socket.remotePort}` : null }
  }

  app.get(
    '/health',
    {
      logLevel: 'warn',
      schema: {
        summary: 'Liveness: 200 while the process serves',
        response: { 200: Type.Object({ status: Type.Literal('ok'), version: Type.String(), timestamp: Timestamp }) },
      },
    },
    async () => ({ status: 'ok' as const, version: VERSION, timestamp: new Date().toISOString() }),
  )

  app.get(
    '/version',
    {
      logLevel: 'warn',
      schema: {
        summary: 'The version of the service (package.json), as the start-up line and config-store --version say',
        response: { 200: Type.Object({ version: Type.String() }) },
      },
    },
    async () => ({ version: VERSION }),
  )

  // The service's root says where its documentation is, instead of a 404.
  app.get('/', { logLevel: 'warn', schema: { hide: true } }, async (_request, reply) => reply.redirect('/docs'))

  app.get(
    '/ready',
    {
      config: { optionalAuth: true },
      schema: {
        summary: 'Readiness: 200 when at least one layer answers, 503 when none does',
        response: { 200: ReadyReply, 503: ReadyReply },
      },
    },
    async (request, reply) => {
      const layers = await app.store.health()
      // Anonymous callers (load balancers, probes) get states and latencies; the reasons name hosts and ports.
      const reasons = request.principal !== null
      const up = layers.some((l) => l.ok)
      reply.code(up ? 200 : 503)
      return {
        status: up ? ('ready' as const) : ('unavailable' as const),
        degraded: layers[0]?.ok !== true,
        layers: layers.map(({ error, ...l }) => (reasons && error !== undefined ? { ...l, error } : l)),
        waiting: app.store.stats().waiting,
        feeds: app.store.stats().listeners,
        history: app.store.stats().history,
        ...(app.redisTopology === undefined ? {} : { redis: { topology: app.redisTopology, ...masterOf(reasons) } }),
        timestamp: new Date().toISOString(),
      }
    },
  )
}

export default healthRoutes
