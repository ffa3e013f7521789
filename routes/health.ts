// Liveness and readiness (api.md): /health says the process serves; /ready says which layers answer.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import { LayerNameSchema, Timestamp } from '../src/schemas/api.js'

const ReadyReply = Type.Object({
  status: Type.Union([Type.Literal('ready'), Type.Literal('unavailable')]),
  degraded: Type.Boolean({ description: 'true when the primary layer is down' }),
  layers: Type.Array(
    Type.Object({
      layer: LayerNameSchema,
      ok: Type.Boolean(),
      latencyMs: Type.Number(),
      error: Type.Optional(
        Type.String({ description: 'why the layer is down: shown only to a caller with a valid token' }),
      ),
      unavailable: Type.Integer({ description: 'reads and writes this layer could not answer since start-up' }),
    }),
  ),
  timestamp: Timestamp,
})

const healthRoutes: FastifyPluginAsyncTypebox = async (app) => {
  app.get(
    '/health',
    {
      logLevel: 'warn',
      schema: {
        summary: 'Liveness: 200 while the process serves',
        response: { 200: Type.Object({ status: Type.Literal('ok'), timestamp: Timestamp }) },
      },
    },
    async () => ({ status: 'ok' as const, timestamp: new Date().toISOString() }),
  )

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
        layers: layers.map(({ error, ...l }) => ({
          ...l,
          ...(reasons && error !== undefined ? { error } : {}),
          unavailable: app.store.unavailableCount[l.layer] ?? 0,
        })),
        timestamp: new Date().toISOString(),
      }
    },
  )
}

export default healthRoutes
