// The legacy PHP contract (docs/legacy.md), so a legacy client can be pointed at this service unchanged. Answers carry
// both shapes: `{ success, config }` and `{ status, data, timestamp }`. Errors answer `{ success: false, message }`.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import { AppError } from '../src/errors.js'
import { actorOf } from '../src/http/auth.js'
import { legacyReadBody, now } from '../src/http/bodies.js'
import { Document, LegacyError, LegacyRead, Timestamp } from '../src/http/schemas.js'
import { isDocument, isValidKey } from '../stores/layer.js'

const LegacyWrite = Type.Object({ success: Type.Literal(true), status: Type.Literal('success'), timestamp: Timestamp })
const legacyErrors = { '4xx': LegacyError, '5xx': LegacyError }

/** Distinct callers counted by name; more (a JWT per user) are counted as `other`, so the series stay few. */
const MAX_CALLERS = 50

/** The product of a User-Agent (`python-requests/2.32.5` → `python-requests`), `none` without one. */
export const agentOf = (userAgent: string | undefined) =>
  userAgent === undefined ? 'none' : (/^[\w.-]{1,40}/.exec(userAgent)?.[0] ?? 'other')

const legacyRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const { store } = app
  // Who uses the legacy route, by caller and software (docs/legacy.md "Who still calls the PHP contract"): a legacy
  // app whose Redis client fails at every call (redis-py 4 and `protocol=2`) silently sends everything here. Each new
  // pair is one INFO line; the counter has them all.
  const callers = new Set<string>()
  app.addHook('onResponse', (request, reply, done) => {
    const userAgent = request.headers['user-agent']
    let client = request.principal?.name ?? 'anonymous'
    let agent = agentOf(userAgent)
    const pair = `${client} ${agent}`
    if (!callers.has(pair)) {
      if (callers.size < MAX_CALLERS) {
        callers.add(pair)
        request.log.info(
          { client, agent, userAgent: userAgent?.slice(0, 200), status: reply.statusCode },
          `the legacy route /config_api.php is called by ${client} (${agent})`,
        )
      } else [client, agent] = ['other', 'other']
    }
    app.metrics.legacyRequests.inc({ method: request.method, client, agent })
    done()
  })
  // PHP's trim(strtolower($key)) of a string or a number; anything else (an array, a boolean, null) is no key at all.
  const normalize = (key: unknown) =>
    typeof key === 'string'
      ? key.trim().toLowerCase()
      : typeof key === 'number' && Number.isFinite(key)
        ? String(key)
        : ''

  app.get(
    '/config_api.php',
    {
      config: { scope: 'config:read', legacy: true },
      schema: {
        summary: 'Legacy read: an absent key answers config {}',
        querystring: Type.Object({ key: Type.Optional(Type.String()) }),
        response: { 200: LegacyRead, ...legacyErrors },
      },
    },
    async (request, reply) => {
      const key = normalize(request.query.key)
      if (!isValidKey(key)) throw new AppError('INVALID_KEY', 'Invalid key')
      request.authorizeKey(key, 'config:read')
      let json = '{}' // PHP's answer for a key never written
      try {
        const r = store.readCached(key) ?? (await store.read(key))
        json = r.json
        if (r.stale) reply.header('x-config-stale', '1')
      } catch (err) {
        if (!(err instanceof AppError && err.code === 'CONFIG_NOT_FOUND')) throw err
      }
      return reply.type('application/json; charset=utf-8').send(legacyReadBody(json) as never)
    },
  )

  app.post(
    '/config_api.php',
    {
      config: { scope: 'config:write', legacy: true },
      schema: {
        summary: 'Legacy write: { key, config } replaces the whole document',
        // `key` unconstrained here, so that validation cannot coerce ["abc"] or true into a string: checked below.
        body: Type.Object({
          key: Type.Unsafe<unknown>({ description: 'the key: a string (or a number), trimmed and lowercased' }),
          config: Document,
        }),
        response: { 200: LegacyWrite, ...legacyErrors },
      },
    },
    async (request) => {
      const key = normalize(request.body.key)
      if (!isValidKey(key) || !isDocument(request.body.config)) throw new AppError('BAD_REQUEST', 'Invalid payload')
      request.authorizeKey(key, 'config:write')
      await store.write(key, request.body.config, { by: { actor: actorOf(request), via: 'legacy-api' } })
      return { success: true as const, status: 'success' as const, timestamp: now() }
    },
  )

  app.route({
    method: ['PUT', 'PATCH', 'DELETE'],
    url: '/config_api.php',
    // The PHP API checks the token before the method: a PUT without one is a 401 there too.
    config: { scope: 'config:read', legacy: true },
    schema: { hide: true },
    handler: async () => {
      throw new AppError('METHOD_NOT_ALLOWED', 'Method not allowed')
    },
  })
}

export default legacyRoutes
