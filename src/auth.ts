// Inbound auth (api.md "Auth"): static bearer tokens (plain or `sha256:<hex>`, compared in constant time) and JWTs
// (@fastify/jwt). Scopes nest: config:read ⊂ config:write ⊂ config:admin. A route names the scope it needs in its
// `config.scope`; handlers check per-key limits (`keys` claim, secret keys) with `request.authorizeKey`.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto'
import { readFileSync } from 'node:fs'
import type { FastifyPluginAsync, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import { type Static, Type } from 'typebox'
import { Compile } from 'typebox/compile'
import { type AppConfig, ConfigError, isLoopback } from './config.js'
import { AppError } from './errors.js'

export const SCOPES = ['config:read', 'config:write', 'config:admin'] as const
export type Scope = (typeof SCOPES)[number]
const LEVEL: Record<Scope, number> = { 'config:read': 1, 'config:write': 2, 'config:admin': 3 }

export const StaticTokens = Type.Array(
  Type.Object({
    name: Type.String({ minLength: 1 }),
    token: Type.String({ minLength: 16, description: 'plain text, or sha256:<64 hex digits>' }),
    scopes: Type.Array(Type.Union(SCOPES.map((s) => Type.Literal(s))), { minItems: 1 }),
    keys: Type.Optional(Type.Array(Type.String({ pattern: '^[a-z0-9_-]*\\*?$' }))),
  }),
)
type StaticToken = Static<typeof StaticTokens>[number]

export interface Principal {
  name: string
  level: number
  /** Key names or `prefix*` patterns the token may touch; undefined = every key. */
  keys?: string[] | undefined
}

interface TokenEntry {
  principal: Principal
  digest: Buffer
}

const sha256 = (text: string) => createHash('sha256').update(text).digest()
const levelOf = (scopes: readonly string[]) => Math.max(0, ...scopes.map((s) => LEVEL[s as Scope] ?? 0))

/** The static tokens from AUTH_TOKENS / AUTH_TOKENS_FILE; with no auth configured at all, one generated admin token
 * when bound to loopback, and a start-up error otherwise (never runs open). */
export function loadStaticTokens(config: AppConfig): { entries: TokenEntry[]; generated?: string } {
  let list: StaticToken[] = []
  const source = config.AUTH_TOKENS !== undefined ? 'AUTH_TOKENS' : 'AUTH_TOKENS_FILE'
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
      principal: { name: t.name, level: levelOf(t.scopes), keys: t.keys },
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
  return { entries: [{ principal: { name: 'generated-admin', level: 3 }, digest: sha256(generated) }], generated }
}

function matchStatic(entries: TokenEntry[], token: string): Principal | undefined {
  const digest = sha256(token)
  let found: Principal | undefined
  for (const e of entries) if (timingSafeEqual(digest, e.digest)) found = e.principal // no early exit
  return found
}

const JWT_SHAPE = /^[\w-]+\.[\w-]+\.[\w-]*$/
const JWT_RECHECK_MS = 60_000
const VERIFIED_MAX = 1000

interface Verified {
  principal: Principal
  /** Epoch ms until which the token needs no new check (a JWT's `exp`, or at most a minute). */
  until: number
}

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Scope the route needs; routes without it need no auth. */
    scope?: Scope
  }
  interface FastifyRequest {
    principal: Principal | null
    /** Throws FORBIDDEN unless the caller may touch `key` at `scope` (keys claim, secret keys need admin). */
    authorizeKey(key: string, scope: Scope, secret?: boolean): void
  }
}

export function isAdmin(principal: Principal | null): boolean {
  return principal !== null && principal.level >= LEVEL['config:admin']
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

const unauthorized = (message: string) => new AppError('UNAUTHORIZED', message)

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
      throw unauthorized('the bearer token is not a valid, unexpired JWT')
    }
    const scopes = typeof claims.scope === 'string' ? claims.scope.split(' ') : claims.scopes
    const keys = claims.keys
    const principal = {
      name: typeof claims.sub === 'string' ? claims.sub : 'jwt',
      level: Array.isArray(scopes) ? levelOf(scopes.map(String)) : 0,
      keys: Array.isArray(keys) ? keys.map(String) : undefined,
    }
    const maxUntil = Date.now() + JWT_RECHECK_MS
    return { principal, until: typeof claims.exp === 'number' ? Math.min(claims.exp * 1000, maxUntil) : maxUntil }
  }

  // Auth work done once per token (issue 4): a token is checked in full — JWT signature and claims, or a
  // constant-time comparison with every static token — the first time it is seen; later requests with the very
  // same token find the result here, until it expires. Only tokens that passed are kept, and only so many.
  const verified = new Map<string, Verified>()

  function authenticate(request: FastifyRequest): Principal {
    const token = bearerToken(request.headers.authorization)
    if (!token) throw unauthorized('an Authorization: Bearer <token> header is required')
    const known = verified.get(token)
    if (known !== undefined && known.until > Date.now()) return known.principal
    const found = verifyJwt(token) ?? matchStaticToken(token)
    if (found === undefined) throw unauthorized('the bearer token is not valid')
    if (verified.size >= VERIFIED_MAX) verified.clear()
    verified.set(token, found)
    return found.principal
  }

  function matchStaticToken(token: string): Verified | undefined {
    const principal = matchStatic(entries, token)
    return principal === undefined ? undefined : { principal, until: Number.POSITIVE_INFINITY }
  }

  app.decorateRequest('principal', null)
  app.decorateRequest('authorizeKey', function (this: FastifyRequest, key: string, scope: Scope, secret = false) {
    const p = this.principal
    const need = secret ? LEVEL['config:admin'] : LEVEL[scope]
    if (p === null || p.level < need) {
      throw new AppError(
        'FORBIDDEN',
        `${secret ? `${key} holds credentials: ` : ''}this needs the ${secret ? 'config:admin' : scope} scope`,
      )
    }
    if (!allowsKey(p, key)) throw new AppError('FORBIDDEN', `this token may not touch ${key}`)
  })

  // A callback hook, not an async one: no promise per request on the hot path.
  app.addHook('onRequest', (request, _reply, done) => {
    const scope = request.routeOptions.config.scope
    if (scope === undefined) return done()
    try {
      request.principal = authenticate(request)
    } catch (err) {
      return done(err as AppError)
    }
    done(
      request.principal.level < LEVEL[scope] ? new AppError('FORBIDDEN', `this needs the ${scope} scope`) : undefined,
    )
  })
}

export default fp(authPlugin, { name: 'auth', fastify: '5.x' })
