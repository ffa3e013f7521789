// The environment (docs/operations.md "The environment"): one TypeBox schema, read and checked once at start-up. A bad value
// stops the start with one line naming the variable. `.env` in the working directory is read when present; the real
// environment wins over it.
import { Resolver } from 'node:dns'
import { existsSync, readFileSync } from 'node:fs'
import { isIP } from 'node:net'
import { join, resolve } from 'node:path'
import { parseEnv } from 'node:util'
import { type Static, Type } from 'typebox'
import { Compile } from 'typebox/compile'
import { Value } from 'typebox/value'
import type { LayerName } from '../stores/layer.js'
import { closest } from './did-you-mean.js'
import { ConfigError } from './errors.js'
import { DEFAULT_MAX_NODES } from './store/json-limits.js'

const Flag = Type.String({
  pattern: '^(?:[01]|[Tt]rue|TRUE|[Ff]alse|FALSE|[Yy]es|YES|[Nn]o|NO|[YyNn]|[Oo]n|ON|[Oo]ff|OFF)?$',
})
const Ms = (def: number, description: string) => Type.Integer({ minimum: 0, default: def, description })
const Text = Type.String({ minLength: 1 })

export const EnvSchema = Type.Object({
  HOST: Type.String({ default: '127.0.0.1', minLength: 1 }),
  PORT: Type.Integer({ minimum: 0, maximum: 65535, default: 8080 }),
  LOG_LEVEL: Type.Union(
    ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].map((l) => Type.Literal(l)),
    {
      default: 'info',
    },
  ),
  CONFIG_STORE_MODE: Type.Union([Type.Literal('redis_first'), Type.Literal('php_first')], { default: 'redis_first' }),
  REDIS_URL: Type.Optional(Type.String({ pattern: '^rediss?://' })),
  REDIS_SENTINELS: Type.Optional(
    Type.String({ pattern: '^[^,:\\s]+:\\d{1,5}(?:,[^,:\\s]+:\\d{1,5})*$', description: 'host:port,host:port,…' }),
  ),
  REDIS_CLUSTER_NODES: Type.Optional(
    Type.String({
      pattern: '^[^,:\\s]+:\\d{1,5}(?:,[^,:\\s]+:\\d{1,5})*$',
      description: 'host:port,… of some nodes of a Redis Cluster',
    }),
  ),
  REDIS_SENTINEL_NAME: Type.Optional(Text),
  REDIS_SENTINEL_PASSWORD: Type.Optional(Text),
  REDIS_PASSWORD: Type.Optional(Text),
  REDIS_TLS: Type.Optional(Flag),
  CONFIG_STORE_REDIS_PREFIX: Type.String({ default: 'r:ss:config:', minLength: 1 }),
  CONFIG_STORE_DISABLE_REDIS: Type.Optional(Flag),
  EXTERNAL_CONFIG_BASE_URL: Type.Optional(Type.String({ pattern: '^https?://[^/]' })),
  // Sent as `Authorization: Bearer <token>`: a value no header can carry (a placeholder's `…`, a line break) is a
  // start-up error, not a PHP layer reported unreachable. PHP trims the token it reads, so edges are never blank.
  CONFIG_API_TOKEN: Type.Optional(
    Type.String({
      pattern: '^[\\x21-\\x7e](?:[\\x20-\\x7e]*[\\x21-\\x7e])?$',
      errorMessage:
        'must be printable ASCII without spaces at either end, since it is sent as an HTTP header (Authorization: Bearer …)',
    }),
  ),
  CONFIG_FILES_DIR: Type.String({ default: './data', minLength: 1 }),
  MAGIC_LINK_TOKENS_FILE: Type.Optional(Text),
  CONFIG_LKG_DIR: Type.Optional(
    Type.String({ minLength: 1, description: 'the last-known-good snapshot (default: CONFIG_FILES_DIR/.lkg)' }),
  ),
  CONFIG_CACHE_TTL_MS: Ms(60_000, 'cache TTL; 0 turns the cache off'),
  CONFIG_CACHE_MAX_BYTES: Type.Integer({ minimum: 0, default: 64 * 1024 * 1024 }),
  CONFIG_MAX_BYTES: Type.Integer({ minimum: 1, default: 1_048_576 }),
  CONFIG_MAX_NODES: Type.Integer({
    minimum: 1,
    default: DEFAULT_MAX_NODES,
    description: 'most values (array items and object members) in one document',
  }),
  CONFIG_MAX_KEYS: Type.Integer({
    minimum: 1,
    default: 10_000,
    description: 'a write that would create more keys is refused',
  }),
  CONFIG_STORE_UNKNOWN_KEYS: Type.Union([Type.Literal('allow'), Type.Literal('reject')], { default: 'allow' }),
  CONFIG_WEBHOOK_URL_CHECK: Type.Union([Type.Literal('resolve'), Type.Literal('static')], {
    default: 'resolve',
    description:
      "resolve: a write of webhook_config's URL resolves its host and refuses one with no address or a private one (the legacy SSRF guard); static: only the checks that need no DNS",
  }),
  CONFIG_WEBHOOK_DNS_TIMEOUT_MS: Type.Integer({
    minimum: 1,
    maximum: 60_000,
    default: 2000,
    description: "how long a webhook host's resolution may take before the write is refused",
  }),
  CONFIG_WEBHOOK_DNS_SERVERS: Type.Optional(
    Type.String({
      pattern: '^[0-9a-fA-F.:\\[\\]]+(?:,[0-9a-fA-F.:\\[\\]]+)*$',
      errorMessage: 'must be DNS server addresses, ip or ip:port ([ipv6]:port), comma-separated',
    }),
  ),
  CONFIG_SCHEMAS_DIR: Type.Optional(Text),
  AUTH_TOKENS: Type.Optional(Text),
  AUTH_TOKENS_FILE: Type.Optional(Text),
  JWT_SECRET: Type.Optional(Type.String({ minLength: 32, description: 'HS256 secret, at least 32 characters' })),
  JWT_PUBLIC_KEY: Type.Optional(Type.String({ pattern: '-----BEGIN ' })),
  JWT_ISSUER: Type.Optional(Text),
  JWT_AUDIENCE: Type.Optional(Text),
  JWT_MAX_AGE: Type.Optional(
    Type.String({
      pattern: '^[1-9][0-9]*(s|m|h|d)?$',
      description: 'oldest JWT accepted, by its iat: 900, 15m, 12h, 7d',
    }),
  ),
  AUTH_FAILURES_MAX: Type.Integer({
    minimum: 1,
    default: 20,
    description: 'failed authentications per client address',
  }),
  AUTH_FAILURES_WINDOW_MS: Type.Integer({ minimum: 1000, default: 60_000 }),
  TRUSTED_PROXIES: Type.Optional(
    Type.String({
      pattern: '^[^,\\s]+(?:,[^,\\s]+)*$',
      description:
        'addresses or CIDRs (or loopback, linklocal, uniquelocal) of the reverse proxies whose X-Forwarded-For names the client',
    }),
  ),
  REQUEST_TIMEOUT_MS: Type.Integer({
    minimum: 1000,
    default: 30_000,
    description: 'a request must arrive whole within this',
  }),
  MAX_CONNECTIONS: Type.Integer({ minimum: 1, default: 1024, description: 'open client connections at once' }),
  REDIS_CONNECT_TIMEOUT_MS: Ms(1000, 'Redis connect timeout'),
  REDIS_COMMAND_TIMEOUT_MS: Ms(500, 'Redis command timeout'),
  REDIS_READ_FROM: Type.Union([Type.Literal('master'), Type.Literal('replica')], {
    default: 'master',
    description: 'replica: while the master cannot be read, read a replica (answers marked stale)',
  }),
  REDIS_WRITE_REPLICAS: Type.Integer({
    minimum: 0,
    maximum: 100,
    default: 0,
    description:
      'fewest replicas that must hold a write before it is acknowledged: every replica of the master is waited for (WAIT, with a failover fence)',
  }),
  REDIS_WRITE_REPLICAS_TIMEOUT_MS: Ms(200, 'how long a write waits for REDIS_WRITE_REPLICAS replicas'),
  PHP_CONNECT_TIMEOUT_MS: Ms(1000, 'PHP API connect timeout'),
  PHP_TIMEOUT_MS: Ms(2000, 'PHP API response timeout (headers and body)'),
  PHP_CIRCUIT_RESET_MS: Ms(5000, 'how long the PHP API is skipped after 3 consecutive failures'),
  SHUTDOWN_TIMEOUT_MS: Ms(10_000, 'graceful shutdown deadline'),
  METRICS_ENABLED: Type.Optional(Flag),
  METRICS_PORT: Type.Optional(
    Type.Integer({ minimum: 1, maximum: 65535, description: 'also serve /metrics, without auth, on this port' }),
  ),
  CONFIG_HISTORY_MAX: Type.Integer({
    minimum: 0,
    maximum: 100_000,
    default: 100,
    description: 'revisions kept per key, with their documents; 0 turns history and the change feed off',
  }),
  CONFIG_FEED_MAX: Type.Integer({
    minimum: 10,
    default: 10_000,
    description: 'change events kept for resuming the feed (about: Redis trims with MAXLEN ~)',
  }),
  CONFIG_LONG_REQUESTS_PER_CLIENT: Type.Integer({
    minimum: 1,
    default: 16,
    description: 'change streams and blocking reads open at once per token, and per client address (then 429)',
  }),
  CONFIG_LONG_REQUESTS_MAX: Type.Optional(
    Type.Integer({
      minimum: 1,
      description: 'change streams and blocking reads open at once in all (default: half of MAX_CONNECTIONS)',
    }),
  ),
  CONFIG_FEED_BUFFER_BYTES: Type.Integer({
    minimum: 65_536,
    default: 1_048_576,
    description: 'most a change stream holds unsent for a reader that falls behind: then a reset event, and it ends',
  }),
  CONFIG_FEED_HEARTBEAT_MS: Type.Integer({
    minimum: 100,
    default: 15_000,
    description: 'a comment line on an idle change feed, so that proxies keep it open',
  }),
  MIGRATION_LOCK_TTL_MS: Type.Integer({
    minimum: 1000,
    default: 120_000,
    description: 'how long a crashed migration blocks others',
  }),
})

