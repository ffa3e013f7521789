import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { configFrom, loadConfig, readEnvironment } from '../src/config.js'
import { ConfigError } from '../src/errors.js'
import { tempDir } from './helpers/app.js'
import { ROOT } from './helpers/cli.js'

describe('configuration from the environment', () => {
  it('with nothing set: files only, on loopback:8080, the documented defaults', () => {
    const c = loadConfig({})
    expect(c.layers).toEqual(['files'])
    expect(c).toMatchObject({
      HOST: '127.0.0.1',
      PORT: 8080,
      LOG_LEVEL: 'info',
      CONFIG_STORE_MODE: 'redis_first',
      CONFIG_STORE_REDIS_PREFIX: 'r:ss:config:',
      CONFIG_FILES_DIR: './data',
      CONFIG_CACHE_TTL_MS: 60000,
      CONFIG_MAX_BYTES: 1048576,
      CONFIG_STORE_UNKNOWN_KEYS: 'allow',
      REDIS_COMMAND_TIMEOUT_MS: 500,
      PHP_TIMEOUT_MS: 2000,
    })
  })

  it('orders the configured layers by CONFIG_STORE_MODE and leaves out the rest', () => {
    const php = { EXTERNAL_CONFIG_BASE_URL: 'https://legacy.example.com/', CONFIG_API_TOKEN: 't' }
    const redis = { REDIS_URL: 'redis://127.0.0.1:6379' }
    expect(loadConfig({ ...redis }).layers).toEqual(['redis', 'files'])
    expect(loadConfig({ ...redis, ...php }).layers).toEqual(['redis', 'php', 'files'])
    expect(loadConfig({ ...redis, ...php, CONFIG_STORE_MODE: 'php_first' }).layers).toEqual(['php', 'redis', 'files'])
    expect(loadConfig({ EXTERNAL_CONFIG_BASE_URL: php.EXTERNAL_CONFIG_BASE_URL }).layers).toEqual(['files'])
    for (const on of ['1', 'true', 'TRUE', 'yes', 'y', 'on', 'On']) {
      expect(loadConfig({ ...redis, CONFIG_STORE_DISABLE_REDIS: on }).layers).toEqual(['files'])
    }
    for (const off of ['0', 'false', 'no', 'off']) {
      expect(loadConfig({ ...redis, CONFIG_STORE_DISABLE_REDIS: off }).layers).toEqual(['redis', 'files'])
    }
  })

  it.each([
    ['PORT', 'abc'],
    ['PORT', '70000'],
    ['CONFIG_STORE_MODE', 'files_first'],
    ['REDIS_URL', 'http://127.0.0.1:6379'],
    ['CONFIG_CACHE_TTL_MS', '-1'],
    ['CONFIG_CACHE_TTL_MS', '1.5'],
    ['LOG_LEVEL', 'loud'],
    ['CONFIG_STORE_DISABLE_REDIS', 'maybe'],
    ['CONFIG_STORE_UNKNOWN_KEYS', 'deny'],
    ['EXTERNAL_CONFIG_BASE_URL', 'legacy.example.com'],
    ['CONFIG_MAX_BYTES', '0'],
    ['PHP_TIMEOUT_MS', 'fast'],
  ])('%s=%s stops the start with one line naming the variable', (name, value) => {
    expect(() => loadConfig({ [name]: value })).toThrow(ConfigError)
    try {
      loadConfig({ [name]: value })
    } catch (err) {
      expect((err as Error).message).toMatch(
        new RegExp(`^${name}: .*\\(got "${value.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}"\\)$`),
      )
      expect((err as Error).message).not.toContain('\n')
    }
  })

  it('Redis is one of REDIS_URL or REDIS_SENTINELS (with its master group), and says which variable is wrong', () => {
    const sentinel = { REDIS_SENTINELS: 'a.example:26379,10.0.0.2:26380', REDIS_SENTINEL_NAME: 'configstore' }
    const config = loadConfig(sentinel)
    expect(config.sentinels).toEqual([
      { host: 'a.example', port: 26379 },
      { host: '10.0.0.2', port: 26380 },
    ])
    expect(config.layers).toEqual(['redis', 'files'])
    expect(loadConfig({ REDIS_URL: 'redis://127.0.0.1:6379' }).sentinels).toBeUndefined()
    expect(() => loadConfig({ ...sentinel, REDIS_URL: 'redis://127.0.0.1:6379' })).toThrow(
      /^REDIS_URL and REDIS_SENTINELS: set one, not both/,
    )
    expect(() => loadConfig({ REDIS_SENTINELS: 'a:26379' })).toThrow(/^REDIS_SENTINELS needs REDIS_SENTINEL_NAME/)
    expect(() => loadConfig({ REDIS_SENTINEL_NAME: 'x' })).toThrow(/^REDIS_SENTINEL_NAME is for Redis under Sentinel/)
    // A cluster: its nodes, with the password and TLS of REDIS_PASSWORD and REDIS_TLS, and nothing of Sentinel's.
    const cluster = loadConfig({ REDIS_CLUSTER_NODES: '10.0.0.1:7000,10.0.0.2:7001', REDIS_PASSWORD: 'p' })
    expect(cluster.clusterNodes).toEqual([
      { host: '10.0.0.1', port: 7000 },
      { host: '10.0.0.2', port: 7001 },
    ])
    expect(cluster.layers).toEqual(['redis', 'files'])
    expect(() => loadConfig({ REDIS_CLUSTER_NODES: 'a:7000', REDIS_URL: 'redis://h:1' })).toThrow(
      /^REDIS_URL and REDIS_CLUSTER_NODES: set one, not both/,
    )
    expect(() => loadConfig({ ...sentinel, REDIS_URL: 'redis://h:1', REDIS_CLUSTER_NODES: 'a:7000' })).toThrow(
      /^REDIS_URL and REDIS_SENTINELS and REDIS_CLUSTER_NODES: set one, not all three/,
    )
    expect(() => loadConfig({ REDIS_CLUSTER_NODES: 'a:7000', REDIS_SENTINEL_NAME: 'x' })).toThrow(
      /^REDIS_SENTINEL_NAME is for Redis under Sentinel: set REDIS_SENTINELS too/,
    )
    expect(() => loadConfig({ REDIS_CLUSTER_NODES: 'a:70000' })).toThrow(
      /^REDIS_CLUSTER_NODES: a:70000: the port must be 1-65535/,
    )
    expect(() => loadConfig({ REDIS_CLUSTER_NODES: 'a' })).toThrow(/^REDIS_CLUSTER_NODES: /)
    // Replica reads need a topology that names the replicas.
    expect(loadConfig({ ...sentinel, REDIS_READ_FROM: 'replica' }).REDIS_READ_FROM).toBe('replica')
    expect(() => loadConfig({ REDIS_URL: 'redis://h:1', REDIS_READ_FROM: 'replica' })).toThrow(
      /^REDIS_READ_FROM=replica needs REDIS_SENTINELS or REDIS_CLUSTER_NODES/,
    )
    expect(() => loadConfig({ ...sentinel, REDIS_READ_FROM: 'slave' })).toThrow(/^REDIS_READ_FROM: /)
    expect(() => loadConfig({ REDIS_URL: 'redis://h:1', REDIS_PASSWORD: 'p' })).toThrow(/^REDIS_PASSWORD is for/)
    for (const bad of ['a', 'a:', ':26379', 'a:26379,', 'a:26379 b:1', 'a:123456'])
      expect(() => loadConfig({ ...sentinel, REDIS_SENTINELS: bad }), bad).toThrow(/^REDIS_SENTINELS: /)
    expect(() => loadConfig({ ...sentinel, REDIS_SENTINELS: 'a:0' })).toThrow(/port must be 1-65535/)
    // A password is described by its length, never echoed.
    expect(() => loadConfig({ ...sentinel, REDIS_SENTINEL_PASSWORD: '' })).toThrow(
      /^REDIS_SENTINEL_PASSWORD: .*\(got 0 characters\)$/,
    )
  })

  it('refuses JWT_SECRET together with JWT_PUBLIC_KEY', () => {
    expect(() =>
      loadConfig({
        JWT_SECRET: 'x'.repeat(32),
        JWT_PUBLIC_KEY: '-----BEGIN PUBLIC KEY-----\\nabc\\n-----END PUBLIC KEY-----',
      }),
    ).toThrow(/set one, not both/)
  })

  it('reads .env from the working directory; the real environment wins; empty means unset', () => {
    const dir = tempDir('env')
    writeFileSync(join(dir, '.env'), 'PORT=9090\nLOG_LEVEL=debug\nCONFIG_FILES_DIR=/srv/config\nUNRELATED=1\n')
    const env = readEnvironment({ LOG_LEVEL: 'warn', CONFIG_STORE_MODE: '' }, dir)
    expect(env.values).toEqual({ PORT: '9090', LOG_LEVEL: 'warn', CONFIG_FILES_DIR: '/srv/config' })
    expect([...env.fromFile].sort()).toEqual(['CONFIG_FILES_DIR', 'PORT'])
    expect(readEnvironment({}, tempDir('no-env'))).toEqual({ values: {}, fromFile: new Set(), warnings: [] })
  })

  it('a variable of its families the service does not know is warned about, with the closest known name', () => {
    const dir = tempDir('env')
    writeFileSync(join(dir, '.env'), 'CONFIG_CACHE_TTL=5\n')
    const { warnings } = readEnvironment({ REDIS_URI: 'redis://x', JWT_SECRETS: 'x', AUTH_TOKEN: '[]', HOME: '/' }, dir)
    expect(warnings.sort()).toEqual([
      'AUTH_TOKEN is not a variable config-store knows; did you mean AUTH_TOKENS?',
      'CONFIG_CACHE_TTL (in .env) is not a variable config-store knows; did you mean CONFIG_CACHE_TTL_MS?',
      'JWT_SECRETS is not a variable config-store knows; did you mean JWT_SECRET?',
      'REDIS_URI is not a variable config-store knows; did you mean REDIS_URL?',
    ])
  })

  it("the variables the project's own files use (compose, CI) are known, not warned about", () => {
    const files = ['docker-compose.yml', 'Dockerfile', '.ci/run', 'bin/healthcheck'].map((f) =>
      readFileSync(join(ROOT, f), 'utf8'),
    )
    const used = new Set(
      files.flatMap((t) => [...t.matchAll(/\$\{?((?:CONFIG_|REDIS_|JWT_|AUTH_|METRICS_)\w*)/g)].map((m) => m[1])),
    )
    expect(used).toContain('CONFIG_STORE_PUBLISH')
    const env = Object.fromEntries([...used].map((name) => [name as string, 'x']))
    expect(readEnvironment(env, tempDir('no-env')).warnings).toEqual([])
  })

  it('a CONFIG_API_TOKEN that cannot be sent as a header is a start-up error, never echoed', () => {
    for (const bad of ['…', 'abc\ndef', ' padded ', 'tok€n']) {
      expect(() => loadConfig({ CONFIG_API_TOKEN: bad })).toThrow(
        `CONFIG_API_TOKEN: must be printable ASCII without spaces at either end, since it is sent as an HTTP header (Authorization: Bearer …) (got ${bad.length} characters)`,
      )
    }
    expect(loadConfig({ CONFIG_API_TOKEN: 's3cr3t-T0ken_with.some~chars' }).CONFIG_API_TOKEN).toBe(
      's3cr3t-T0ken_with.some~chars',
    )
  })

  it('a password in a URL is never echoed, however malformed the URL', () => {
    const secret = 'Sup3rSecretRedisPw'
    for (const [name, value, shown] of [
      ['REDIS_URL', `rediss//:${secret}@redis.internal:6380`, 'rediss//***@redis.internal:6380'],
      ['REDIS_URL', `http://user:${secret}@redis.internal`, 'http://***@redis.internal'],
      ['EXTERNAL_CONFIG_BASE_URL', `ftp://ops:${secret}@legacy.internal/`, 'ftp://***@legacy.internal/'],
      ['REDIS_SENTINELS', `ops:${secret}@s1:26379`, '***@s1:26379'],
    ]) {
      let message = ''
      try {
        loadConfig({ [name as string]: value as string })
      } catch (err) {
        message = (err as Error).message
      }
      expect(message, name).toContain(`(got "${shown}")`)
      expect(message).not.toContain(secret)
    }
  })

  it('an error says when the value came from .env', () => {
    const dir = tempDir('env')
    writeFileSync(join(dir, '.env'), 'PORT=eighty\n')
    expect(() => configFrom(readEnvironment({}, dir))).toThrow(/^PORT \(from \.env\): .*\(got "eighty"\)$/)
  })

  it('a secret is never echoed: a bad JWT_SECRET is described by its length', () => {
    const secret = 'short-but-secret'
    expect(() => loadConfig({ JWT_SECRET: secret })).toThrow(/^JWT_SECRET: .*\(got 16 characters\)$/)
    try {
      loadConfig({ JWT_SECRET: secret })
    } catch (err) {
      expect((err as Error).message).not.toContain(secret)
    }
  })

  it('an enumeration lists its allowed values', () => {
    expect(() => loadConfig({ CONFIG_STORE_MODE: 'files_first' })).toThrow(
      'CONFIG_STORE_MODE: must be one of redis_first, php_first (got "files_first")',
    )
    expect(() => loadConfig({ LOG_LEVEL: 'loud' })).toThrow(
      /must be one of fatal, error, warn, info, debug, trace, silent/,
    )
  })
})

describe('AUTH_TOKENS from .env', () => {
  it('an unusable value says it came from .env', async () => {
    const { loadStaticTokens } = await import('../src/http/auth.js')
    const dir = tempDir('env')
    writeFileSync(join(dir, '.env'), 'AUTH_TOKENS=not-json\n')
    expect(() => loadStaticTokens(configFrom(readEnvironment({}, dir)))).toThrow(
      'AUTH_TOKENS (from .env): not valid JSON',
    )
  })
})
