// The process: reads the configuration, owns the logger, listens, and closes gracefully on SIGTERM/SIGINT
// (in-flight requests finish, Redis and the PHP pool are closed, exit within SHUTDOWN_TIMEOUT_MS).

import { once } from 'node:events'
import { createServer } from 'node:http'
import closeWithGrace from 'close-with-grace'
import type { FastifyInstance } from 'fastify'
import { buildApp } from './app.js'
import { type AppConfig, configFrom, readEnvironment } from './config.js'
import { createLogger } from './logger.js'
import { VERSION } from './version.js'

export async function startServer(config: AppConfig = configFrom(readEnvironment())) {
  const logger = createLogger(config.LOG_LEVEL)
  const app = await buildApp({
    config,
    logger,
    onGeneratedToken: (token) =>
      process.stderr.write(
        `config-store: no AUTH_TOKENS or JWT key is set; this run's admin token (loopback only): ${token}\n`,
      ),
  })
  // Keep-alive connections that were busy when the close began must not hold the process open afterwards: from
  // then on a connection is closed as soon as its response is done (Node reads this at the end of each response).
  app.addHook('preClose', async () => {
    app.server.keepAliveTimeout = 1
  })
  closeWithGrace({ delay: config.SHUTDOWN_TIMEOUT_MS, logger }, async ({ signal, err }) => {
    if (err) logger.error({ err }, 'closing after an error')
    else logger.info({ signal }, 'shutting down: finishing requests in flight')
    await app.close()
  })
  if (config.METRICS_PORT !== undefined) await serveMetrics(app, config.HOST, config.METRICS_PORT)
  const address = await app.listen({ host: config.HOST, port: config.PORT })
  // Said at every log level: an operator running at LOG_LEVEL=warn still sees where it listens and what it serves.
  const started = `config-store ${VERSION} listening on ${address}, mode ${config.CONFIG_STORE_MODE}, layers ${config.layers.join(' → ')}`
  const fields = { version: VERSION, address, mode: config.CONFIG_STORE_MODE, layers: config.layers }
  if (logger.isLevelEnabled('info')) logger.info(fields, started)
  else process.stderr.write(`${started}\n`)
  return app
}

/** /metrics, and nothing else, on a port of its own without auth: for a scraper on a network that port is open to.
 * Closed with the app. */
async function serveMetrics(app: FastifyInstance, host: string, port: number): Promise<void> {
  const { registry } = app.metrics
  const server = createServer((request, response) => {
    if (request.method !== 'GET' || request.url?.split('?')[0] !== '/metrics') {
      response.writeHead(404, { 'content-type': 'text/plain' }).end('only GET /metrics is served here\n')
      return
    }
    registry.metrics().then(
      (text) => response.writeHead(200, { 'content-type': registry.contentType }).end(text),
      (err: unknown) => {
        app.log.error({ err }, 'metrics could not be collected')
        response.writeHead(500).end()
      },
    )
  })
  server.listen(port, host)
  await once(server, 'listening')
  app.addHook('onClose', (_app, done) => {
    server.close(() => done())
    server.closeAllConnections()
  })
}
