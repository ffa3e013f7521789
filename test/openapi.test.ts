import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { parse } from 'yaml'
import { renderOpenApi } from '../src/http/openapi.js'

describe('openapi.yaml', () => {
  it('is the document the route schemas generate now (run `npm run openapi` after changing a route)', async () => {
    const committed = readFileSync(new URL('../openapi.yaml', import.meta.url), 'utf8')
    expect(committed).toBe(await renderOpenApi())
  })

  it('documents every route, the bearer scheme on protected ones, and the error envelope', async () => {
    const doc = parse(await renderOpenApi())
    expect(Object.keys(doc.paths).sort()).toEqual([
      '/api/changes',
      '/api/config',
      '/api/config/{key}',
      '/api/config/{key}/diff',
      '/api/config/{key}/history',
      '/api/config/{key}/rollback',
      '/api/migrate_configs_to_redis',
      '/api/verify_config_store',
      '/config_api.php',
      '/health',
      '/metrics',
      '/ready',
      '/version',
    ])
    const get = doc.paths['/api/config/{key}'].get
    expect(get.security).toEqual([{ bearerAuth: [] }])
    expect(get.parameters).toContainEqual(expect.objectContaining({ name: 'key', in: 'path' }))
    expect(Object.keys(get.responses)).toEqual(expect.arrayContaining(['200', '4XX', '5XX']))
    expect(doc.paths['/health'].get.security).toBeUndefined()
    expect(doc.components.securitySchemes.bearerAuth).toEqual({ type: 'http', scheme: 'bearer' })
  })
})
