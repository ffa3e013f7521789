// The README's table of open routes is exactly the set of routes that answer a caller without a token: every route
// the app has is asked without one, from another host and from loopback.
import { readFileSync } from 'node:fs'
import type { FastifyInstance } from 'fastify'
import { describe, expect, it } from 'vitest'
import { buildTestApp } from './helpers/app.js'
import { ROOT } from './helpers/cli.js'

/** The routes of `printRoutes()`'s tree, as `METHOD /path`. */
function routesOf(app: FastifyInstance): string[] {
  const stack: string[] = []
  const routes: string[] = []
  for (const line of app.printRoutes({ commonPrefix: false }).split('\n')) {
    const m = /^((?:[│ ] {3})*)(?:[├└]── )?(\S+) \(([^)]+)\)$/.exec(line)
    if (m === null) continue
    const depth = (m[1] as string).length / 4
    stack.length = depth
    stack.push(m[2] as string)
    const path = stack.join('').replace(/^\/\//, '/')
    for (const method of (m[3] as string).split(', ')) routes.push(`${method} ${path}`)
  }
  return routes
}

/** The README's open routes: `GET /…` in the table under "Open routes". */
function documented(): Set<string> {
  const readme = readFileSync(`${ROOT}README.md`, 'utf8')
  const table = readme.slice(readme.indexOf('**Open routes.**')).split('\n\n')[1] as string
  return new Set([...table.matchAll(/`(GET \/[^`]*)`/g)].map((m) => m[1] as string))
}

/** A route as the README names it: HEAD as its GET, anything under /docs/ as `/docs/*`. */
const asDocumented = (route: string) =>
  route
    .replace(/^HEAD /, 'GET ')
    .replace(/^(GET \/docs\/).+$/, '$1*')
    .replace(/([^ ])\/$/, '$1')

/** The routes that answer a caller without a token, asked from `network`.N (an address each: the failed
 * authentications of one would be throttled, 429). */
async function openRoutes(app: FastifyInstance, network: string): Promise<Set<string>> {
  const open = new Set<string>()
  for (const [i, route] of routesOf(app).entries()) {
    const remoteAddress = `${network}.${i + 1}`
    const [method, path] = route.split(' ') as [string, string]
    const url = path.replace(':key', 'webhook_config').replace('*', 'index.css')
    const res = await app.inject({ method: method as 'GET', url, remoteAddress })
    if (res.statusCode !== 401) open.add(asDocumented(route))
  }
  return open
}

describe('open routes', () => {
  it('the README lists exactly the routes that answer without a token', async () => {
    const { app } = await buildTestApp({ REDIS_URL: undefined })
    await app.ready()
    expect(routesOf(app)).toContain('POST /api/config/:key')
    const listed = documented()
    expect(listed.size).toBeGreaterThanOrEqual(6)
    const fromLoopback = await openRoutes(app, '127.0.0')
    expect([...fromLoopback].sort()).toEqual([...listed].sort())
    // /metrics is open from loopback only
    const fromElsewhere = await openRoutes(app, '203.0.113')
    expect([...fromElsewhere].sort()).toEqual([...listed].filter((r) => r !== 'GET /metrics').sort())
  })
})