export type Env = Static<typeof EnvSchema>

const checkEnv = Compile(EnvSchema)

export function truthy(value: string | undefined): boolean {
  return /^(1|true|yes|y|on)$/i.test(value ?? '')
}

export function isLoopback(host: string): boolean {
  if (host === 'localhost') return true
  if (isIP(host) === 4) return host.startsWith('127.')
  return host === '::1'
}

/** The variables that hold credentials: their values never appear in a message. */
const SECRET_VARIABLES = new Set([
  'CONFIG_API_TOKEN',
  'AUTH_TOKENS',
  'JWT_SECRET',
  'REDIS_SENTINEL_PASSWORD',
  'REDIS_PASSWORD',
])
/** Names of these families that the service does not know are probably typos of ones it does. */
const OWN_FAMILIES = /^(CONFIG_|REDIS_|JWT_|AUTH_|METRICS_)/
const KNOWN = Object.keys(EnvSchema.properties)
/** Variables of those families that the project's own files read, not the service: docker-compose.yml publishes the
 * port at CONFIG_STORE_PUBLISH (from the same `.env`), and .ci/run caches Node under CONFIG_STORE_CI_CACHE. */
export const PROJECT_VARIABLES: ReadonlySet<string> = new Set(['CONFIG_STORE_PUBLISH', 'CONFIG_STORE_CI_CACHE'])

