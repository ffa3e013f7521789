// Requests that would stall, bloat or crash the service. The hostile inputs are made here by
// code: a ReDoS sender, deep and wide bodies, planted values in every layer, a PHP host answering without end, a
// client trickling its body.
import { mkdirSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:http'
import { connect } from 'node:net'
import { join } from 'node:path'
import isSafeRegex from 'safe-regex2'
import type { TSchema } from 'typebox'
import { describe, expect, it } from 'vitest'
import { ByteMap } from '../src/store/byte-map.js'
import { BUILTIN_KEYS } from '../src/store/key-schemas.js'
import { createPhpLayer } from '../stores/php-layer.js'
import { TextReader } from '../stores/text-reader.js'
import { bearer, buildTestApp, configFiles, redisClientForFile, tempDir } from './helpers/app.js'
import { runCli } from './helpers/cli.js'

const redis = redisClientForFile()
async function app(env: Record<string, string | undefined> = {}) {
  const t = await buildTestApp(env)
  return t
}
const json = { ...bearer('admin'), 'content-type': 'application/json' }

const deep = (levels: number) => `${'{"a":'.repeat(levels)}1${'}'.repeat(levels)}`
const wide = (keys: number) => `{${Array.from({ length: keys }, (_, i) => `"k${i}":${i}`).join(',')}}`

function patternsOf(schema: unknown, out: string[] = []): string[] {
  if (typeof schema !== 'object' || schema === null) return out
  const { pattern } = schema as { pattern?: unknown }
  if (typeof pattern === 'string') out.push(pattern)
  for (const value of Object.values(schema)) patternsOf(value, out)
  return out
}

describe('validation runs in linear time', () => {
  const patterns = [...new Set([...BUILTIN_KEYS.values()].flatMap((s) => patternsOf(s.schema as TSchema)))]

  it('every pattern of every built-in schema is star-height safe', () => {
    expect(patterns.length).toBeGreaterThan(3)
    for (const p of patterns) expect(isSafeRegex(p), p).toBe(true)
  })

  // A quadratic pattern takes minutes on these (the 40 KB sender of the report took 8–11 s): the test times out.
  it('and linear on 200,000-character hostile strings', { timeout: 15_000 }, () => {
    const hostile = ['a@', '.', '@', 'a', ' ', '0', '0:', 'h', 'https://', '-'].flatMap((unit) => [
      unit.repeat(200_000 / unit.length),
      `a@${unit.repeat(200_000 / unit.length)}@`,
      `${unit.repeat(200_000 / unit.length)}!`,
    ])
    for (const p of patterns) {
      const re = new RegExp(p, 'u')
      for (const text of hostile) re.test(text)
    }
  })

  it('the ReDoS sender of the report is refused at once, nothing written', { timeout: 15_000 }, async () => {
    const t = await app({ REDIS_URL: undefined })
    const sender = `a@${'.'.repeat(200_000)}@`
    const res = await t.app.inject({
      method: 'POST',
      url: '/api/config/polling_config',
      headers: json,
      payload: { sender_of_interest_for_polling: [sender] },
    })
    expect(res.statusCode).toBe(400)
    expect(res.json().details).toContainEqual(expect.objectContaining({ path: '/sender_of_interest_for_polling/0' }))
    expect(configFiles(t.dir)).toEqual([])
  })

  it('a routing rule whose regex would backtrack catastrophically is refused', async () => {
    const t = await app({ REDIS_URL: undefined })
    const rule = (value: string) => ({
      rules: [
        {
          id: 'r1',
          name: 'n',
          conditions: [{ field: 'subject', operator: 'regex', value, case_sensitive: false }],
          actions: { webhook_url: 'https://hooks.acme.test/x', priority: 'normal', stop_processing: false },
        },
      ],
    })
    const bad = await t.app.inject({
      method: 'POST',
      url: '/api/config/routing_rules',
      headers: json,
      payload: rule('(a+)+$'),
    })
    expect(bad.statusCode).toBe(400)
    expect(bad.json().details).toEqual([
      { path: '/rules/0/conditions/0/value', message: 'must not nest repetitions (catastrophic backtracking)' },
    ])
    const ok = await t.app.inject({
      method: 'POST',
      url: '/api/config/routing_rules',
      headers: json,
      payload: rule('^inv(oice)?-\\d+'),
    })
    expect(ok.statusCode).toBe(200)
  })

  it('strings have bounds', async () => {
    const t = await app({ REDIS_URL: undefined })
    const res = await t.app.inject({
      method: 'POST',
      url: '/api/config/webhook_config',
      headers: json,
      payload: { webhook_url: `https://example.com/${'x'.repeat(5000)}` },
    })
    expect(res.statusCode).toBe(400)
  })
})

describe('deep or wide documents', () => {
  it.each([
    ['10,000 levels deep', deep(10_000)],
    ['65 levels deep', deep(65)],
    ['60,000 keys', wide(60_000)],
    ['a 200,000-element array', `{"a":[${'0,'.repeat(199_999)}0]}`],
  ])('%s → 400 BAD_REQUEST on POST and PATCH, nothing written', async (_name, payload) => {
    const t = await app({ REDIS_URL: undefined })
    for (const method of ['POST', 'PATCH'] as const) {
      const res = await t.app.inject({ method, url: '/api/config/k', headers: json, payload })
      expect(res.statusCode, method).toBe(400)
      expect(res.json().code).toBe('BAD_REQUEST')
    }
    const legacy = await t.app.inject({
      method: 'POST',
      url: '/config_api.php',
      headers: json,
      payload: `{"key":"k","config":${payload}}`,
    })
    expect(legacy.statusCode).toBe(400)
    expect(configFiles(t.dir)).toEqual([])
  })

  it('64 levels are accepted', async () => {
    const t = await app({ REDIS_URL: undefined })
    const res = await t.app.inject({ method: 'POST', url: '/api/config/k', headers: json, payload: deep(63) })
    expect(res.statusCode).toBe(200)
  })

  it('a deep value planted in Redis or a file is reported, and the service keeps serving', async () => {
    const t = await app()
    await redis.set(`${t.prefix}planted`, deep(10_000))
    writeFileSync(join(t.dir, 'planted_file.json'), deep(10_000))
    await redis.set(`${t.prefix}wide`, wide(90_000))
    for (const key of ['planted', 'planted_file', 'wide']) {
      const res = await t.app.inject({ url: `/api/config/${key}`, headers: bearer('read') })
      expect(res.statusCode, key).toBe(503)
      expect(res.json().code).toBe('STORE_UNAVAILABLE')
    }
    expect(t.logs.some((l) => /nests deeper than 64 levels/.test(String(l.reason)))).toBe(true)
    const verify = await t.app.inject({ method: 'POST', url: '/api/verify_config_store', headers: bearer('admin') })
    expect(verify.statusCode).toBe(200)
    const list = await t.app.inject({ url: '/api/config', headers: bearer('read') })
    expect(list.statusCode).not.toBe(500)
    expect((await t.app.inject({ url: '/health' })).statusCode).toBe(200)
  })

  it('a PHP reply nested too deep makes that layer unavailable for the read', async () => {
    const server = createServer((_req, res) => res.end(`{"success":true,"config":${deep(5000)}}`))
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
    const layer = createPhpLayer({
      baseUrl: `http://127.0.0.1:${(server.address() as { port: number }).port}`,
      token: 't',
      connectTimeoutMs: 500,
      timeoutMs: 1000,
    })
    try {
      expect(await layer.get('k')).toMatchObject({
        state: 'unavailable',
        reason: expect.stringMatching(/nests deeper/),
      })
    } finally {
      await layer.close()
      server.closeAllConnections()
      server.close()
    }
  })
})

describe('bodies that would poison a prototype', () => {
  it.each([
    ['__proto__', '{"a":1,"__proto__":{"admin":true}}'],
    ['__proto__ spelled with escapes', '{"a":1,"\\u005f_proto__":{"admin":true}}'],
    ['constructor.prototype', '{"a":{"constructor":{"prototype":{"admin":true}}}}'],
    ['constructor.prototype spelled with escapes', '{"a":{"\\u0063onstructor":{"prototype":{"admin":true}}}}'],
  ])('%s: 400 at the parser, nothing written', async (_name, payload) => {
    const t = await app({ REDIS_URL: undefined })
    for (const method of ['POST', 'PATCH'] as const) {
      const res = await t.app.inject({ method, url: '/api/config/k', headers: json, payload })
      expect(res.statusCode, method).toBe(400)
      expect(res.json(), method).toMatchObject({ code: 'BAD_REQUEST' })
    }
    expect(configFiles(t.dir)).toEqual([])
  })

  it("a text that is not JSON gets the parser's own 400; an ordinary one is parsed", async () => {
    const t = await app({ REDIS_URL: undefined })
    const bad = await t.app.inject({ method: 'POST', url: '/api/config/k', headers: json, payload: '{"a":' })
    expect(bad.statusCode).toBe(400)
    const ok = await t.app.inject({ method: 'POST', url: '/api/config/k', headers: json, payload: '{"a":"é","b":[1]}' })
    expect(ok.json()).toMatchObject({ data: { a: 'é', b: [1] } })
  })
})

describe('key and field names that are Object.prototype members', () => {
  it.each(['constructor', '__proto__', 'tostring', 'hasownproperty'])(
    '%s is an ordinary free-form key',
    async (key) => {
      const t = await app()
      const post = await t.app.inject({ method: 'POST', url: `/api/config/${key}`, headers: json, payload: { a: 1 } })
      expect(post.statusCode).toBe(200)
      const get = await t.app.inject({ url: `/api/config/${key}`, headers: bearer('read') })
      expect(get.json()).toMatchObject({ key, data: { a: 1 } })
      const list = (await t.app.inject({ url: '/api/config', headers: bearer('read') })).json()
      expect(list.keys.find((k: { key: string }) => k.key === key)).toMatchObject({ schema: 'none' })
      const del = await t.app.inject({ method: 'DELETE', url: `/api/config/${key}`, headers: bearer('admin') })
      expect(del.statusCode).toBe(200)
    },
  )

  it('CONFIG_STORE_UNKNOWN_KEYS=reject refuses them', async () => {
    const t = await app({ REDIS_URL: undefined, CONFIG_STORE_UNKNOWN_KEYS: 'reject' })
    for (const key of ['constructor', '__proto__']) {
      const res = await t.app.inject({ method: 'POST', url: `/api/config/${key}`, headers: json, payload: { a: 1 } })
      expect(res.json().code, key).toBe('INVALID_KEY')
    }
    expect(configFiles(t.dir)).toEqual([])
  })

  it('the CLI imports and exports them', async () => {
    const dir = tempDir()
    const bundle = join(dir, 'bundle.json')
    const configs = '{"constructor":{"a":1},"__proto__":{"b":2}}'
    writeFileSync(bundle, `{"format":"config-store-export/1","configs":${configs}}`)
    mkdirSync(join(dir, 'data'))
    const env = { CONFIG_FILES_DIR: join(dir, 'data') }
    const imported = await runCli(['import', bundle], env)
    expect(imported.stderr).toBe('')
    expect(imported.code).toBe(0)
    const exported = JSON.parse((await runCli(['export'], env)).stdout)
    expect(Object.keys(exported.configs).sort()).toEqual(['__proto__', 'constructor'])
    expect(Object.hasOwn(exported.configs, '__proto__')).toBe(true)
  })
})

describe('memory has a byte bound', () => {
  it('a ByteMap never holds more than its bound', () => {
    const map = new ByteMap<string>(10_000)
    for (let i = 0; i < 100; i++) map.set(`k${i}`, 'x'.repeat(1000), 2000)
    expect(map.bytes).toBeLessThanOrEqual(10_000)
    expect(map.size).toBe(5)
    map.set('huge', 'x', 20_000)
    expect(map.get('huge')).toBeUndefined()
  })

  it("a layer's memo of stored texts keeps within its bytes", () => {
    const reader = new TextReader({ maxBytes: 1_000_000, maxNodes: 1000 })
    const text = JSON.stringify({ v: 'x'.repeat(100_000) })
    for (let i = 0; i < 50; i++) expect(typeof reader.hit(`k${i}`, text)).toBe('object')
    // 200 KB a text: at most five are remembered, so the oldest is parsed again (a fresh hit carries its document).
    const again = reader.hit('k0', text) as { doc: unknown }
    expect(Object.getOwnPropertyDescriptor(again, 'doc')).toBeUndefined()
  })

  it('writes and reads of 256 KB documents keep the cache within its share of CONFIG_CACHE_MAX_BYTES', async () => {
    // Files only: this many large writes would load the suite's shared Redis (the bench measures RSS after 200 × 1 MB).
    const t = await app({ REDIS_URL: undefined, CONFIG_CACHE_MAX_BYTES: String(8 * 1024 * 1024) })
    const doc = JSON.stringify({ v: 'x'.repeat(256 * 1024) })
    for (let i = 0; i < 30; i++) {
      const key = `big${i}`
      expect(
        (await t.app.inject({ method: 'POST', url: `/api/config/${key}`, headers: json, payload: doc })).statusCode,
      ).toBe(200)
      expect((await t.app.inject({ url: `/api/config/${key}`, headers: bearer('read') })).statusCode).toBe(200)
    }
    const { cache } = t.app.store.stats()
    expect(cache.entries).toBeGreaterThan(0)
    expect(cache.entries).toBeLessThan(30)
    expect(cache.bytes).toBeLessThanOrEqual(4 * 1024 * 1024)
  })

  it('CONFIG_MAX_KEYS: a write that would make one key too many is refused; existing keys stay writable', async () => {
    const t = await app({ REDIS_URL: undefined, CONFIG_MAX_KEYS: '3' })
    const post = (key: string) =>
      t.app.inject({ method: 'POST', url: `/api/config/${key}`, headers: json, payload: { a: 1 } })
    for (const key of ['a', 'b', 'c']) expect((await post(key)).statusCode).toBe(200)
    const refused = await post('d')
    expect(refused.statusCode).toBe(409)
    expect(refused.json().code).toBe('QUOTA_EXCEEDED')
    expect(configFiles(t.dir).sort()).toEqual(['a.json', 'b.json', 'c.json'])
    expect((await post('a')).statusCode).toBe(200)
    expect((await t.app.inject({ method: 'DELETE', url: '/api/config/b', headers: bearer('admin') })).statusCode).toBe(
      200,
    )
    expect((await post('d')).statusCode).toBe(200)
  })
})

describe('slow and oversized requests', () => {
  async function listening(env: Record<string, string | undefined> = {}) {
    const t = await app({ REDIS_URL: undefined, REQUEST_TIMEOUT_MS: '1000', ...env })
    await t.app.listen({ port: 0, host: '127.0.0.1' })
    return { ...t, port: (t.app.server.address() as { port: number }).port }
  }

  /** Sends `head` (and then nothing), and resolves with what the server answered once it closed the connection. */
  function rawRequest(port: number, head: string): Promise<string> {
    return new Promise((resolve, reject) => {
      const socket = connect(port, '127.0.0.1', () => socket.write(head))
      let answer = ''
      socket.on('data', (chunk) => {
        answer += chunk.toString()
      })
      socket.on('close', () => resolve(answer))
      socket.on('error', reject)
    })
  }

  it('a body that never arrives is dropped after REQUEST_TIMEOUT_MS (408)', { timeout: 10_000 }, async () => {
    const t = await listening()
    const answer = await rawRequest(
      t.port,
      `POST /api/config/k HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${bearer('admin').authorization.slice(7)}\r\n` +
        'Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"a":',
    )
    expect(answer).toMatch(/^HTTP\/1\.1 408/)
    expect(configFiles(t.dir)).toEqual([])
  })

  it('401 and 413 for a body declared beyond what is read and discarded close the connection', {
    timeout: 10_000,
  }, async () => {
    const t = await listening({ REQUEST_TIMEOUT_MS: '30000' })
    const unauthorised = await rawRequest(
      t.port,
      'POST /api/config/k HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100000000\r\n\r\n{',
    )
    expect(unauthorised).toMatch(/^HTTP\/1\.1 401/)
    expect(unauthorised.toLowerCase()).toContain('connection: close')
    const tooLarge = await rawRequest(
      t.port,
      `POST /api/config/k HTTP/1.1\r\nHost: x\r\nAuthorization: ${bearer('admin').authorization}\r\n` +
        'Content-Type: application/json\r\nContent-Length: 100000000\r\n\r\n{',
    )
    expect(tooLarge).toMatch(/^HTTP\/1\.1 413/)
    expect(tooLarge.toLowerCase()).toContain('connection: close')
  })

  /** A POST of `bytes` bytes that writes its whole body, then reads (or reads the answer first, then writes): the
   * answer it got, and the socket error it saw. */
  function bigPost(port: number, bytes: number, readFirst: boolean, auth = bearer('admin').authorization) {
    return new Promise<{ answer: string; error?: string }>((resolve) => {
      const socket = connect(port, '127.0.0.1')
      let answer = ''
      let error: string | undefined
      const body = Buffer.alloc(bytes, 'a')
      socket.on('data', (chunk) => {
        answer += chunk.toString()
        if (readFirst && answer.includes('\r\n\r\n') && !socket.writableEnded) socket.end(body)
      })
      socket.on('error', (err: NodeJS.ErrnoException) => {
        error = err.code
      })
      socket.on('close', () => resolve({ answer, ...(error ? { error } : {}) }))
      socket.write(
        `POST /api/config/k HTTP/1.1\r\nHost: x\r\nAuthorization: ${auth}\r\nContent-Type: application/json\r\n` +
          `Content-Length: ${bytes}\r\nConnection: close\r\n\r\n`,
      )
      if (!readFirst) socket.end(body)
    })
  }

  it.each([
    ['writes the whole body before it reads', false],
    ['reads the answer first, then writes', true],
  ])('a body just over CONFIG_MAX_BYTES: a client that %s sees the 413, every time', async (_name, readFirst) => {
    const t = await listening({ REQUEST_TIMEOUT_MS: '30000' })
    for (let i = 0; i < 8; i++) {
      const { answer, error } = await bigPost(t.port, readFirst ? 1_048_576 + 4096 : 3_500_000, readFirst)
      expect(error, `run ${i}`).toBeUndefined()
      expect(answer).toMatch(/^HTTP\/1\.1 413/)
    }
    const unauthorised = await bigPost(t.port, 2_000_000, false, 'Bearer wrong-token-0123456789')
    expect(unauthorised).toMatchObject({ answer: expect.stringMatching(/^HTTP\/1\.1 401/) })
    expect(unauthorised.error).toBeUndefined()
    expect(configFiles(t.dir)).toEqual([])
  })

  it('MAX_CONNECTIONS bounds the connections held open at once', async () => {
    const t = await listening({ MAX_CONNECTIONS: '7' })
    expect(t.app.server.maxConnections).toBe(7)
  })
})

describe('upstream replies are read no further than CONFIG_MAX_BYTES', () => {
  async function endlessPhp(declareLength: boolean) {
    let sent = 0
    const server = createServer((_req, res) => {
      const chunk = Buffer.alloc(64 * 1024, 'x')
      res.writeHead(200, declareLength ? { 'content-length': String(450 * 1024 * 1024) } : {})
      res.write('{"success":true,"config":{"v":"')
      const pump = () => {
        while (sent < 450 * 1024 * 1024 && !res.destroyed) {
          sent += chunk.length
          if (!res.write(chunk)) return res.once('drain', pump)
        }
        res.end('"}}')
      }
      res.on('close', () => undefined)
      pump()
    })
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
    const { port } = server.address() as { port: number }
    return {
      url: `http://127.0.0.1:${port}`,
      sent: () => sent,
      close: () => {
        server.closeAllConnections()
        server.close()
      },
    }
  }

  it.each([true, false])(
    'content-length declared: %s → unavailable, and little of it read',
    { timeout: 15_000 },
    async (declared) => {
      const php = await endlessPhp(declared)
      const layer = createPhpLayer({
        baseUrl: php.url,
        token: 't',
        connectTimeoutMs: 500,
        timeoutMs: 5000,
        maxBytes: 1_048_576,
      })
      try {
        const read = await layer.get('k')
        expect(read).toMatchObject({ state: 'unavailable', reason: expect.stringMatching(/larger than/) })
        expect(php.sent()).toBeLessThan(64 * 1024 * 1024)
      } finally {
        await layer.close()
        php.close()
      }
    },
  )

  it('through the app: the read falls back to the files layer', { timeout: 15_000 }, async () => {
    const php = await endlessPhp(false)
    const t = await app({
      REDIS_URL: undefined,
      EXTERNAL_CONFIG_BASE_URL: php.url,
      CONFIG_API_TOKEN: 't',
      PHP_TIMEOUT_MS: '5000',
    })
    try {
      writeFileSync(join(t.dir, 'k.json'), '{"from":"files"}')
      const res = await t.app.inject({ url: '/api/config/k', headers: bearer('read') })
      expect(res.json()).toMatchObject({ data: { from: 'files' }, meta: { source: 'files' } })
    } finally {
      php.close()
    }
  })
})

describe('what was accepted can be read back', () => {
  it('a document at CONFIG_MAX_NODES, stamped and pretty-printed, reads back from every layer', async () => {
    const t = await app({ CONFIG_MAX_NODES: '1000' })
    const payload = `{"a":[${Array.from({ length: 999 }, (_, i) => i).join(',')}]}`
    const res = await t.app.inject({ method: 'POST', url: '/api/config/full', headers: json, payload })
    expect(res.statusCode).toBe(200)
    const files = await app({ REDIS_URL: undefined, CONFIG_MAX_NODES: '1000' })
    expect(
      (await files.app.inject({ method: 'POST', url: '/api/config/full', headers: json, payload })).statusCode,
    ).toBe(200)
    for (const a of [t, files]) {
      const back = await a.app.inject({ url: '/api/config/full', headers: bearer('read') })
      expect(back.statusCode).toBe(200)
      expect(back.json().data.a).toHaveLength(999)
    }
  })
})
