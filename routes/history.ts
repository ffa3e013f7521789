// History of a key (docs/api.md "History"): its revisions, the JSON Patch between two of them, and a rollback that
// writes an old revision's document again as a new revision. A secret key's history is the admin's only, as its
// content is.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import { actorOf } from '../src/http/auth.js'
import { now, writtenBody } from '../src/http/bodies.js'
import { ConfigReply, DiffReply, errorResponses, HistoryReply, KeyParams, RevisionNumber } from '../src/http/schemas.js'

const historyRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const { store } = app

  app.get(
    '/api/config/:key/history',
    {
      config: { scope: 'config:read' },
      schema: {
        summary: 'The revisions of a config, newest first, without their documents',
        params: KeyParams,
        querystring: Type.Object({
          limit: Type.Integer({ minimum: 1, maximum: 1000, default: 50 }),
          before: Type.Optional({ ...RevisionNumber, description: 'only revisions older than this one (paging)' }),
        }),
        response: { 200: HistoryReply, ...errorResponses },
      },
    },
    async (request) => {
      const { key } = request.params
      request.authorizeKey(key, 'config:read')
      const { limit, before } = request.query
      const revisions = await store.history(key, limit, before)
      return { status: 'success' as const, key, revisions, timestamp: now() }
    },
  )

  app.get(
    '/api/config/:key/diff',
    {
      config: { scope: 'config:read' },
      schema: {
        summary: 'The RFC 6902 JSON Patch from revision `from` to revision `to` (or to the current document)',
        params: KeyParams,
        querystring: Type.Object({
          from: RevisionNumber,
          to: Type.Optional({ ...RevisionNumber, description: 'default: the current document' }),
        }),
        response: { 200: DiffReply, ...errorResponses },
      },
    },
    async (request) => {
      const { key } = request.params
      request.authorizeKey(key, 'config:read')
      const d = await store.diff(key, request.query.from, request.query.to)
      return { status: 'success' as const, ...d, timestamp: now() }
    },
  )

  app.post(
    '/api/config/:key/rollback',
    {
      config: { scope: 'config:write' },
      schema: {
        summary:
          "Write revision N's document again, as a new revision: validated against today's schema, stamped now (If-Match)",
        params: KeyParams,
        body: Type.Object({ revision: RevisionNumber }, { additionalProperties: false }),
        response: { 200: ConfigReply, ...errorResponses },
      },
    },
    async (request, reply) => {
      const { key } = request.params
      request.authorizeKey(key, 'config:write')
      const w = await store.rollback(key, request.body.revision, {
        ifMatch: request.headers['if-match'],
        by: { actor: actorOf(request), via: 'rollback' },
      })
      reply.header('etag', w.etag).header('x-config-source', w.source)
      if (w.revision !== null) reply.header('x-config-revision', String(w.revision))
      return reply.type('application/json; charset=utf-8').send(writtenBody(w) as never)
    },
  )
}

export default historyRoutes