export interface Environment {
  /** The variables the service knows, set and not empty. */
  values: Record<string, string>
  /** Which of them came from `.env` (the real environment wins over it). */
  fromFile: ReadonlySet<string>
  /** One line for each variable of the service's families it does not know, with the closest name it does. */
  warnings: string[]
}

/** Reads `.env` from `cwd` (when present) under the real environment. */
export function readEnvironment(env: NodeJS.ProcessEnv = process.env, cwd = process.cwd()): Environment {
  const file = resolve(cwd, '.env')
  const fileValues = existsSync(file) ? parseEnv(readFileSync(file, 'utf8')) : {}
  const values: Record<string, string> = {}
  const fromFile = new Set<string>()
  const warnings: string[] = []
  for (const [name, value] of Object.entries({ ...fileValues, ...env })) {
    const known = Object.hasOwn(EnvSchema.properties, name)
    if (!known && OWN_FAMILIES.test(name) && !PROJECT_VARIABLES.has(name)) {
      const where = Object.hasOwn(env, name) ? '' : ' (in .env)'
      warnings.push(`${name}${where} is not a variable config-store knows; did you mean ${closest(name, KNOWN)}?`)
    }
    // An empty variable means "not set", as in most shells' `VAR=` lines.
    if (!known || value === undefined || value === '') continue
    values[name] = value
    if (!Object.hasOwn(env, name) || env[name] === '') fromFile.add(name)
  }
  return { values, fromFile, warnings }
}

