// The change feed (docs/api.md "The change feed"): Server-Sent Events, one `change` event per revision of any key, in
// order, with `id` the position to resume from (Last-Event-ID). Events missed while away are replayed; when they are
// no longer kept, a `reset` event says so. A token sees only the keys it may read.
import { PassThrough } from 'node:stream'
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import type { AppConfig } from '../src/config.js'
import { AppError } from '../src/errors.js'
import { allowsKey, isAdmin, type Principal, validForMs } from '../src/http/auth.js'
import { errorResponses } from '../src/http/schemas.js'
import type { FeedEvent } from '../src/store/history/schemas.js'
import { isValidKey } from '../stores/layer.js'

const changesRoutes: FastifyPluginAsyncTypebox<{ config: AppConfig }> = async (app, { config }) => {
  const { store } = app
  const open = new Set<() => void>()
  // Streams end when the close begins: they would otherwise hold it until its deadline.
  app.addHook('preClose', async () => {
    for (const end of [...open]) end()
  })

  app.get(
    '/api/changes',
    {
      config: { scope: 'config:read' },
      schema: {
        summary:
          'The change feed: Server-Sent Events, one per revision (Last-Event-ID resumes; a reset event when that is too old)',
        querystring: Type.Object({
          keys: Type.Optional(Type.String({ description: 'comma-separated keys: only their changes' })),
          include: Type.Optional(Type.Literal('document', { description: 'each event carries the document' })),
        }),
        headers: Type.Object({
          'last-event-id': Type.Optional(Type.String({ description: 'the `id` of the last event received' })),
        }),
        response: {
          200: Type.String({ description: 'text/event-stream: `change`, `reset` events and heartbeat comments' }),
          ...errorResponses,
        },
      },
    },
    async (request, reply) => {
      const principal = request.principal as Principal
      const only = request.query.keys?.split(',').map((k) => k.trim())
      for (const key of only ?? []) {
        if (!isValidKey(key)) throw new AppError('INVALID_KEY', `?keys= holds ${JSON.stringify(key)}, not a key name`)
        request.authorizeKey(key, 'config:read')
      }
      const lastId = request.headers['last-event-id']
      if (lastId !== undefined && !store.feed.isPosition(lastId))
        throw new AppError('BAD_REQUEST', `Last-Event-ID ${JSON.stringify(lastId)} is not a position of this feed`)
      const mayRead = (key: string) =>
        (only === undefined || only.includes(key)) &&
        allowsKey(principal, key) &&
        (!store.validator.isSecret(key) || isAdmin(principal))
      const withDocument = request.query.include === 'document'

      const release = app.longRequests.open(request) // 429 beyond the caps on streams and blocking reads
      // Live events are heard from before the replay is read, and held until it is sent: none falls between.
      const held: FeedEvent[] = []
      let live = false
      const stream = new PassThrough()
      let sent: string | undefined
      let queue = Promise.resolve()
      let heartbeat: NodeJS.Timeout | undefined
      let expiry: NodeJS.Timeout | undefined
      const end = () => {
        if (!open.delete(end)) return
        clearInterval(heartbeat)
        clearTimeout(expiry)
        subscription.close()
        release()
        stream.end()
      }
      const send = (e: FeedEvent) => {
        if (sent !== undefined && store.feed.compare(e.id, sent) <= 0) return
        sent = e.id
        if (!mayRead(e.event.key)) return
        queue = queue.then(async () => {
          let data = JSON.stringify(e.event)
          if (withDocument && e.event.op === 'write') {
            const doc = await store.revision(e.event.key, e.event.revision).catch(() => undefined)
            data = `${data.slice(0, -1)},"document":${doc?.json ?? 'null'}}`
          }
          if (!open.has(end)) return
          stream.write(`id: ${e.id}\nevent: change\ndata: ${data}\n\n`)
          // A reader that falls this far behind is not buffered for without end: it is told to read again and let go.
          if (stream.writableLength + stream.readableLength > config.CONFIG_FEED_BUFFER_BYTES) {
            const reason = `this reader fell more than ${config.CONFIG_FEED_BUFFER_BYTES} bytes behind (CONFIG_FEED_BUFFER_BYTES): reconnect with Last-Event-ID ${e.id}, or read what you need again`
            stream.write(`id: ${e.id}\nevent: reset\ndata: ${JSON.stringify({ reason, position: e.id })}\n\n`)
            end()
          }
        })
      }
      const subscription = store.feed.subscribe((e) => (live ? send(e) : held.push(e)))
      // Ended from here on by the client leaving (even during the replay's reads below), the close, or the token's
      // expiry: a stream never outlives the token that opened it.
      open.add(end)
      reply.raw.once('close', end)
      expiry = setTimeout(end, Math.min(validForMs(principal), 2 ** 31 - 1))
      let replay: { events: FeedEvent[]; position: string }
      try {
        await subscription.ready
        const missed = await store.feed.after(lastId)
        if (missed === 'reset') {
          const now = await store.feed.after(undefined)
          if (now === 'reset') throw new AppError('INTERNAL_ERROR', 'the feed has no position')
          replay = now
          const reason = `the events after ${lastId} are no longer kept (CONFIG_FEED_MAX): read what you need again`
          stream.write(
            `id: ${now.position}\nevent: reset\ndata: ${JSON.stringify({ reason, position: now.position })}\n\n`,
          )
        } else {
          replay = missed
          sent = lastId
        }
      } catch (err) {
        end()
        throw err
      }
      if (!open.has(end)) return reply // the client left during the replay's reads
      for (const e of replay.events) send(e)
      sent = replay.position
      for (const e of held) send(e)
      live = true

      heartbeat = setInterval(() => stream.write(': heartbeat\n\n'), config.CONFIG_FEED_HEARTBEAT_MS)
      stream.write(`retry: 1000\n: position ${replay.position}\n\n`)
      return reply
        .header('content-type', 'text/event-stream; charset=utf-8')
        .header('x-accel-buffering', 'no') // nginx: pass events on as they come
        .send(stream as never)
    },
  )
}

export default changesRoutes
