// npm run openapi: writes openapi.yaml from the route schemas (test/openapi.test.ts fails when it is stale).
import { writeFileSync } from 'node:fs'
import { renderOpenApi } from '../src/http/openapi.js'

writeFileSync(new URL('../openapi.yaml', import.meta.url), await renderOpenApi())
process.stdout.write('openapi.yaml written\n')
