// What can be checked of the container set-up without a Docker engine: the compose file and the Dockerfile say what
// the README promises, the health probe really probes, and the alert rules and dashboard name metrics that exist.
import { spawn } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { parse } from 'yaml'
import { loadConfig } from '../src/config.js'
import { buildTestApp } from './helpers/app.js'
import { ROOT } from './helpers/cli.js'

const read = (file: string) => readFileSync(`${ROOT}${file}`, 'utf8')

describe('docker-compose.yml', () => {
  const service = parse(read('docker-compose.yml')).services['config-store']

  it('passes every variable of a .env it requires (the short form every Compose v2 reads), defaults REDIS_URL to its own Redis', () => {
    expect(service.env_file).toEqual(['.env'])
    // biome-ignore lint/suspicious/noTemplateCurlyInString: compose and shell syntax, not a template
    expect(service.environment).toEqual({ REDIS_URL: '${REDIS_URL:-redis://redis:6379}' })
    expect(read('docker-compose.yml')).not.toMatch(/AUTH_TOKENS:/) // a JWT-only set-up works
  })

  it('restarts unless stopped, publishes on loopback by default, and keeps /data and /backups', () => {
    expect(service.restart).toBe('unless-stopped')
    expect(service.volumes).toEqual(['config-data:/data', 'config-backups:/backups'])
  })

  /** `${NAME:-default}` as Compose interpolates it from `.env`. */
  const interpolate = (text: string, env: Record<string, string>) =>
    text.replace(/\$\{(\w+):-([^}]*)\}/g, (_, name: string, fallback: string) => env[name] || fallback)

  it.each([
    [{}, '127.0.0.1:8080:8080'],
    [{ PORT: '9090' }, '127.0.0.1:8080:9090'],
    [{ PORT: '9090', CONFIG_STORE_PUBLISH: '0.0.0.0:80' }, '0.0.0.0:80:9090'],
  ])('with .env %j the published container port is the one the service listens on', (env, published) => {
    const [mapping] = service.ports as string[]
    expect(interpolate(mapping as string, env)).toBe(published)
    // the port the service inside takes from the same .env (the image's ENV says 8080 otherwise)
    const inside = loadConfig({ PORT: (env as Record<string, string>).PORT ?? '8080' }).PORT
    expect(published.split(':').at(-1)).toBe(String(inside))
  })
})

describe('Dockerfile', () => {
  const dockerfile = read('Dockerfile')

  it('runs Node 24 LTS from a pinned slim image, with source maps, without the benchmark, as node', () => {
    const images = [...dockerfile.matchAll(/^FROM (\S+)/gm)].map((m) => m[1])
    expect(images).toHaveLength(2)
    for (const image of images) expect(image).toMatch(/^node:24\.\d+\.\d+-bookworm-slim$/)
    expect(dockerfile).toMatch(/^CMD \["node", "--enable-source-maps", "dist\/src\/cli\/bin\.js", "serve"\]$/m)
    expect(dockerfile).toMatch(/rm -rf dist\/bench/)
    expect(dockerfile).toMatch(/^USER node$/m)
  })

  it('lets the node user write /data and /backups, where the README exports to', () => {
    expect(dockerfile).toMatch(/chown node:node \/data \/backups/)
    const readme = read('README.md')
    expect(readme).toContain('docker compose exec config-store config-store export --out /backups/')
    expect(readme).toContain('docker compose exec config-store config-store check')
  })

  it('probes health with bash on HOST and PORT, not with a new Node process', () => {
    expect(dockerfile).toMatch(/^HEALTHCHECK .* CMD \["\/app\/bin\/healthcheck"\]$/m)
    const probe = read('bin/healthcheck')
    expect(probe).toMatch(/^#!\/usr\/bin\/env bash/)
    // biome-ignore lint/suspicious/noTemplateCurlyInString: compose and shell syntax, not a template
    expect(probe).toContain('${HOST:-127.0.0.1}')
    expect(probe).not.toMatch(/\bnode\b/)
  })
})

describe('bin/healthcheck', () => {
  // Asynchronously: the server under probe answers from this very process.
  const probe = (env: Record<string, string>) =>
    new Promise<number | null>((resolve) => {
      const child = spawn(`${ROOT}bin/healthcheck`, { env: { PATH: process.env.PATH ?? '', ...env } })
      const timer = setTimeout(() => child.kill('SIGKILL'), 3000)
      child.once('exit', (code) => {
        clearTimeout(timer)
        resolve(code)
      })
    })

  it('answers 0 while /health answers 200 on HOST:PORT (a wildcard HOST on loopback), non-zero otherwise', async () => {
    const { app } = await buildTestApp({ REDIS_URL: undefined })
    await app.listen({ host: '127.0.0.1', port: 0 })
    const port = String((app.server.address() as { port: number }).port)
    expect(await probe({ HOST: '127.0.0.1', PORT: port })).toBe(0)
    expect(await probe({ HOST: '0.0.0.0', PORT: port })).toBe(0)
    await app.close()
    expect(await probe({ HOST: '127.0.0.1', PORT: port })).not.toBe(0)
  })
})

describe('deploy/', () => {
  it('the alert rules and the dashboard name only metrics that /metrics has', async () => {
    const { app } = await buildTestApp({ REDIS_URL: undefined })
    const exposed = new Set(
      [...(await app.inject({ url: '/metrics' })).body.matchAll(/^# TYPE (\S+)/gm)].map((m) => m[1] as string),
    )
    const rules = parse(read('deploy/prometheus-alerts.yml')).groups[0].rules as Array<{ alert: string; expr: string }>
    expect(rules.map((r) => r.alert)).toEqual([
      'ConfigStoreBackendFailing',
      'ConfigStoreSlowAnswers',
      'ConfigStoreErrors',
      'ConfigStoreFallbackInUse',
    ])
    const dashboard = JSON.parse(read('deploy/grafana-dashboard.json'))
    const exprs = [
      ...rules.map((r) => r.expr),
      ...dashboard.panels.flatMap((p: { targets: Array<{ expr: string }> }) => p.targets.map((t) => t.expr)),
    ]
    const named = new Set(exprs.flatMap((e) => [...e.matchAll(/config_store_[a-z0-9_]+/g)].map((m) => m[0])))
    expect(named.size).toBeGreaterThan(10)
    for (const name of named) expect(exposed, name).toContain(name.replace(/_(bucket|count|sum)$/, ''))
  })
})
