// The legacy PHP HTTP API layer (docs/legacy.md "The PHP API, as deployed"): `{success, config}` replies (and the documented
// `{status, data}` shape), `{}`/`[]` meaning absent, Bearer token, key URL-encoded. Short timeouts, a keep-alive pool,
// and a small circuit breaker so that a PHP host that is down costs a read nothing while it is known to be down.
import { type Dispatcher, Pool } from 'undici'
import { LayerUnavailableError, reasonOf } from '../src/errors.js'
import { jsonLimitError, STORED_SLACK } from '../src/store/json-limits.js'
import { type ConfigDocument, hitFromDoc, isDocument, type Layer, type ReadResult, timed } from './layer.js'
import { textReaderDefaults } from './text-reader.js'

export interface PhpLayerOptions {
  baseUrl: string
  token: string
  connectTimeoutMs: number
  timeoutMs: number
  /** Consecutive failures that open the circuit, and how long it stays open before one trial request. */
  circuitThreshold?: number
  circuitResetMs?: number
  onCircuitChange?: (open: boolean, reason: string) => void
  /** A reply larger than this (CONFIG_MAX_BYTES plus the envelope) is not read: the layer is unavailable for it. */
  maxBytes?: number
  /** A reply with more values than this, or nested deeper than MAX_DEPTH, is not parsed. */
  maxNodes?: number
  /** Undoes PHP's reshaping of a document (`json_decode(…, true)` turns `{}` into `[]`), given its key. */
  reshape?: (key: string, doc: ConfigDocument) => ConfigDocument
}

export interface PhpLayer extends Layer {
  close(): Promise<void>
}

/** PHP answered with an error, or was never asked: nothing was written. */
const refused = (reason: string) => new LayerUnavailableError('php', reason)

/** Transport failures before the request can have reached PHP: nothing was written. */
const NOT_SENT = /ECONNREFUSED|ENOTFOUND|EAI_AGAIN|EHOSTUNREACH|ENETUNREACH|UND_ERR_CONNECT_TIMEOUT|circuit open/

const HEALTH_KEY = 'config_store_health_probe'
/** Room for `{"success":true,"config":…}` around a document of CONFIG_MAX_BYTES. */
const ENVELOPE_BYTES = 1024

/** The reply body as text, read no further than `max` bytes. */
async function readCapped(body: Dispatcher.ResponseData['body'], declared: unknown, max: number): Promise<string> {
  const tooLarge = () => refused(`PHP API reply is larger than ${max} bytes (CONFIG_MAX_BYTES); not read`)
  if (Number(declared) > max) {
    body.destroy()
    throw tooLarge()
  }
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of body) {
    size += (chunk as Buffer).length
    if (size > max) {
      body.destroy()
      throw tooLarge()
    }
    chunks.push(chunk as Buffer)
  }
  return Buffer.concat(chunks, size).toString('utf8')
}