/** `value` with what could be credentials before an `@` hidden (`rediss://:pw@host` → `rediss://***@host`): a URL
 * may carry a password, however malformed the rest of it is. */
export function withoutCredentials(value: string): string {
  const at = value.lastIndexOf('@')
  if (at < 0) return value
  const scheme = /^[A-Za-z][A-Za-z0-9+.-]*:?\/\//.exec(value)?.[0] ?? ''
  return `${scheme.length < at ? scheme : ''}***${value.slice(at)}`
}

/** What a refused value was, for the message: a secret only by its length, and never a URL's password. */
function described(name: string, value: string): string {
  return SECRET_VARIABLES.has(name)
    ? `got ${value.length} characters`
    : `got ${JSON.stringify(withoutCredentials(value))}`
}

/** The schema's own `errorMessage`, the allowed values of an enumeration (a union of literals), or the message. */
function problem(name: string, message: string): string {
  const schema = (
    EnvSchema.properties as Record<string, { anyOf?: Array<{ const?: unknown }>; errorMessage?: string }>
  )[name]
  if (schema?.errorMessage !== undefined) return schema.errorMessage
  const options = schema?.anyOf
  if (options?.every((o) => typeof o.const === 'string'))
    return `must be one of ${options.map((o) => o.const).join(', ')}`
  return message
}

/** Whole numbers only: "1.5" or "2e3" stay strings and fail the schema instead of being rounded. */
function convert(raw: Record<string, string | undefined>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...raw }
  for (const [name, schema] of Object.entries(EnvSchema.properties)) {
    const value = raw[name]
    if ((schema as { type?: string }).type === 'integer' && value !== undefined && /^-?\d+$/.test(value))
      out[name] = Number(value)
  }
  return out
}

