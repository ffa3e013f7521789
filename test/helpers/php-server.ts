// A loopback node:http server that speaks the deployed PHP contract (docs/legacy.md), with switches for the failure modes
// a real PHP host shows: hanging, answering 500, answering garbage, or the documented `{status, data}` shape.
import { createServer, type IncomingMessage, type Server } from 'node:http'
import { afterAll, afterEach, beforeAll } from 'vitest'

export type PhpMode = 'ok' | 'hang' | 'error500' | 'garbage' | 'status-shape'

export interface PhpServer {
  url: string
  token: string
  /** Stored raw text per key, as PHP keeps it in files (so a test can store invalid JSON). */
  files: Map<string, string>
  mode: PhpMode
  /** Answers this many milliseconds late (a slow shared host). */
  delayMs: number
  requests: Array<{ method: string; url: string; authorization: string | undefined }>
  close(): Promise<void>
}

const KEY = /^[a-z0-9_-]{1,128}$/

/** PHP's `date('c')` format: 2026-01-19T00:36:24+00:00 */
export function phpDate(date = new Date()): string {
  return `${date.toISOString().slice(0, 19)}+00:00`
}

/** What `json_encode(json_decode($json, true))` gives back, as the real config_api.php stores and serves every
 * document: an empty object becomes `[]`, and an object keyed "0", "1", … in order becomes a list. */
export function phpRoundTrip(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(phpRoundTrip)
  if (typeof value !== 'object' || value === null) return value
  const entries = Object.entries(value)
  if (entries.every(([k], i) => k === String(i))) return entries.map(([, v]) => phpRoundTrip(v))
  return Object.fromEntries(entries.map(([k, v]) => [k, phpRoundTrip(v)]))
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve) => {
    let body = ''
    req.on('data', (c: Buffer) => {
      body += c.toString()
    })
    req.on('end', () => resolve(body))
  })
}

function blankState(token: string): PhpServer {
  return { url: '', token, files: new Map(), mode: 'ok', delayMs: 0, requests: [], close: async () => {} }
}

/** The server for a whole test file (or describe block): the object exists at once, the server listens before the file's tests, is
 * reset after each test and closed after the last. */
export function phpServerForFile(): PhpServer {
  const state = blankState('php-api-token-for-tests')
  beforeAll(async () => {
    await startPhpServer(state.token, state)
  })
  afterEach(() => {
    state.mode = 'ok'
    state.delayMs = 0
    state.files.clear()
    state.requests.length = 0
  })
  afterAll(() => state.close())
  return state
}

export async function startPhpServer(
  token = 'php-api-token-for-tests',
  state: PhpServer = blankState(token),
): Promise<PhpServer> {
  const hanging = new Set<() => void>()
  const server: Server = createServer(async (req, res) => {
    state.requests.push({ method: req.method ?? '', url: req.url ?? '', authorization: req.headers.authorization })
    const send = (status: number, body: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' })
      res.end(typeof body === 'string' ? body : JSON.stringify(body))
    }
    if (state.delayMs > 0) await new Promise((r) => setTimeout(r, state.delayMs))
    if (state.mode === 'hang') {
      hanging.add(() => res.destroy())
      return
    }
    if (state.mode === 'error500') return send(500, { success: false, message: 'Storage error' })
    if (state.mode === 'garbage') return send(200, '<html>Service Unavailable</html>')
    if (req.headers.authorization !== `Bearer ${token}`) return send(401, { success: false, message: 'Unauthorized' })
    const url = new URL(req.url ?? '/', 'http://x')
    if (!url.pathname.endsWith('/config_api.php')) return send(404, { success: false, message: 'Not found' })
    if (req.method === 'GET') {
      const key = (url.searchParams.get('key') ?? '').trim().toLowerCase()
      if (!KEY.test(key)) return send(400, { success: false, message: 'Invalid key' })
      const text = state.files.get(key)
      let config: unknown = {}
      if (text !== undefined) {
        try {
          const decoded = phpRoundTrip(JSON.parse(text))
          config = typeof decoded === 'object' && decoded !== null ? decoded : [] // !is_array($json): []
        } catch {
          config = []
        }
      }
      if (state.mode === 'status-shape') return send(200, { status: 'success', data: config, timestamp: phpDate() })
      return send(200, { success: true, config })
    }
    if (req.method === 'POST') {
      let payload: { key?: unknown; config?: unknown }
      try {
        payload = JSON.parse(await readBody(req))
      } catch {
        return send(400, { success: false, message: 'Invalid payload' })
      }
      const key = typeof payload.key === 'string' ? payload.key.trim().toLowerCase() : ''
      const config = payload.config
      if (!KEY.test(key) || typeof config !== 'object' || config === null || Array.isArray(config)) {
        return send(400, { success: false, message: 'Invalid payload' })
      }
      // `$cfg['_updated_at'] = gmdate('c')`, then json_encode: PHP's array semantics, PHP's whole-second stamp.
      state.files.set(key, JSON.stringify(phpRoundTrip({ ...config, _updated_at: phpDate() }), null, 4))
      return send(200, { success: true })
    }
    return send(405, { success: false, message: 'Method not allowed' })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as { port: number }
  state.url = `http://127.0.0.1:${port}/legacy/`
  state.close = async () => {
    for (const end of hanging) end()
    server.closeAllConnections()
    await new Promise<void>((resolve) => server.close(() => resolve()))
  }
  return state
}
