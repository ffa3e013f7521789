// The OpenAPI document, built from the route schemas, and Swagger UI at /docs. Routes that need a scope are marked
// with the bearer security scheme here, once, instead of in every route.
import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import swagger from '@fastify/swagger'
import swaggerUi from '@fastify/swagger-ui'
import type { FastifyPluginAsync } from 'fastify'
import fp from 'fastify-plugin'
import { VERSION } from '../../version.js'

const swaggerPlugin: FastifyPluginAsync = async (app) => {
  await app.register(swagger, {
    openapi: {
      openapi: '3.0.3',
      info: {
        title: 'config-store',
        version: VERSION,
        description: 'Layered config store (Redis, legacy PHP API, JSON files). See README.md.',
      },
      components: { securitySchemes: { bearerAuth: { type: 'http', scheme: 'bearer' } } },
    },
  })
  app.addHook('onRoute', (route) => {
    const scope = route.config?.scope
    if (scope === undefined || route.schema === undefined) return
    route.schema.security = [{ bearerAuth: [] }]
    route.schema.description = `${route.schema.description ?? ''}\n\nNeeds the \`${scope}\` scope.`.trim()
  })
  // Swagger UI's assets are found from its package, not from its code's own location, so that the production
  // bundle (scripts/build.mjs) can include the plugin's code.
  const assets = join(dirname(createRequire(import.meta.url).resolve('@fastify/swagger-ui/package.json')), 'static')
  await app.register(swaggerUi, {
    routePrefix: '/docs',
    baseDir: assets,
    logo: { type: 'image/svg+xml', content: readFileSync(join(assets, 'logo.svg')) },
  })
}

export default fp(swaggerPlugin, { name: 'swagger', fastify: '5.x' })
