// The process: reads the configuration, owns the logger, listens, and closes gracefully on SIGTERM/SIGINT
// (in-flight requests finish, Redis and the PHP pool are closed, exit within SHUTDOWN_TIMEOUT_MS).

import closeWithGrace from 'close-with-grace'
import { buildApp } from './app.js'
import { type AppConfig, loadConfig, readEnvironment } from './config.js'
import { createLogger } from './logger.js'

export async function startServer(config: AppConfig = loadConfig(readEnvironment())) {
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
  await app.listen({ host: config.HOST, port: config.PORT })
  logger.info(
    { layers: config.layers, mode: config.CONFIG_STORE_MODE },
    `serving config from ${config.layers.join(' → ')}`,
  )
  return app
}