/** The configuration from an environment read by readEnvironment (or given whole, by tests and tools). */
export function loadConfig(raw: Record<string, string | undefined>, fromFile: ReadonlySet<string> = new Set()) {
  const env = Value.Default(EnvSchema, convert(raw)) as Record<string, unknown>
  const [error] = checkEnv.Errors(env)
  if (error !== undefined) {
    const name = error.instancePath.slice(1) || String(Object.keys(env)[0])
    const value = raw[name]
    const where = fromFile.has(name) ? ' (from .env)' : ''
    const got = value === undefined ? '' : ` (${described(name, value)})`
    throw new ConfigError(`${name}${where}: ${problem(name, error.message)}${got}`)
  }
  const e = env as Env
  const { sentinels, clusterNodes } = redisTopology(e)
  const redisEnabled =
    (e.REDIS_URL !== undefined || sentinels !== undefined || clusterNodes !== undefined) &&
    !truthy(e.CONFIG_STORE_DISABLE_REDIS)
  writeReplicas(e)
  const phpEnabled = e.EXTERNAL_CONFIG_BASE_URL !== undefined && e.CONFIG_API_TOKEN !== undefined
  const order: LayerName[] = e.CONFIG_STORE_MODE === 'php_first' ? ['php', 'redis', 'files'] : ['redis', 'php', 'files']
  const layers = order.filter((l) => (l === 'redis' ? redisEnabled : l === 'php' ? phpEnabled : true))
  const jwtKey = e.JWT_PUBLIC_KEY?.replace(/\\n/g, '\n')
  const jwtMaxAgeSec = e.JWT_MAX_AGE === undefined ? undefined : durationSeconds(e.JWT_MAX_AGE)
  if (e.JWT_SECRET && jwtKey) throw new ConfigError('JWT_SECRET and JWT_PUBLIC_KEY: set one, not both')
  const lkgDir = e.CONFIG_LKG_DIR ?? join(e.CONFIG_FILES_DIR, '.lkg')
  const metrics = e.METRICS_ENABLED === undefined || truthy(e.METRICS_ENABLED)
  if (e.CONFIG_WEBHOOK_DNS_SERVERS !== undefined) dnsServers(e.CONFIG_WEBHOOK_DNS_SERVERS)
  const trustedProxies = e.TRUSTED_PROXIES === undefined ? undefined : proxies(e.TRUSTED_PROXIES)
  const longRequestsMax = e.CONFIG_LONG_REQUESTS_MAX ?? Math.floor(e.MAX_CONNECTIONS / 2)
  if (longRequestsMax >= e.MAX_CONNECTIONS)
    throw new ConfigError(
      `CONFIG_LONG_REQUESTS_MAX: must be below MAX_CONNECTIONS (${e.MAX_CONNECTIONS}), so that health checks and other callers keep room (got ${longRequestsMax})`,
    )
  return {
    ...e,
    layers,
    jwtPublicKey: jwtKey,
    jwtMaxAgeSec,
    lkgDir,
    metrics,
    fromFile,
    sentinels,
    clusterNodes,
    trustedProxies,
    longRequestsMax,
  }
}

/** REDIS_WRITE_REPLICAS needs a Redis, and a WAIT that ends before the command timeout would end it. */
function writeReplicas(e: Env): void {
  if (e.REDIS_WRITE_REPLICAS === 0) return
  if (e.REDIS_URL === undefined && e.REDIS_SENTINELS === undefined && e.REDIS_CLUSTER_NODES === undefined)
    throw new ConfigError(
      'REDIS_WRITE_REPLICAS is for writes to Redis: set REDIS_URL, REDIS_SENTINELS or REDIS_CLUSTER_NODES too',
    )
  const timeout = e.REDIS_WRITE_REPLICAS_TIMEOUT_MS
  if (timeout === 0 || (e.REDIS_COMMAND_TIMEOUT_MS > 0 && timeout >= e.REDIS_COMMAND_TIMEOUT_MS))
    throw new ConfigError(
      `REDIS_WRITE_REPLICAS_TIMEOUT_MS: must be at least 1 and less than REDIS_COMMAND_TIMEOUT_MS (${e.REDIS_COMMAND_TIMEOUT_MS}), so that a write's wait for its replicas ends before the command times out (got ${timeout})`,
    )
}

const PROXY_NAMES = new Set(['loopback', 'linklocal', 'uniquelocal'])

/** TRUSTED_PROXIES as Fastify's trustProxy takes them, or a start-up error naming the entry it refuses. */
function proxies(list: string): string[] {
  const entries = list.split(',')
  for (const entry of entries) {
    const [ip = '', bits, extra] = entry.split('/')
    const family = isIP(ip)
    const prefixOk = bits === undefined || (/^\d{1,3}$/.test(bits) && Number(bits) <= (family === 4 ? 32 : 128))
    if (!PROXY_NAMES.has(entry) && (family === 0 || !prefixOk || extra !== undefined))
      throw new ConfigError(
        `TRUSTED_PROXIES: ${JSON.stringify(entry)} is not an address, a CIDR, loopback, linklocal or uniquelocal (got "${list}")`,
      )
  }
  return entries
}

