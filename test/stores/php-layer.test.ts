import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { buildApp } from '../../src/app.js'
import { loadConfig } from '../../src/config.js'
import { createPhpLayer, type PhpLayer } from '../../stores/php-layer.js'
import { AUTH_TOKENS, captureLogger, TOKENS, tempDir } from '../helpers/app.js'
import { type PhpServer, phpDate, startPhpServer } from '../helpers/php-server.js'
import { layerContract } from './contract.js'

const options = (server: PhpServer, extra = {}) => ({
  baseUrl: server.url,
  token: server.token,
  connectTimeoutMs: 500,
  timeoutMs: 300,
  ...extra,
})

layerContract('php (loopback server speaking the PHP contract)', async () => {
  const server = await startPhpServer()
  const layer = createPhpLayer(options(server))
  return {
    layer,
    breakIt: () => server.close(),
    cleanup: async () => {
      await layer.close()
      await server.close()
    },
  }
})

layerContract('php (a second instance of this service, through its /config_api.php)', async () => {
  const config = loadConfig({ AUTH_TOKENS, CONFIG_FILES_DIR: tempDir() })
  const app = await buildApp({ config, logger: captureLogger('silent').logger })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = app.server.address() as { port: number }
  const layer = createPhpLayer({
    baseUrl: `http://127.0.0.1:${port}`,
    token: TOKENS.admin,
    connectTimeoutMs: 500,
    timeoutMs: 500,
  })
  return {
    layer,
    breakIt: () => app.close(),
    cleanup: async () => {
      await layer.close()
      await app.close()
    },
  }
})

describe('php layer: the real contract', () => {
  let server: PhpServer
  let store: PhpLayer
  beforeAll(async () => {
    server = await startPhpServer()
  })
  afterAll(() => server.close())
  beforeEach(() => {
    server.mode = 'ok'
    server.files.clear()
    server.requests.length = 0
    store = createPhpLayer(options(server, { circuitResetMs: 60_000 }))
  })
  afterEach(() => store.close())

  it('sends the Bearer token and the URL-encoded key to <base>/config_api.php', async () => {
    await store.get('my-key_1')
    expect(server.requests[0]).toEqual({
      method: 'GET',
      url: '/legacy/config_api.php?key=my-key_1',
      authorization: `Bearer ${server.token}`,
    })
  })

  it('treats config {} and config [] (unreadable file) as absent, never as a hit', async () => {
    expect(await store.get('missing')).toEqual({ state: 'absent' })
    server.files.set('corrupt', '{not json')
    expect(await store.get('corrupt')).toEqual({ state: 'absent' })
  })

  it('reads a document holding only _updated_at (how this layer deletes) as absent', async () => {
    server.files.set('emptied', JSON.stringify({ _updated_at: phpDate() }))
    expect(await store.get('emptied')).toEqual({ state: 'absent' })
  })

  it('reads the documented {status, data} shape too', async () => {
    server.mode = 'status-shape'
    server.files.set('webhook_config', JSON.stringify({ webhook_url: '' }))
    expect(await store.get('webhook_config')).toMatchObject({ state: 'hit', doc: { webhook_url: '' } })
  })

  it('keeps the _updated_at the PHP side stamps on writes', async () => {
    await store.set('stamped', { a: 1 })
    const read = await store.get('stamped')
    expect(read.state === 'hit' && read.doc._updated_at).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00$/)
  })

  it.each([
    ['error500', /answered 500: Storage error/],
    ['garbage', /not JSON/],
    ['hang', /unreachable/],
  ] as const)('answers unavailable when PHP is in mode %s', async (mode, reason) => {
    server.mode = mode
    const read = await store.get('k')
    expect(read.state).toBe('unavailable')
    expect(read.state === 'unavailable' && read.reason).toMatch(reason)
  })

  it('answers unavailable when the token is refused (401), naming the status', async () => {
    const wrong = createPhpLayer({ ...options(server), token: 'wrong' })
    const read = await wrong.get('k')
    expect(read.state === 'unavailable' && read.reason).toMatch(/401: Unauthorized/)
    await wrong.close()
  })

  it('opens its circuit after 3 failures: later calls do not reach PHP until it is reset', async () => {
    const changes: boolean[] = []
    const breaker = createPhpLayer(
      options(server, { circuitResetMs: 60_000, onCircuitChange: (open: boolean) => changes.push(open) }),
    )
    server.mode = 'error500'
    for (let i = 0; i < 3; i++) await breaker.get('k')
    const seen = server.requests.length
    const read = await breaker.get('k')
    expect(read.state === 'unavailable' && read.reason).toMatch(/circuit open/)
    await expect(breaker.set('k', { a: 1 })).rejects.toThrow(/circuit open/)
    expect(server.requests.length).toBe(seen)
    expect(changes).toEqual([true])
    await breaker.close()
  })

  it('lets one trial through after the reset time and closes the circuit when PHP answers again', async () => {
    const changes: boolean[] = []
    const breaker = createPhpLayer(
      options(server, { circuitResetMs: 1, onCircuitChange: (open: boolean) => changes.push(open) }),
    )
    server.mode = 'error500'
    for (let i = 0; i < 3; i++) await breaker.get('k')
    server.mode = 'ok'
    server.files.set('k', JSON.stringify({ back: true }))
    await new Promise((r) => setTimeout(r, 5))
    expect(await breaker.get('k')).toMatchObject({ state: 'hit', doc: { back: true } })
    expect(changes).toEqual([true, false])
    await breaker.close()
  })
})
