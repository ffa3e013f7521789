// Inbound auth (docs/api.md "Auth"): static bearer tokens (plain or `sha256:<hex>`, compared in constant time) and JWTs
// (@fastify/jwt). Scopes nest: config:read ⊂ config:write ⊂ config:admin. A route names the scope it needs in its
// `config.scope`; handlers check per-key limits (`keys` claim, secret keys) with `request.authorizeKey`.

import { createHash, randomBytes, timingSafeEqual } from 'node:crypto'
import { readFileSync } from 'node:fs'
import rateLimit from '@fastify/rate-limit'
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import { type Static, Type } from 'typebox'
import { Compile } from 'typebox/compile'
import { type AppConfig, isLoopback } from '../config.js'
import { AppError, ConfigError } from '../errors.js'

export const SCOPES = ['config:read', 'config:write', 'config:admin'] as const
export type Scope = (typeof SCOPES)[number]
/** Reading /metrics (Prometheus sends a bearer token); outside the nesting of the config scopes, and implied by
 * config:admin. */
export const METRICS_SCOPE = 'metrics:read'
// A Map: a JWT scope named `constructor` must not find Object.prototype's members (it would have given NaN, and
// NaN compares false against every level, so the token passed every check).
const LEVEL: ReadonlyMap<string, number> = new Map([
  ['config:read', 1],
  ['config:write', 2],
  ['config:admin', 3],
])
const levelNeeded = (scope: Scope) => LEVEL.get(scope) as number

export const StaticTokens = Type.Array(
  Type.Object({
    name: Type.String({ minLength: 1 }),
    token: Type.String({ minLength: 16, description: 'plain text, or sha256:<64 hex digits>' }),
    scopes: Type.Array(Type.Union([...SCOPES, METRICS_SCOPE].map((s) => Type.Literal(s))), { minItems: 1 }),
    keys: Type.Optional(Type.Array(Type.String({ pattern: '^[a-z0-9_-]*\\*?$' }))),
  }),
)
type StaticToken = Static<typeof StaticTokens>[number]

export interface Principal {
  name: string
  level: number
  /** Key names or `prefix*` patterns the token may touch; undefined = every key. */
  keys?: string[] | undefined
  /** May read /metrics. */
  metrics: boolean
  /** Epoch ms when the token stops being valid (a JWT's `exp`, or its `iat` plus JWT_MAX_AGE); none for a static
   * token. A stream or a blocking read it opened ends then. */
  expiresAt?: number
}

/** How long, from now, a request may go on answering the caller: until its token expires. */
export const validForMs = (principal: Principal | null): number =>
  principal?.expiresAt === undefined ? Number.POSITIVE_INFINITY : Math.max(0, principal.expiresAt - Date.now())

interface TokenEntry {
  principal: Principal
  digest: Buffer
}

const sha256 = (text: string) => createHash('sha256').update(text).digest()
const levelOf = (scopes: readonly string[]) => Math.max(0, ...scopes.map((s) => LEVEL.get(s) ?? 0))
const mayReadMetrics = (scopes: readonly string[]) => scopes.includes(METRICS_SCOPE) || levelOf(scopes) >= 3

/** The static tokens from AUTH_TOKENS / AUTH_TOKENS_FILE; with no auth configured at all, one generated admin token
 * when bound to loopback, and a start-up error otherwise (never runs open). */