/** CONFIG_WEBHOOK_DNS_SERVERS as node:dns takes them, or a start-up error naming the address it refuses. */
function dnsServers(list: string): void {
  try {
    new Resolver().setServers(list.split(','))
  } catch (err) {
    throw new ConfigError(`CONFIG_WEBHOOK_DNS_SERVERS: ${(err as Error).message} (got "${list}")`)
  }
}

type Address = { host: string; port: number }

/** `host:port,…` (the schema has checked the form) → addresses. */
function addresses(name: string, list: string): Address[] {
  return list.split(',').map((address) => {
    const at = address.lastIndexOf(':')
    const port = Number(address.slice(at + 1))
    if (port < 1 || port > 65535)
      throw new ConfigError(
        `${name}: ${withoutCredentials(address)}: the port must be 1-65535 (got "${withoutCredentials(list)}")`,
      )
    return { host: address.slice(0, at), port }
  })
}

/** How Redis is reached: one of REDIS_URL, REDIS_SENTINELS (with its master group) or REDIS_CLUSTER_NODES, each with
 * only the settings it uses. The Sentinels' and the cluster's addresses, for those two. */
function redisTopology(e: Env): { sentinels?: Address[]; clusterNodes?: Address[] } {
  const ways = (['REDIS_URL', 'REDIS_SENTINELS', 'REDIS_CLUSTER_NODES'] as const).filter((n) => e[n] !== undefined)
  if (ways.length > 1)
    throw new ConfigError(
      `${ways.join(' and ')}: set one, not ${ways.length === 2 ? 'both' : 'all three'} (a plain Redis, the Sentinels that name its master, or the nodes of a cluster)`,
    )
  const stray = (names: readonly (keyof Env)[], what: string, set: string) => {
    const name = names.find((n) => e[n] !== undefined)
    if (name !== undefined) throw new ConfigError(`${name} is for ${what}: set ${set} too`)
  }
  if (e.REDIS_SENTINELS === undefined)
    stray(['REDIS_SENTINEL_NAME', 'REDIS_SENTINEL_PASSWORD'], 'Redis under Sentinel', 'REDIS_SENTINELS')
  if (e.REDIS_SENTINELS === undefined && e.REDIS_CLUSTER_NODES === undefined)
    stray(
      ['REDIS_PASSWORD', 'REDIS_TLS'],
      'Redis under Sentinel or a Redis Cluster',
      'REDIS_SENTINELS or REDIS_CLUSTER_NODES (with REDIS_URL, put the password and rediss:// in the URL)',
    )
  if (e.REDIS_READ_FROM === 'replica' && e.REDIS_SENTINELS === undefined && e.REDIS_CLUSTER_NODES === undefined)
    throw new ConfigError(
      'REDIS_READ_FROM=replica needs REDIS_SENTINELS or REDIS_CLUSTER_NODES: they name the replicas (a REDIS_URL names one server)',
    )
  if (e.REDIS_CLUSTER_NODES !== undefined)
    return { clusterNodes: addresses('REDIS_CLUSTER_NODES', e.REDIS_CLUSTER_NODES) }
  if (e.REDIS_SENTINELS === undefined) return {}
  if (e.REDIS_SENTINEL_NAME === undefined)
    throw new ConfigError(
      'REDIS_SENTINELS needs REDIS_SENTINEL_NAME: the name of the master group the Sentinels monitor',
    )
  return { sentinels: addresses('REDIS_SENTINELS', e.REDIS_SENTINELS) }
}

export type AppConfig = ReturnType<typeof loadConfig>

export const configFrom = (environment: Environment): AppConfig => loadConfig(environment.values, environment.fromFile)

const UNIT_SECONDS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86_400 }

/** `900`, `900s`, `15m`, `12h`, `7d` → seconds (the pattern in EnvSchema has checked the form). */
function durationSeconds(text: string): number {
  const unit = text.at(-1) as string
  return Object.hasOwn(UNIT_SECONDS, unit) ? Number(text.slice(0, -1)) * (UNIT_SECONDS[unit] as number) : Number(text)
}
