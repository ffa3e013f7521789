// The answers built as text on the hot paths (src/http/bodies.ts) are checked against the response schemas that
// document them, directly and as the routes send them.

import { Compile } from 'typebox/compile'
import { describe, expect, it } from 'vitest'
import { legacyReadBody, resolvedBody, writtenBody } from '../../src/http/bodies.js'
import { ConfigReply, LegacyRead } from '../../src/http/schemas.js'
import { bearer, buildTestApp } from '../helpers/app.js'

const configReply = Compile(ConfigReply)
const legacyRead = Compile(LegacyRead)

/** The schema errors of `text` (which must be JSON), or [] when it matches. */
function errorsOf(check: typeof configReply | typeof legacyRead, text: string) {
  return [...check.Errors(JSON.parse(text))].map((e) => `${e.instancePath} ${e.message}`)
}

describe('hand-built bodies match their response schemas', () => {
  it('a read, fresh or stale, with or without _updated_at', () => {
    const doc = '{"a":[1,{"b":null}],"_updated_at":"2026-12-01T00:00:00.000Z"}'
    const bodies = [
      resolvedBody({ key: 'k', json: doc, source: 'redis', updatedAt: '2026-12-01T00:00:00.000Z' }),
      resolvedBody({ key: 'k-2', json: '{}', source: 'files', updatedAt: null, stale: true }),
    ]
    for (const body of bodies) expect(errorsOf(configReply, body)).toEqual([])
    expect(JSON.parse(bodies[1] as string).meta).toEqual({ source: 'files', updated_at: null, stale: true })
  })

  it('a write, and the legacy read', () => {
    const written = writtenBody({
      key: 'k',
      doc: {},
      json: '{"x":1}',
      source: 'php',
      updatedAt: '2026-12-01T00:00:00Z',
      etag: '"x"',
      revision: 3,
    })
    expect(errorsOf(configReply, written)).toEqual([])
    expect(JSON.parse(written).meta.revision).toBe(3)
    const unrecorded = writtenBody({
      key: 'k',
      doc: {},
      json: '{}',
      source: 'redis',
      updatedAt: 'x',
      etag: '"x"',
      revision: null,
    })
    expect(errorsOf(configReply, unrecorded)).toEqual([])
    expect(errorsOf(legacyRead, legacyReadBody('{"x":"y"}'))).toEqual([])
    expect(errorsOf(legacyRead, legacyReadBody('{}'))).toEqual([])
  })

  it('a mismatch is caught: the check is not vacuous', () => {
    expect(errorsOf(configReply, '{"status":"success","key":"k","data":[],"meta":{"source":"nowhere"}}')).not.toEqual(
      [],
    )
  })

  it('as the routes send them: GET, POST, PATCH and the legacy GET', async () => {
    const { app } = await buildTestApp({ REDIS_URL: undefined })
    const write = bearer('write')
    const sent = [
      await app.inject({ method: 'POST', url: '/api/config/k', headers: write, payload: { a: 1 } }),
      await app.inject({ url: '/api/config/k', headers: bearer('read') }),
      await app.inject({ url: '/api/config/k', headers: bearer('read') }), // cached
      await app.inject({ method: 'PATCH', url: '/api/config/k', headers: write, payload: { b: 2 } }),
    ]
    for (const res of sent) {
      expect(res.statusCode).toBe(200)
      expect(errorsOf(configReply, res.body)).toEqual([])
    }
    const legacy = await app.inject({ url: '/config_api.php?key=k', headers: bearer('read') })
    expect(errorsOf(legacyRead, legacy.body)).toEqual([])
  })
})