export function createPhpLayer(options: PhpLayerOptions): PhpLayer {
  const base = new URL(`${options.baseUrl.replace(/\/+$/, '')}/config_api.php`)
  const pool = new Pool(base.origin, {
    connections: 16,
    connect: { timeout: options.connectTimeoutMs },
    headersTimeout: options.timeoutMs,
    bodyTimeout: options.timeoutMs,
    keepAliveTimeout: 10_000,
  })
  const headers = { authorization: `Bearer ${options.token}`, accept: 'application/json' }
  const maxReply = (options.maxBytes ?? 1_048_576) + ENVELOPE_BYTES
  const maxNodes = options.maxNodes ?? textReaderDefaults.maxNodes
  const threshold = options.circuitThreshold ?? 3
  const resetMs = options.circuitResetMs ?? 5000
  let failures = 0
  let openUntil = 0
  let probing = false

  function admit(): void {
    if (failures < threshold) return
    if (Date.now() < openUntil || probing) {
      throw refused(`circuit open after ${failures} consecutive failures`)
    }
    probing = true
  }

  function record(ok: boolean, reason: string): void {
    probing = false
    if (ok) {
      if (failures >= threshold) options.onCircuitChange?.(false, 'answered again')
      failures = 0
      return
    }
    failures++
    if (failures >= threshold) {
      if (failures === threshold) options.onCircuitChange?.(true, reason)
      openUntil = Date.now() + resetMs
    }
  }

  /** One request; answers the parsed JSON reply of a 200, throws LayerUnavailableError for anything else. */
  async function call(method: 'GET' | 'POST', path: string, body?: string): Promise<Record<string, unknown>> {
    admit()
    try {
      const res = await pool.request({
        method,
        path,
        headers: body === undefined ? headers : { ...headers, 'content-type': 'application/json' },
        ...(body === undefined ? {} : { body }),
        signal: AbortSignal.timeout(options.timeoutMs),
      })
      const text = await readCapped(res.body, res.headers['content-length'], maxReply)
      const tooDeep = jsonLimitError(text, maxNodes + STORED_SLACK, 1)
      if (tooDeep !== undefined) throw refused(`PHP API reply ${tooDeep}`)
      let reply: unknown
      try {
        reply = JSON.parse(text)
      } catch {
        throw refused(`PHP API answered ${res.statusCode} with a body that is not JSON`)
      }
      if (res.statusCode !== 200 || !isDocument(reply) || reply.success === false) {
        const message = isDocument(reply) && typeof reply.message === 'string' ? `: ${reply.message}` : ''
        throw refused(`PHP API answered ${res.statusCode}${message}`)
      }
      record(true, '')
      return reply
    } catch (err) {
      if (err instanceof LayerUnavailableError) {
        record(false, err.reason)
        throw err
      }
      // A transport failure: PHP may have applied a request that left, unless it never could have.
      const reason = `PHP API unreachable (${reasonOf(err)})`
      record(false, reason)
      throw new LayerUnavailableError('php', reason, err, NOT_SENT.test(reason) ? 'not_written' : 'unknown')
    }
  }

  const readPath = (key: string) => `${base.pathname}?key=${encodeURIComponent(key)}`

  async function get(key: string): Promise<ReadResult> {
    let reply: Record<string, unknown>
    try {
      reply = await call('GET', readPath(key))
    } catch (err) {
      return { state: 'unavailable', reason: (err as LayerUnavailableError).reason }
    }
    const config = 'config' in reply ? reply.config : reply.status === 'success' ? reply.data : undefined
    if (Array.isArray(config)) return { state: 'absent' } // PHP's answer for an unreadable file
    if (!isDocument(config)) return { state: 'unavailable', reason: 'PHP API reply holds no config object' }
    // `{}` is PHP's "never written"; a document holding only `_updated_at` is how this layer deletes (docs/architecture.md "Deletes").
    if (Object.keys(config).every((k) => k === '_updated_at')) return { state: 'absent' }
    return hitFromDoc(options.reshape ? options.reshape(key, config) : config)
  }

  async function set(key: string, doc: ConfigDocument, json = JSON.stringify(doc)): Promise<void> {
    await call('POST', base.pathname, `{"key":${JSON.stringify(key)},"config":${json}}`)
  }

  return {
    name: 'php',
    get,
    set,
    async delete(key) {
      const current = await get(key)
      if (current.state === 'unavailable') throw new LayerUnavailableError('php', current.reason)
      if (current.state === 'absent') return 'absent'
      await set(key, {})
      return 'deleted'
    },
    async listKeys() {
      return [] // the PHP API has no listing
    },
    async health() {
      if (failures >= threshold && Date.now() < openUntil) {
        return { ok: false, latencyMs: 0, error: `circuit open after ${failures} consecutive failures` }
      }
      try {
        const { ms } = await timed(() => call('GET', readPath(HEALTH_KEY)))
        return { ok: true, latencyMs: ms }
      } catch (err) {
        return { ok: false, latencyMs: 0, error: (err as LayerUnavailableError).reason }
      }
    },
    close: () => pool.close(),
  }
}
