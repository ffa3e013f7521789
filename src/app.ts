// The app builder: registers plugins and routes and never listens. The server (src/server.ts), the tests and the
// OpenAPI generator build the app with this same function.
import { randomBytes } from 'node:crypto'
import type { IncomingMessage } from 'node:http'
import AjvCompiler from '@fastify/ajv-compiler'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import fastJson from 'fast-json-stringify'
import Fastify, { type FastifyBaseLogger, type FastifyRequest } from 'fastify'
import changesRoutes from '../routes/changes.js'
import configRoutes from '../routes/config.js'
import healthRoutes from '../routes/health.js'
import historyRoutes from '../routes/history.js'
import legacyRoutes from '../routes/legacy.js'
import metricsRoutes from '../routes/metrics.js'
import opsRoutes from '../routes/ops.js'
import type { AppConfig } from './config.js'
import { AppError } from './errors.js'
import auth, { securityHeaders } from './http/auth.js'
import { errorHandler } from './http/error-handler.js'
import longRequests from './http/plugins/long-requests.js'
import metrics from './http/plugins/metrics.js'
import store from './http/plugins/store.js'
import swagger from './http/plugins/swagger.js'
import { lazyChildLogger } from './logger.js'
import { jsonLimitError } from './store/json-limits.js'

export interface AppOptions {
  config: AppConfig
  logger?: FastifyBaseLogger
  /** Called once with the admin token generated when no auth is configured on a loopback address. */
  onGeneratedToken?: (token: string) => void
}

const SAFE_REQUEST_ID = /^[\w.:-]{1,64}$/
const instance = randomBytes(4).toString('hex')
let requests = 0

/** A client's `x-request-id` when it is short and plain (it goes into every log line of the request), else ours. */
function requestId(request: IncomingMessage): string {
  const sent = request.headers['x-request-id']
  return typeof sent === 'string' && SAFE_REQUEST_ID.test(sent) ? sent : `${instance}-${(++requests).toString(36)}`
}

type BodyParser = (request: FastifyRequest, body: string, done: (err: Error | null, body?: unknown) => void) => void

// Query strings and path parameters arrive as text and are coerced to their schemas' types (Fastify's default); a
// body is JSON already, so a wrong type in it is a 400, never converted (`{"keys":"x"}` is not `["x"]`).
type Compile = (route: { httpPart?: string }) => unknown
type AjvOptions = { customOptions?: Record<string, unknown> }
const ajvPool = AjvCompiler() as unknown as (externalSchemas: unknown, options: AjvOptions) => Compile
function buildValidator(externalSchemas: unknown, options: AjvOptions = {}): Compile {
  const coercing = ajvPool(externalSchemas, options)
  const strict = ajvPool(externalSchemas, {
    ...options,
    customOptions: { ...options.customOptions, coerceTypes: false },
  })
  return (route) => (route.httpPart === 'body' ? strict : coercing)(route)
}

/** Whether a JSON text could name `__proto__` or `constructor` as a member: only by spelling it, or with \u escapes. */
const mayPoison = (text: string) => text.includes('__proto__') || text.includes('constructor') || text.includes('\\u')

/** Fastify's JSON parser (prototype poisoning refused), after the shape limits: 400 before anything walks the body. */
function boundedJsonParser(secureParse: BodyParser, maxNodes: number): BodyParser {
  return (request, body, done) => {
    const tooBig = jsonLimitError(body, maxNodes)
    if (tooBig !== undefined) return done(new AppError('BAD_REQUEST', `the body ${tooBig}`))
    // Fastify's parser looks for prototype poisoning with two regular expressions over the whole text, a cost the
    // writes paid on every body; a text that cannot name those members is parsed as it is. The others, and every
    // text that fails to parse (for the parser's own 400), go to it.
    if (body !== '' && !mayPoison(body)) {
      let value: unknown
      try {
        value = JSON.parse(body)
      } catch {
        return secureParse(request, body, done)
      }
      return done(null, value)
    }
    secureParse(request, body, done)
  }
}

export async function buildApp({ config, logger, onGeneratedToken }: AppOptions) {
  const app = Fastify({
    ...(logger ? { loggerInstance: logger, childLoggerFactory: lazyChildLogger } : {}),
    bodyLimit: config.CONFIG_MAX_BYTES,
    requestIdHeader: false,
    genReqId: requestId,
    // A request must arrive whole within REQUEST_TIMEOUT_MS (408, connection closed), checked every second: a client
    // trickling a body, or holding a connection with half a request, is dropped rather than kept for ever.
    requestTimeout: config.REQUEST_TIMEOUT_MS,
    http: { requestTimeout: config.REQUEST_TIMEOUT_MS, connectionsCheckingInterval: 1000 },
    return503OnClosing: true,
    // Over-long keys must reach the key check (400 INVALID_KEY), not stop at the router (414).
    routerOptions: { maxParamLength: 1024 },
    schemaController: { compilersFactory: { buildValidator: buildValidator as never } },
    // Behind reverse proxies named in TRUSTED_PROXIES, the client is the address their X-Forwarded-For gives (the
    // failed-authentication limit counts per client); otherwise it is the connection's peer, whatever a header says.
    ...(config.trustedProxies === undefined ? {} : { trustProxy: config.trustedProxies }),
  }).withTypeProvider<TypeBoxTypeProvider>()

  // Response serializers are compiled when a route first uses one, not at start-up: most answers are sent as
  // prepared JSON text, and compiling them all up front was a tenth of start-to-ready.
  app.setSerializerCompiler(({ schema }) => {
    let serialize: ((data: unknown) => string) | undefined
    return (data) => {
      serialize ??= fastJson(schema as Parameters<typeof fastJson>[0])
      return serialize(data)
    }
  })
  app.setErrorHandler(errorHandler)
  app.setNotFoundHandler(async (request, reply) => {
    securityHeaders(reply)
    app.metrics.unmatched(request, reply.code(404))
    throw new AppError('NOT_FOUND', `no route ${request.method} ${request.url.split('?')[0]}`)
  })
  app.server.maxConnections = config.MAX_CONNECTIONS
  app.removeContentTypeParser(['text/plain', 'application/json']) // bodies are JSON only: anything else is a 415
  app.addContentTypeParser(
    ['application/json', 'application/merge-patch+json'],
    { parseAs: 'string' },
    boundedJsonParser(app.getDefaultJsonParser('error', 'error'), config.CONFIG_MAX_NODES),
  )

  await app.register(store, { config })
  await app.register(metrics, { config })
  await app.register(auth, { config, ...(onGeneratedToken ? { onGeneratedToken } : {}) })
  await app.register(longRequests, { config })
  await app.register(swagger)
  await app.register(healthRoutes)
  await app.register(configRoutes)
  await app.register(historyRoutes)
  await app.register(changesRoutes, { config })
  await app.register(legacyRoutes)
  await app.register(opsRoutes, { config })
  if (config.metrics) await app.register(metricsRoutes)
  return app
}
