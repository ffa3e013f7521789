// GET /metrics for Prometheus (docs/api.md "Metrics"): without a token from loopback, otherwise with a token that
// carries metrics:read (or config:admin). METRICS_PORT serves the same text on a port of its own (src/server.ts).
import type { FastifyPluginAsync } from 'fastify'
import { isLoopback } from '../src/config.js'
import { AppError } from '../src/errors.js'

/** A peer on this host: 127.0.0.0/8 or ::1, also as an IPv4-mapped IPv6 address. */
const fromLoopback = (address = '') => isLoopback(address.replace(/^::ffff:(?=127\.)/, ''))

const metricsRoutes: FastifyPluginAsync = async (app) => {
  app.get(
    '/metrics',
    { logLevel: 'warn', config: { optionalAuth: true }, schema: { summary: 'Prometheus metrics (text format)' } },
    async (request, reply) => {
      if (!fromLoopback(request.socket.remoteAddress)) {
        const p = request.principal
        if (p === null) throw new AppError('UNAUTHORIZED', 'a token with the metrics:read scope is required')
        if (!p.metrics) throw new AppError('FORBIDDEN', 'this needs the metrics:read scope')
      }
      const { registry } = app.metrics
      return reply.type(registry.contentType).send(await registry.metrics())
    },
  )
}

export default metricsRoutes