export function loadStaticTokens(config: AppConfig): { entries: TokenEntry[]; generated?: string } {
  let list: StaticToken[] = []
  const variable = config.AUTH_TOKENS !== undefined ? 'AUTH_TOKENS' : 'AUTH_TOKENS_FILE'
  const source = config.fromFile.has(variable) ? `${variable} (from .env)` : variable
  let text = config.AUTH_TOKENS
  if (text === undefined && config.AUTH_TOKENS_FILE !== undefined) {
    try {
      text = readFileSync(config.AUTH_TOKENS_FILE, 'utf8')
    } catch (err) {
      throw new ConfigError(`AUTH_TOKENS_FILE: cannot read ${config.AUTH_TOKENS_FILE} (${(err as Error).message})`)
    }
  }
  if (text !== undefined) {
    let parsed: unknown
    try {
      parsed = JSON.parse(text)
    } catch {
      throw new ConfigError(`${source}: not valid JSON`)
    }
    const [error] = Compile(StaticTokens).Errors(parsed)
    if (error !== undefined) throw new ConfigError(`${source}: ${error.instancePath || '/'} ${error.message}`)
    list = parsed as StaticToken[]
  }
  const entries = list.map((t, i) => {
    const hashed = /^sha256:([0-9a-f]{64})$/i.exec(t.token)
    if (t.token.startsWith('sha256:') && !hashed)
      throw new ConfigError(`${source}: /${i}/token sha256: needs 64 hex digits`)
    return {
      principal: { name: t.name, level: levelOf(t.scopes), keys: t.keys, metrics: mayReadMetrics(t.scopes) },
      digest: hashed?.[1] ? Buffer.from(hashed[1], 'hex') : sha256(t.token),
    }
  })
  if (entries.length > 0 || config.JWT_SECRET || config.jwtPublicKey) return { entries }
  if (!isLoopback(config.HOST)) {
    throw new ConfigError(
      `HOST: ${config.HOST} is not loopback and no AUTH_TOKENS, AUTH_TOKENS_FILE, JWT_SECRET or JWT_PUBLIC_KEY is set; refusing to run without auth`,
    )
  }
  const generated = randomBytes(24).toString('base64url')
  const principal = { name: 'generated-admin', level: 3, metrics: true }
  return { entries: [{ principal, digest: sha256(generated) }], generated }
}

function matchStatic(entries: TokenEntry[], token: string): Principal | undefined {
  const digest = sha256(token)
  let found: Principal | undefined
  for (const e of entries) if (timingSafeEqual(digest, e.digest)) found = e.principal // no early exit
  return found
}

const JWT_SHAPE = /^[\w-]+\.[\w-]+\.[\w-]*$/
const JWT_RECHECK_MS = 60_000
/** How far in the future a JWT's `iat` may lie (clocks differ a little between machines). */
const JWT_CLOCK_SKEW_SEC = 60
const VERIFIED_MAX = 1000
const KEY_LIMIT = /^[a-z0-9_-]*\*?$/
const isStringArray = (v: unknown): v is string[] => Array.isArray(v) && v.every((x) => typeof x === 'string')

interface Verified {
  principal: Principal
  /** Epoch ms until which the token needs no new check (a JWT's `exp`, or at most a minute). */
  until: number
}

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Scope the route needs; routes without it need no auth. */
    scope?: Scope
    /** No scope needed, but a valid token, when one is sent, sets `request.principal` (/ready shows it more). */
    optionalAuth?: boolean
  }
  interface FastifyRequest {
    principal: Principal | null
    /** Throws FORBIDDEN unless the caller may touch `key` at `scope` (keys claim; a secret key, or another name of
     * one, needs admin). */
    authorizeKey(key: string, scope: Scope): void
  }
}

/** Who a request's changes are recorded as: the static token's name, the JWT's `sub` (`anonymous` without auth). */
export const actorOf = (request: FastifyRequest): string => request.principal?.name ?? 'anonymous'

export function isAdmin(principal: Principal | null): boolean {
  return principal !== null && principal.level >= levelNeeded('config:admin')
}

/** The JWT's claims as a principal, or why they are refused. Restriction claims fail closed: a `keys` or `scope`
 * that is there but malformed is a 401, never "no restriction". */
export function principalOfClaims(
  claims: Record<string, unknown>,
  nowSec: number,
  maxAgeSec?: number,
): { principal: Principal; untilSec: number } | string {
  const { exp, iat, scope, scopes, keys, sub } = claims
  if (typeof exp !== 'number' || !Number.isFinite(exp)) return 'the JWT has no exp claim'
  if (iat !== undefined && (typeof iat !== 'number' || !Number.isFinite(iat)))
    return 'the JWT iat claim is not a number'
  if (typeof iat === 'number' && iat > nowSec + JWT_CLOCK_SKEW_SEC) return 'the JWT was issued in the future'
  let untilSec = exp
  if (maxAgeSec !== undefined) {
    if (typeof iat !== 'number') return 'the JWT has no iat claim, and JWT_MAX_AGE needs one'
    if (nowSec - iat > maxAgeSec) return 'the JWT is older than JWT_MAX_AGE allows'
    untilSec = Math.min(untilSec, iat + maxAgeSec)
  }
  if (scope !== undefined && typeof scope !== 'string') return 'the JWT scope claim is not a string'
  if (scopes !== undefined && !isStringArray(scopes)) return 'the JWT scopes claim is not an array of strings'
  if (keys !== undefined && !(isStringArray(keys) && keys.every((k) => KEY_LIMIT.test(k))))
    return 'the JWT keys claim is not an array of key names'
  const granted = [...(typeof scope === 'string' ? scope.split(' ') : []), ...((scopes as string[] | undefined) ?? [])]
  return {
    principal: {
      name: typeof sub === 'string' ? sub : 'jwt',
      level: levelOf(granted),
      keys: keys as string[] | undefined,
      metrics: mayReadMetrics(granted),
      expiresAt: untilSec * 1000,
    },
    untilSec,
  }
}

