// openapi.yaml is generated from the route schemas: build the app as production does (files only, a placeholder
// token, nothing listening) and ask @fastify/swagger for the document.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { buildApp } from '../app.js'
import { loadConfig } from '../config.js'
import { createLogger } from '../logger.js'

export async function renderOpenApi(): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'config-store-openapi-'))
  const config = loadConfig({
    CONFIG_FILES_DIR: dir,
    AUTH_TOKENS: JSON.stringify([{ name: 'openapi', token: 'placeholder-token-for-openapi', scopes: ['config:read'] }]),
  })
  const app = await buildApp({ config, logger: createLogger('silent') })
  try {
    await app.ready()
    return app.swagger({ yaml: true })
  } finally {
    await app.close()
    rmSync(dir, { recursive: true, force: true })
  }
}
