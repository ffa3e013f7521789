// The app builder: registers plugins and routes and never listens. The server (src/server.ts), the tests and the
// OpenAPI generator build the app with this same function.
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import fastJson from 'fast-json-stringify'
import Fastify, { type FastifyBaseLogger } from 'fastify'
import configRoutes from '../routes/config.js'
import healthRoutes from '../routes/health.js'
import legacyRoutes from '../routes/legacy.js'
import opsRoutes from '../routes/ops.js'
import auth from './auth.js'
import type { AppConfig } from './config.js'
import { errorHandler } from './error-handler.js'
import { AppError } from './errors.js'
import { lazyChildLogger } from './logger.js'
import store from './plugins/store.js'
import swagger from './plugins/swagger.js'

export interface AppOptions {
  config: AppConfig
  logger?: FastifyBaseLogger
  /** Called once with the admin token generated when no auth is configured on a loopback address. */
  onGeneratedToken?: (token: string) => void
}

export async function buildApp({ config, logger, onGeneratedToken }: AppOptions) {
  const app = Fastify({
    ...(logger ? { loggerInstance: logger, childLoggerFactory: lazyChildLogger } : {}),
    bodyLimit: config.CONFIG_MAX_BYTES,
    requestIdHeader: 'x-request-id',
    return503OnClosing: true,
    // Over-long keys must reach the key check (400 INVALID_KEY), not stop at the router (414).
    routerOptions: { maxParamLength: 1024 },
  }).withTypeProvider<TypeBoxTypeProvider>()

  // Response serializers are compiled when a route first uses one, not at start-up: most answers are sent as
  // prepared JSON text, and compiling them all up front was a tenth of start-to-ready (issue 4).
  app.setSerializerCompiler(({ schema }) => {
    let serialize: ((data: unknown) => string) | undefined
    return (data) => {
      serialize ??= fastJson(schema as Parameters<typeof fastJson>[0])
      return serialize(data)
    }
  })
  app.setErrorHandler(errorHandler)
  app.setNotFoundHandler(async (request) => {
    throw new AppError('NOT_FOUND', `no route ${request.method} ${request.url.split('?')[0]}`)
  })
  app.removeContentTypeParser('text/plain') // bodies are JSON only: anything else is a 415
  app.addContentTypeParser(
    'application/merge-patch+json',
    { parseAs: 'string' },
    app.getDefaultJsonParser('error', 'error'),
  )

  await app.register(store, { config })
  await app.register(auth, { config, ...(onGeneratedToken ? { onGeneratedToken } : {}) })
  await app.register(swagger)
  await app.register(healthRoutes)
  await app.register(configRoutes)
  await app.register(legacyRoutes)
  await app.register(opsRoutes, { config })
  return app
}