export function allowsKey(principal: Principal, key: string): boolean {
  if (principal.keys === undefined) return true
  return principal.keys.some((p) => (p.endsWith('*') ? key.startsWith(p.slice(0, -1)) : key === p))
}

/** The token of an `Authorization: Bearer <token>` header (the scheme in any case), or undefined. */
export function bearerToken(header: string | undefined): string | undefined {
  if (header === undefined) return undefined
  if (header.startsWith('Bearer ') && header.indexOf(' ', 7) === -1) return header.slice(7) || undefined
  return /^Bearer\s+(\S+)\s*$/i.exec(header)?.[1]
}

/** A 401, with the reason /metrics counts it under. */
class AuthFailure extends AppError {
  constructor(
    message: string,
    readonly reason: 'missing_token' | 'invalid_token' | 'invalid_jwt' | 'jwt_claims',
  ) {
    super('UNAUTHORIZED', message)
  }
}

const authPlugin: FastifyPluginAsync<{ config: AppConfig; onGeneratedToken?: (token: string) => void }> = async (
  app,
  { config, onGeneratedToken },
) => {
  const { entries, generated } = loadStaticTokens(config)
  if (generated !== undefined) onGeneratedToken?.(generated)
  const jwtKey = config.JWT_SECRET ?? config.jwtPublicKey
  if (jwtKey !== undefined) {
    const { default: fastifyJwt } = await import('@fastify/jwt') // loaded only when configured (start-up time)
    await app.register(fastifyJwt, {
      secret: config.JWT_SECRET ?? { public: jwtKey },
      verify: {
        algorithms: config.JWT_SECRET ? ['HS256'] : ['RS256', 'ES256'],
        ...(config.JWT_ISSUER ? { allowedIss: config.JWT_ISSUER } : {}),
        ...(config.JWT_AUDIENCE ? { allowedAud: config.JWT_AUDIENCE } : {}),
        cache: 1000,
      },
    })
  }

  function verifyJwt(token: string): Verified | undefined {
    if (jwtKey === undefined || !JWT_SHAPE.test(token)) return undefined
    let claims: Record<string, unknown>
    try {
      claims = app.jwt.verify<Record<string, unknown>>(token)
    } catch {
      throw new AuthFailure('the bearer token is not a valid, unexpired JWT', 'invalid_jwt')
    }
    const found = principalOfClaims(claims, Date.now() / 1000, config.jwtMaxAgeSec)
    if (typeof found === 'string') throw new AuthFailure(found, 'jwt_claims')
    return { principal: found.principal, until: Math.min(found.untilSec * 1000, Date.now() + JWT_RECHECK_MS) }
  }

  // Auth work done once per token: a token is checked in full — JWT signature and claims, or a
  // constant-time comparison with every static token — the first time it is seen; later requests with the very
  // same token find the result here, until it expires. Only tokens that passed are kept, and only so many.
  const verified = new Map<string, Verified>()

  /** The principal of a bearer token, checked in full; throws UNAUTHORIZED. */
  function authenticate(token: string | undefined): Principal {
    if (!token) throw new AuthFailure('an Authorization: Bearer <token> header is required', 'missing_token')
    const found = verifyJwt(token) ?? matchStaticToken(token)
    if (found === undefined) throw new AuthFailure('the bearer token is not valid', 'invalid_token')
    if (verified.size >= VERIFIED_MAX) verified.clear()
    verified.set(token, found)
    return found.principal
  }

  function matchStaticToken(token: string): Verified | undefined {
    const principal = matchStatic(entries, token)
    return principal === undefined ? undefined : { principal, until: Number.POSITIVE_INFINITY }
  }

  // Failed authentication is throttled per client address (shared through Redis when it is configured, so every
  // instance counts the same failures). A token that already passed is never slowed; a client over the limit gets 429
  // for every token not seen before, including a right one, so guessing learns nothing while it lasts.
  await app.register(rateLimit, {
    global: false,
    skipOnError: true, // Redis down: count nothing rather than refuse everyone
    ...(app.redis ? { redis: app.redis, nameSpace: `${config.CONFIG_STORE_REDIS_PREFIX}:auth-failures:` } : {}),
  })
  const failures = app.createRateLimit({ max: config.AUTH_FAILURES_MAX, timeWindow: config.AUTH_FAILURES_WINDOW_MS })

  /** A token not in `verified`: refused while the address is over its failures, else checked and counted if bad. */
  async function authenticateUnknown(request: FastifyRequest, reply: FastifyReply, token: string | undefined) {
    const before = await failures(request, { increment: false })
    if (!before.isAllowed && before.remaining === 0) {
      reply.header('retry-after', String(Math.max(1, before.ttlInSeconds)))
      app.metrics.rateLimited.inc()
      throw new AppError('TOO_MANY_REQUESTS', 'too many failed authentications from this address; retry later')
    }
    try {
      return authenticate(token)
    } catch (err) {
      app.metrics.authFailures.inc({ reason: err instanceof AuthFailure ? err.reason : 'invalid_token' })
      await failures(request)
      throw err
    }
  }

  const scopeError = (p: Principal, scope: Scope) =>
    p.level < levelNeeded(scope) ? new AppError('FORBIDDEN', `this needs the ${scope} scope`) : undefined

  app.decorateRequest('principal', null)
  app.decorateRequest('authorizeKey', function (this: FastifyRequest, key: string, scope: Scope) {
    const p = this.principal
    const secret = app.store.validator.isSecret(key)
    if (p === null || p.level < levelNeeded(secret ? 'config:admin' : scope)) {
      throw new AppError(
        'FORBIDDEN',
        `${secret ? `${key} holds credentials: ` : ''}this needs the ${secret ? 'config:admin' : scope} scope`,
      )
    }
    const target = app.store.validator.aliasOf(key)
    if (!allowsKey(p, key) || (target !== undefined && !allowsKey(p, target)))
      throw new AppError('FORBIDDEN', `this token may not touch ${key}`)
  })

  /** The onRequest hook of a route needing `scope` (or, with `optionalAuth`, reading a token when one is sent). A
   * callback hook, not an async one: a token seen before costs no promise on the hot path. */
  function authHook(scope: Scope | undefined, optionalAuth: boolean) {
    return (request: FastifyRequest, reply: FastifyReply, done: (err?: Error) => void) => {
      securityHeaders(reply)
      if (scope === undefined && !(optionalAuth && request.headers.authorization)) return done()
      const token = bearerToken(request.headers.authorization)
      const known = token === undefined ? undefined : verified.get(token)
      if (known !== undefined && known.until > Date.now()) {
        request.principal = known.principal
        return done(scope === undefined ? undefined : scopeError(known.principal, scope))
      }
      authenticateUnknown(request, reply, token).then(
        (principal) => {
          request.principal = principal
          done(scope === undefined ? undefined : scopeError(principal, scope))
        },
        (err: AppError) => done(scope === undefined ? undefined : err), // optional auth: a bad token is anonymous
      )
    }
  }

  // What a route needs is read once, when it is registered, rather than from request.routeOptions on every request
  // (which builds an object each time): each route gets its own hook, with its needs bound.
  app.addHook('onRoute', (route) => {
    const hook = authHook(route.config?.scope, route.config?.optionalAuth === true)
    route.onRequest = route.onRequest === undefined ? [hook] : [hook, ...[route.onRequest].flat()]
  })
}

/** Config answers hold settings and credentials: never stored by a cache on the way, never sniffed as HTML. Every
 * route sets these (through its auth hook), and so does the answer for no route. */
export function securityHeaders(reply: FastifyReply): void {
  reply.header('cache-control', 'no-store').header('x-content-type-options', 'nosniff')
}

export default fp(authPlugin, { name: 'auth', fastify: '5.x', dependencies: ['store', 'metrics'] })
