// The config API (api.md "Routes"): list, read (through the layers, or one layer with ?source=), write, merge-patch
// and delete one key.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import { allowsKey } from '../src/auth.js'
import type { Resolved } from '../src/cache.js'
import {
  ConfigReply,
  DeleteReply,
  Document,
  errorResponses,
  KeyParams,
  LayerNameSchema,
  ListReply,
} from '../src/schemas/api.js'
import type { Written } from '../src/store.js'

const configRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const { store } = app
  const isSecret = (key: string) => store.validator.spec(key)?.secret === true
  const now = () => new Date().toISOString()
  const written = (w: Written) => ({
    status: 'success' as const,
    key: w.key,
    data: w.doc,
    meta: { source: w.source, updated_at: w.updatedAt },
    timestamp: now(),
  })

  // Built once per cached value: a cached read costs one string concatenation, not a parse and a stringify.
  const bodyOf = (r: Resolved) =>
    (r.body ??= `{"status":"success","key":"${r.key}","data":${r.json},"meta":{"source":"${r.source}","updated_at":${JSON.stringify(r.updatedAt)}}`)

  app.get(
    '/api/config',
    {
      config: { scope: 'config:read' },
      schema: { summary: 'Every key known to any layer or schema', response: { 200: ListReply, ...errorResponses } },
    },
    async (request) => {
      const principal = request.principal
      const keys = (await store.list()).filter((k) => principal !== null && allowsKey(principal, k.key))
      return { status: 'success' as const, keys, timestamp: now() }
    },
  )

  app.get(
    '/api/config/:key',
    {
      config: { scope: 'config:read' },
      schema: {
        summary: 'Read a config: the first layer that holds it, or one layer with ?source=',
        params: KeyParams,
        querystring: Type.Object({ source: Type.Optional(LayerNameSchema) }),
        response: { 200: ConfigReply, ...errorResponses },
      },
    },
    async (request, reply) => {
      const { key } = request.params
      request.authorizeKey(key, 'config:read', isSecret(key))
      const { source } = request.query
      const resolved = source === undefined ? await store.read(key) : await store.readFrom(source, key)
      reply.header('x-config-source', resolved.source).type('application/json; charset=utf-8')
      // A JSON string with a JSON content type is sent as it is, without the serializer (ConfigReply documents it).
      return reply.send(`${bodyOf(resolved)},"timestamp":"${now()}"}` as never)
    },
  )

  app.post(
    '/api/config/:key',
    {
      config: { scope: 'config:write' },
      schema: {
        summary: 'Replace a config: validated, stamped, written to the primary layer',
        params: KeyParams,
        body: Document,
        response: { 200: ConfigReply, ...errorResponses },
      },
    },
    async (request, reply) => {
      const { key } = request.params
      request.authorizeKey(key, 'config:write', isSecret(key))
      const w = await store.write(key, request.body)
      reply.header('x-config-source', w.source)
      return written(w)
    },
  )

  app.patch(
    '/api/config/:key',
    {
      config: { scope: 'config:write' },
      schema: {
        summary: 'JSON Merge Patch (RFC 7396) of a config, then validated and written like POST',
        params: KeyParams,
        body: Document,
        response: { 200: ConfigReply, ...errorResponses },
      },
    },
    async (request, reply) => {
      const { key } = request.params
      request.authorizeKey(key, 'config:write', isSecret(key))
      const w = await store.patch(key, request.body)
      reply.header('x-config-source', w.source)
      return written(w)
    },
  )

  app.delete(
    '/api/config/:key',
    {
      config: { scope: 'config:admin' },
      schema: {
        summary: 'Delete a config from every layer, so that no lower layer can resurrect it',
        params: KeyParams,
        response: { 200: DeleteReply, ...errorResponses },
      },
    },
    async (request) => {
      const { key } = request.params
      request.authorizeKey(key, 'config:admin')
      const layers = await store.remove(key)
      return { status: 'success' as const, key, layers, timestamp: now() }
    },
  )
}

export default configRoutes
