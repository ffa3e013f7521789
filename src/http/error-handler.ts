// The one place errors become responses (docs/api.md "The envelope and errors"): AppError as is, Fastify's own errors mapped to the
// error table, anything else a 500 whose internals stay in the log. Legacy routes answer in the PHP shape.
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify'
import { AppError, type ErrorCode } from '../errors.js'

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Errors answer `{ success: false, message }` like the PHP API (docs/legacy.md). */
    legacy?: boolean
  }
}

const FASTIFY_CODES: Record<string, ErrorCode> = {
  FST_ERR_CTP_BODY_TOO_LARGE: 'PAYLOAD_TOO_LARGE',
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'UNSUPPORTED_MEDIA_TYPE',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'BAD_REQUEST',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'BAD_REQUEST',
  FST_ERR_CTP_INVALID_JSON_BODY: 'BAD_REQUEST',
}

/** A 415's message: what is expected, and the header that was sent (curl -d sends a form type unless told). */
export function unsupportedMediaType(contentType: string | undefined): string {
  const sent = contentType === undefined ? 'no Content-Type header' : `Content-Type: ${contentType.slice(0, 100)}`
  return `the body must be JSON, sent with the header Content-Type: application/json (PATCH also takes application/merge-patch+json); this request had ${sent} (curl -d sends application/x-www-form-urlencoded unless given -H 'Content-Type: application/json')`
}

export function toAppError(err: FastifyError | AppError | Error, contentType?: string): AppError {
  if (err instanceof AppError) return err
  const e = err as FastifyError
  if (e.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE')
    return new AppError('UNSUPPORTED_MEDIA_TYPE', unsupportedMediaType(contentType))
  if (e.validation) {
    const details = e.validation.map((v) => ({ path: v.instancePath || '/', message: v.message ?? 'is invalid' }))
    if (e.validationContext === 'params')
      return new AppError('INVALID_KEY', 'the key must match ^[a-z0-9_-]{1,128}$', { details })
    const what = e.validationContext === 'body' ? 'the body must be a JSON object' : `bad ${e.validationContext}`
    return new AppError('BAD_REQUEST', what, { details })
  }
  const code = e.code !== undefined && Object.hasOwn(FASTIFY_CODES, e.code) ? FASTIFY_CODES[e.code] : undefined
  if (code !== undefined) return new AppError(code, e.message)
  if (e instanceof SyntaxError || (e.statusCode === 400 && e.code?.startsWith('FST_ERR_CTP'))) {
    return new AppError('BAD_REQUEST', `the body is not valid JSON: ${e.message}`)
  }
  if (e.statusCode !== undefined && e.statusCode >= 400 && e.statusCode < 500)
    return new AppError('BAD_REQUEST', e.message)
  return new AppError('INTERNAL_ERROR', 'internal error; the service log has the details', { cause: err })
}

const hasBody = (request: FastifyRequest) =>
  request.headers['transfer-encoding'] !== undefined || (request.headers['content-length'] ?? '0') !== '0'

/** How much of a refused body is read and thrown away, as a multiple of the largest body taken (CONFIG_MAX_BYTES). */
const LINGER_BODIES = 4

/** A request answered before its body was read: closing the connection at once would reset it under a client that
 * writes its whole body before it reads (EPIPE, and no answer seen). So the rest of the body is read and discarded,
 * as nginx's lingering close does, up to LINGER_BODIES bodies and within REQUEST_TIMEOUT_MS, and the connection then
 * goes on; a body declared larger than that is not waited for, and the connection closes at once. */
function linger(request: FastifyRequest, reply: FastifyReply): void {
  const bodyLimit = request.server.initialConfig.bodyLimit ?? 1_048_576
  const requestTimeout = request.server.server.requestTimeout || 30_000
  const bound = bodyLimit * LINGER_BODIES
  const declared = Number(request.headers['content-length'] ?? 0)
  if (!(declared <= bound)) {
    reply.header('connection', 'close')
    return
  }
  const raw = request.raw
  const socket = raw.socket
  // When the answer closes the connection (the client asked to), Node ends and destroys the socket as soon as the
  // answer is written, resetting a client still sending. Here it only ends its side, and reads on until the client
  // ends its own (the socket then closes), or a bound is reached.
  socket.destroySoon = () => {
    if (!socket.writableEnded) socket.end()
  }
  let read = 0
  const stop = () => socket.destroy()
  const timer = setTimeout(stop, requestTimeout)
  timer.unref()
  raw.on('data', (chunk: Buffer) => {
    read += chunk.length
    if (read > bound) stop()
  })
  raw.once('end', () => clearTimeout(timer))
  socket.once('close', () => clearTimeout(timer))
}

const LEGACY_MESSAGES: Partial<Record<ErrorCode, string>> = {
  TOO_MANY_REQUESTS: 'Too many requests',
  UNAUTHORIZED: 'Unauthorized',
  FORBIDDEN: 'Forbidden',
  INVALID_KEY: 'Invalid key',
  METHOD_NOT_ALLOWED: 'Method not allowed',
}

export function errorHandler(err: FastifyError, request: FastifyRequest, reply: FastifyReply) {
  const error = toAppError(err, request.headers['content-type'])
  // Unexpected errors with their stack; the project's own (a layer down is already a WARN line of the store's) as
  // one info line per request, so that an outage does not turn every request into an error log.
  if (err instanceof AppError || error.statusCode < 500) {
    request.log.info({ code: error.code, reason: error.message }, 'request refused')
  } else {
    request.log.error({ err }, error.message)
  }
  if (error.statusCode === 401) reply.header('www-authenticate', 'Bearer')
  // Refused before its body was read (401, 413, 429 …): the rest of it is read and thrown away, within bounds.
  if (request.body === undefined && hasBody(request)) linger(request, reply)
  reply.code(error.statusCode)
  if (request.routeOptions.config.legacy) {
    const message = LEGACY_MESSAGES[error.code] ?? (error.statusCode < 500 ? 'Invalid payload' : error.message)
    return reply.send({ success: false, message })
  }
  return reply.send({
    status: 'error',
    code: error.code,
    message: error.message,
    ...(error.details ? { details: error.details } : {}),
    timestamp: new Date().toISOString(),
  })
}
