// The config API (docs/api.md "Routes"): list, read (through the layers, or one layer with ?source=), write, merge-patch
// and delete one key.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { Type } from 'typebox'
import { typoWarning } from '../src/did-you-mean.js'
import { AppError } from '../src/errors.js'
import { actorOf, allowsKey, isAdmin, type Principal, validForMs } from '../src/http/auth.js'
import { now, resolvedBody, revisionBody, writtenBody } from '../src/http/bodies.js'
import {
  ConfigReply,
  DeleteReply,
  Document,
  errorResponses,
  KeyParams,
  LayerNameSchema,
  ListReply,
  RevisionNumber,
} from '../src/http/schemas.js'
import type { Resolved } from '../src/store/cache.js'
import { etagOf, notModified } from '../src/store/etag.js'
import type { WriteOptions } from '../src/store/layered-store.js'

/** The longest a blocking read waits. */
const WAIT_MAX_MS = 5 * 60_000
const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000 }

/** `30`, `30s`, `500ms`, `2m` → milliseconds, at most WAIT_MAX_MS (the pattern has checked the form). */
function waitMs(text: string): number {
  const [, amount, unit = 's'] = /^(\d+)(ms|s|m)?$/.exec(text) as RegExpExecArray
  return Math.min(Number(amount) * (UNIT_MS[unit] as number), WAIT_MAX_MS)
}

const configRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const { store } = app
  /** Whether the caller may see `key` at all: within its keys, and a secret key for an admin only. */
  const visible = (principal: Principal | null, key: string) =>
    principal !== null && allowsKey(principal, key) && (!store.validator.isSecret(key) || isAdmin(principal))
  /** The key a typo away from `key` that the caller may see, nearest first. */
  const nearKey = async (request: FastifyRequest, key: string) =>
    (await store.similarKeys(key)).find((k) => visible(request.principal, k))
  /** A 404 for a key no layer holds names the key the caller may have meant. */
  async function suggesting(request: FastifyRequest, key: string, err: unknown): Promise<never> {
    if (err instanceof AppError && err.code === 'CONFIG_NOT_FOUND' && err.details === undefined) {
      const near = await nearKey(request, key).catch(() => undefined)
      if (near !== undefined) throw new AppError('CONFIG_NOT_FOUND', `${err.message}; did you mean ${near}?`)
    }
    throw err
  }
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
  /** Waits, while the client's If-None-Match names the current document, for it to change, at most `ms`. */
  async function blockingRead(request: FastifyRequest, reply: FastifyReply, key: string, ms: number) {
    const deadline = Date.now() + ms
    const gone = new AbortController()
    reply.raw.once('close', () => gone.abort()) // the client went away: stop waiting
    let r = store.readCached(key) ?? (await store.read(key))
    r.etag ??= etagOf(r.json)
    if (ms > 0 && notModified(request.headers['if-none-match'], r.etag)) {
      const release = app.longRequests.open(request) // 429 beyond the caps on streams and blocking reads
      try {
        for (;;) {
          const left = deadline - Date.now()
          if (left <= 0 || !(await store.waitForChange(r.key, left, gone.signal))) break
          r = await store.read(key)
          r.etag ??= etagOf(r.json)
          if (!notModified(request.headers['if-none-match'], r.etag)) break
        }
      } finally {
        release()
      }
    }
    sendResolved(request, reply, r)
  }

  /** A write's preconditions, and who makes it. */
  const writeOptions = (request: FastifyRequest): WriteOptions => ({
    ifMatch: request.headers['if-match'],
    ifNoneMatch: request.headers['if-none-match'],
    by: { actor: actorOf(request), via: 'api' },
  })

  /** `?revision=N`: that revision's document, with its ETag (If-None-Match gives 304). */
  async function revisionRead(request: FastifyRequest, reply: FastifyReply, key: string, n: number) {
    const found = await store.revision(key, n)
    if (found.json === null || found.etag === null)
      throw new AppError('CONFIG_NOT_FOUND', `revision ${n} of ${key} deleted it: it has no document`)
    const { revision } = found
    reply.header('etag', found.etag).header('x-config-revision', String(n))
    if (notModified(request.headers['if-none-match'], found.etag)) return reply.code(304).send()
    const updatedAt = (JSON.parse(found.json) as { _updated_at?: unknown })._updated_at
    const stamp = typeof updatedAt === 'string' ? updatedAt : null
    const body = revisionBody(key, found.json, revision.source, stamp, n)
    send(reply, revision.source, body)
  }

  app.get(
    '/api/config',
    {
      config: { scope: 'config:read' },
      schema: { summary: 'Every key known to any layer or schema', response: { 200: ListReply, ...errorResponses } },
    },
    async (request) => {
      const keys = await store.list((key) => visible(request.principal, key))
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
        querystring: Type.Object({
          source: Type.Optional(LayerNameSchema),
          revision: Type.Optional({
            ...RevisionNumber,
            description: 'that revision of the document (GET …/history lists them), instead of the current one',
          }),
          wait: Type.Optional(
            Type.String({
              pattern: '^[0-9]{1,9}(ms|s|m)?$',
              description:
                'a blocking read: with If-None-Match naming the current ETag, answer when the document changes, or 304 when this much time (seconds unless ms or m; at most 5m) has passed',
            }),
          ),
        }),
        response: { 200: ConfigReply, ...errorResponses },
      },
    },
    (request, reply) => {
      const { key } = request.params
      request.authorizeKey(key, 'config:read')
      const { source, wait, revision } = request.query
      if (revision !== undefined) {
        if (source !== undefined || wait !== undefined)
          throw new AppError('BAD_REQUEST', '?revision= reads history: it cannot be combined with ?source= or ?wait=')
        return revisionRead(request, reply, key, revision)
      }
      if (wait !== undefined && source === undefined) {
        // A blocking read never outlives the token that asked for it.
        const ms = Math.min(waitMs(wait), validForMs(request.principal))
        return blockingRead(request, reply, key, ms).catch((err: unknown) => suggesting(request, key, err))
      }
      const hit = source === undefined ? store.readCached(key) : undefined
      if (hit !== undefined) return sendResolved(request, reply, hit) // synchronous: no promise on the hot path
      const read = source === undefined ? store.read(key) : store.readFrom(source, key)
      return read.then(
        (r) => sendResolved(request, reply, r),
        (err: unknown) => suggesting(request, key, err),
      )
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
        const w = await save(key, request.body, writeOptions(request)).catch((err: unknown) =>
          suggesting(request, key, err),
        )
        const near = w.created === true ? await nearKey(request, key).catch(() => undefined) : undefined
        const warnings = near === undefined ? [] : [typoWarning(key, near)]
        if (near !== undefined) request.log.warn({ key, near }, warnings[0])
        reply.header('etag', w.etag)
        if (w.revision !== null) reply.header('x-config-revision', String(w.revision))
        send(reply, w.source, writtenBody(w, warnings))
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
      const { layers, revision } = await store.remove(key, writeOptions(request))
      return { status: 'success' as const, key, layers, revision, timestamp: now() }
    },
  )
}

export default configRoutes
