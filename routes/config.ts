// The config API (api.md "Routes"): list, read (through the layers, or one layer with ?source=), write, merge-patch
// and delete one key.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { FastifyReply } from 'fastify'
import { Type } from 'typebox'
import { allowsKey, isAdmin } from '../src/auth.js'
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
import { now } from '../src/time.js'

const configRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const { store } = app
  // Answers are built from the document's JSON text as stored, never parsed and serialised again; a cached read's
  // body is built once per value, and its timestamped form once per millisecond. A JSON string sent with a JSON
  // content type goes out as it is, without the serializer (ConfigReply documents the shape).
  const bodyOf = (key: string, json: string, source: string, updatedAt: string | null, stale = false) =>
    `{"status":"success","key":"${key}","data":${json},"meta":{"source":"${source}","updated_at":${JSON.stringify(updatedAt)}${stale ? ',"stale":true' : ''}}`

  function send(reply: FastifyReply, source: string, text: string, stale = false): void {
    if (stale) reply.header('x-config-stale', '1')
    reply
      .header('x-config-source', source)
      .type('application/json; charset=utf-8')
      .send(text as never)
  }

  function sendResolved(reply: FastifyReply, r: Resolved): void {
    const ms = Date.now()
    if (r.sentAt !== ms || r.response === undefined) {
      r.body ??= bodyOf(r.key, r.json, r.source, r.updatedAt, r.stale)
      r.response = `${r.body},"timestamp":"${new Date(ms).toISOString()}"}`
      r.sentAt = ms
    }
    send(reply, r.source, r.response, r.stale)
  }

  const sendWritten = (reply: FastifyReply, w: Written) =>
    send(reply, w.source, `${bodyOf(w.key, w.json, w.source, w.updatedAt)},"timestamp":"${now()}"}`)

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
        summary: 'Read a config: the first layer that holds it, or one layer with ?source=',
        params: KeyParams,
        querystring: Type.Object({ source: Type.Optional(LayerNameSchema) }),
        response: { 200: ConfigReply, ...errorResponses },
      },
    },
    (request, reply) => {
      const { key } = request.params
      request.authorizeKey(key, 'config:read')
      const { source } = request.query
      const hit = source === undefined ? store.cache.get(key) : undefined
      if (hit !== undefined) return sendResolved(reply, hit) // synchronous: no promise on the hot path
      const read = source === undefined ? store.read(key) : store.readFrom(source, key)
      return read.then((r) => sendResolved(reply, r))
    },
  )

  // POST replaces the document, PATCH merges into it; both validate, stamp and write to the primary alike.
  for (const [method, summary, save] of [
    ['POST', 'Replace a config: validated, stamped, written to the primary layer', store.write],
    ['PATCH', 'JSON Merge Patch (RFC 7396) of a config, then validated and written like POST', store.patch],
  ] as const) {
    app.route({
      method,
      url: '/api/config/:key',
      config: { scope: 'config:write' },
      schema: { summary, params: KeyParams, body: Document, response: { 200: ConfigReply, ...errorResponses } },
      handler: async (request, reply) => {
        const { key } = request.params
        request.authorizeKey(key, 'config:write')
        sendWritten(reply, await save(key, request.body))
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
      const layers = await store.remove(key)
      return { status: 'success' as const, key, layers, timestamp: now() }
    },
  )
}

export default configRoutes
