// The dashboard's buttons (docs/legacy.md): verify the store, and migrate the legacy configs into Redis (docs/operations.md).
// Bearer-token routes, so the legacy session cookie and its missing CSRF protection (docs/legacy.md, defect 8) are gone.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { AppConfig } from '../src/config.js'
import { actorOf, allowsKey, isAdmin, type Principal } from '../src/http/auth.js'
import { errorResponses } from '../src/http/schemas.js'
import { migrateToRedis } from '../src/ops/migrate.js'
import { MigrateBody, MigrateReply, VerifyBody, VerifyReply } from '../src/ops/schemas.js'
import { verifyConfigStore } from '../src/ops/verify.js'

const opsRoutes: FastifyPluginAsyncTypebox<{ config: AppConfig }> = async (app, { config }) => {
  // `curl -X POST` with no body means "the defaults", as it did for the dashboard's buttons.
  const emptyBodyIsDefaults = async (request: { body: unknown }) => {
    request.body ??= {}
  }

  app.post(
    '/api/verify_config_store',
    {
      config: { scope: 'config:read' },
      preValidation: emptyBodyIsDefaults,
      schema: {
        summary: 'Check every layer directly: validity, drift, the effective value and its source',
        body: VerifyBody,
        response: { 200: VerifyReply, ...errorResponses },
      },
    },
    async (request) => {
      const { keys, raw, includeRawJson, failOnDrift } = request.body
      const principal = request.principal as Principal
      // Only the keys this caller may read: a key asked for outside its limits is a 403, and the default list leaves
      // out what it may not see (secret keys for a non-admin, keys outside a token's `keys`).
      for (const key of keys ?? []) request.authorizeKey(key, 'config:read')
      return verifyConfigStore(app.store, {
        keys,
        raw: raw === true || includeRawJson === true,
        failOnDrift,
        admin: isAdmin(principal),
        mayRead: (key) => allowsKey(principal, key) && (isAdmin(principal) || !app.store.validator.isSecret(key)),
      })
    },
  )

  app.post(
    '/api/migrate_configs_to_redis',
    {
      config: { scope: 'config:admin' },
      preValidation: emptyBodyIsDefaults,
      schema: {
        summary: 'Copy the legacy PHP/file configs into Redis: newest wins, never over newer Redis data',
        body: MigrateBody,
        response: { 200: MigrateReply, ...errorResponses },
      },
    },
    async (request) => {
      const { keys, dryRun, verify, force } = request.body
      const options = { keys, dryRun, verify, force, lockTtlMs: config.MIGRATION_LOCK_TTL_MS, actor: actorOf(request) }
      const reply = await migrateToRedis(app.store, options).catch((err: unknown) => {
        app.metrics.migrations.inc({ result: 'refused' }) // the lock held, Redis down, bad keys
        throw err
      })
      app.metrics.migrations.inc({ result: reply.success ? 'success' : 'failure' })
      return reply
    },
  )
}

export default opsRoutes
