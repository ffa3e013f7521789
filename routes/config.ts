// The config API (docs/api.md "Routes"): list, read (through the layers, or one layer with ?source=), write, merge-patch
// and delete one key.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { Type } from 'typebox'
import { allowsKey, isAdmin } from '../src/http/auth.js'
import { now, resolvedBody, writtenBody } from '../src/http/bodies.js'
import {
  ConfigReply,
  DeleteReply,
  Document,
  errorResponses,
  KeyParams,
  LayerNameSchema,
  ListReply,
} from '../src/http/schemas.js'
import type { Resolved } from '../src/store/cache.js'
import { etagOf, notModified, type Preconditions } from '../src/store/etag.js'

const configRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const { store } = app
  // A JSON string sent with a JSON content type goes out as it is, without the serializer (src/http/bodies.ts).
  function send(reply: FastifyReply, source: string, text: string, stale = false): void {
    if (stale) reply.header('x-config-stale', '1')
    reply
      .header('x-config-source', source)
      .type('application/json; charset=utf-8')
      .send(text as never)
  }
  /** A read's answer with its ETag, or 304 when If-None-Match names it (RFC 9110 §13.1.2). */
  function sendResolved(request: FastifyRequest, reply: FastifyReply, r: Resolved): void {
    r.etag ??= etagOf(r.json)
    reply.header('etag', r.etag)
    if (notModified(request.headers['if-none-match'], r.etag)) {
      reply.header('x-config-source', r.source).code(304).send()
      return
    }
    send(reply, r.source, resolvedBody(r), r.stale)
  }
  const preconditions = (request: FastifyRequest): Preconditions => ({
    ifMatch: request.headers['if-match'],
    ifNoneMatch: request.headers['if-none-match'],
  })

  app.get(
    '/api/config',
    {
      config: { scope: 'config:read' },
      schema: { summary: 'Every key known to any layer or schema', response: { 200: ListReply, ...errorResponses } },
    },
    async (request) => {
      const principal = request.principal
      const visible = (key: string) =>
        principal !== null && allowsKey(principal, key) && (!store.validator.isSecret(key) || isAdmin(principal))
      const keys = (await store.list()).filter((k) => visible(k.key))
      return { status: 'success' as const, keys, timestamp: now() }
    },
  )

  app.get(
    '/api/config/:key',
    {
      config: { scope: 'config:read' },
      schema: {
        summary:
          'Read a config: the first layer that holds it, or one layer with ?source=. Answers an ETag; If-None-Match gives 304',
        params: KeyParams,
        querystring: Type.Object({ source: Type.Optional(LayerNameSchema) }),
        response: { 200: ConfigReply, ...errorResponses },
      },
    },
    (request, reply) => {
      const { key } = request.params
      request.authorizeKey(key, 'config:read')
      const { source } = request.query
      const hit = source === undefined ? store.readCached(key) : undefined
      if (hit !== undefined) return sendResolved(request, reply, hit) // synchronous: no promise on the hot path
      const read = source === undefined ? store.read(key) : store.readFrom(source, key)
      return read.then((r) => sendResolved(request, reply, r))
    },
  )

  // POST replaces the document, PATCH merges into it; both validate, stamp and write to the primary alike.
  for (const [method, summary, save] of [
    [
      'POST',
      'Replace a config: validated, stamped, written to the primary layer (If-Match, If-None-Match: *)',
      store.write,
    ],
    [
      'PATCH',
      'JSON Merge Patch (RFC 7396) of a config, atomic, then validated and written like POST (If-Match)',
      store.patch,
    ],
  ] as const) {
    app.route({
      method,
      url: '/api/config/:key',
      config: { scope: 'config:write' },
      schema: { summary, params: KeyParams, body: Document, response: { 200: ConfigReply, ...errorResponses } },
      handler: async (request, reply) => {
        const { key } = request.params
        request.authorizeKey(key, 'config:write')
        const w = await save(key, request.body, preconditions(request))
        reply.header('etag', w.etag)
        send(reply, w.source, writtenBody(w))
      },
    })
  }

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
      const layers = await store.remove(key, preconditions(request))
      return { status: 'success' as const, key, layers, timestamp: now() }
    },
  )
}

export default configRoutes
