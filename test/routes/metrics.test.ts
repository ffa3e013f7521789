// /metrics after a known sequence of requests: each counter moves by what happened, and only what may read it does.
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { AUTH_TOKENS, bearer, buildTestApp } from '../helpers/app.js'
import { phpServerForFile } from '../helpers/php-server.js'

const php = phpServerForFile()

/** The value of one sample of the Prometheus text (0 when absent). */
function sample(text: string, name: string, labels: Record<string, string> = {}): number {
  const wanted = Object.entries(labels).map(([k, v]) => `${k}="${v}"`)
  for (const line of text.split('\n')) {
    const match = /^([a-z_]+)(?:\{(.*)\})? (\S+)$/.exec(line)
    if (match?.[1] !== name) continue
    const have = (match[2] ?? '').split(',')
    if (wanted.every((l) => have.includes(l))) return Number(match[3])
  }
  return 0
}

const METRICS_TOKEN = 'metrics-token-0123456789'
const tokens = JSON.stringify([
  ...JSON.parse(AUTH_TOKENS),
  { name: 'prometheus', token: METRICS_TOKEN, scopes: ['metrics:read'] },
])

describe('/metrics', () => {
  it('counts a hit, a fallback, a refused write and a 401 by what each did', async () => {
    const t = await buildTestApp({
      REDIS_URL: undefined,
      EXTERNAL_CONFIG_BASE_URL: php.url,
      CONFIG_API_TOKEN: php.token,
      CONFIG_STORE_MODE: 'php_first',
    })
    const scrape = async () => (await t.app.inject({ url: '/metrics' })).body
    const before = await scrape()
    const delta = async (name: string, labels: Record<string, string> = {}) =>
      sample(await scrape(), name, labels) - sample(before, name, labels)
    const read = (key: string) => t.app.inject({ url: `/api/config/${key}`, headers: bearer('read') })
    const write = (key: string) =>
      t.app.inject({ method: 'POST', url: `/api/config/${key}`, headers: bearer('write'), payload: { v: 1 } })

    expect((await write('k')).statusCode).toBe(200) // written to PHP
    expect((await read('k')).statusCode).toBe(200) // from PHP: a miss
    expect((await read('k')).statusCode).toBe(200) // from the cache: a hit
    php.mode = 'error500'
    writeFileSync(join(t.dir, 'only_in_files.json'), '{"v":"files"}')
    expect((await read('only_in_files')).json().meta.source).toBe('files') // PHP down: a fallback
    expect((await write('refused')).statusCode).toBe(503) // PHP answered an error: not written
    expect((await t.app.inject({ url: '/api/config/k' })).statusCode).toBe(401)

    expect(await delta('config_store_writes_total', { outcome: 'ok' })).toBe(1)
    expect(await delta('config_store_writes_total', { outcome: 'refused' })).toBe(1)
    expect(await delta('config_store_writes_total', { outcome: 'unknown' })).toBe(0)
    expect(await delta('config_store_cache_lookups_total', { result: 'hit' })).toBe(1)
    expect(await delta('config_store_fallbacks_total', { layer: 'files' })).toBe(1)
    expect(await delta('config_store_layer_reads_total', { layer: 'files', result: 'hit' })).toBe(1)
    expect(await delta('config_store_layer_unavailable_total', { layer: 'php' })).toBeGreaterThanOrEqual(1)
    expect(await delta('config_store_auth_failures_total', { reason: 'missing_token' })).toBe(1)
    const route = { route: '/api/config/:key', method: 'GET' }
    expect(await delta('config_store_http_requests_total', { ...route, status: '200' })).toBe(3)
    expect(await delta('config_store_http_requests_total', { ...route, status: '401' })).toBe(1)
    expect(await delta('config_store_http_request_duration_seconds_count', route)).toBe(4)
    expect(await delta('config_store_http_requests_total', { route: '/api/config/:key', status: '503' })).toBe(1)
    expect(sample(await scrape(), 'config_store_process_resident_memory_bytes')).toBeGreaterThan(0)
  })

  it('from loopback without a token; from elsewhere only with metrics:read or config:admin', async () => {
    const { app } = await buildTestApp({ REDIS_URL: undefined, AUTH_TOKENS: tokens })
    const from = (headers: Record<string, string> = {}) =>
      app.inject({ url: '/metrics', remoteAddress: '10.1.2.3', headers })
    expect((await app.inject({ url: '/metrics' })).statusCode).toBe(200)
    expect((await from()).statusCode).toBe(401)
    expect((await from(bearer('write'))).statusCode).toBe(403)
    const scraped = await from({ authorization: `Bearer ${METRICS_TOKEN}` })
    expect(scraped.statusCode).toBe(200)
    expect(scraped.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/)
    expect((await from(bearer('admin'))).statusCode).toBe(200)
    // metrics:read reads metrics, nothing else
    const config = await app.inject({ url: '/api/config', headers: { authorization: `Bearer ${METRICS_TOKEN}` } })
    expect(config.statusCode).toBe(403)
  })

  it('METRICS_ENABLED=false: no /metrics, and no per-request counting', async () => {
    const { app } = await buildTestApp({ REDIS_URL: undefined, METRICS_ENABLED: 'false' })
    expect((await app.inject({ url: '/metrics' })).statusCode).toBe(404)
  })

  it('a request that matched no route is counted as (unmatched)', async () => {
    const { app } = await buildTestApp({ REDIS_URL: undefined })
    await app.inject({ url: '/no/such/route' })
    const text = (await app.inject({ url: '/metrics' })).body
    expect(sample(text, 'config_store_http_requests_total', { route: '(unmatched)', status: '404' })).toBe(1)
  })
})
