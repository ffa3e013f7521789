// Compatibility with the legacy app as it is at ki2pixel/render_signal_server@69f59fd (docs/legacy.md): what its own
// code accepts, reads and checks. The fakes here are ours: they reproduce the legacy behaviour each test names.
import { spawnSync } from 'node:child_process'
import { lookup } from 'node:dns/promises'
import { writeFileSync } from 'node:fs'
import { hostname } from 'node:os'
import { join } from 'node:path'
import { describe, expect, inject, it } from 'vitest'
import { RUNTIME_FLAGS } from '../src/store/key-schemas.js'
import { isRefusedAddress } from '../src/store/webhook-url.js'
import { bearer, buildTestApp, configFiles, tempDir, uniquePrefix } from './helpers/app.js'
import { runCli } from './helpers/cli.js'
import { SILENT_HOST } from './helpers/dns-server.js'

const admin = { ...bearer('admin'), 'content-type': 'application/json' }

async function app(env: Record<string, string | undefined> = {}) {
  const t = await buildTestApp({ REDIS_URL: undefined, ...env })
  const post = (key: string, payload: object) =>
    t.app.inject({ method: 'POST', url: `/api/config/${key}`, headers: admin, payload })
  const verify = async (keys?: string[]) =>
    (
      await t.app.inject({
        method: 'POST',
        url: '/api/verify_config_store',
        headers: admin,
        payload: keys ? { keys } : {},
      })
    ).json()
  return { ...t, post, verify }
}

const python = spawnSync('python3', ['-c', 'print(1)'], { encoding: 'utf8' }).stdout === '1\n'

/** The legacy RoutingRulesService's load (`_normalize_rules`): every rule, or none when one is invalid. Its regexes
 * are compiled by the real Python. */
function legacyRulesKept(doc: { rules: Array<{ conditions: Array<{ operator: string; value: string }> }> }): number {
  const regexes = doc.rules.flatMap((r) => r.conditions.filter((c) => c.operator === 'regex').map((c) => c.value))
  const script = `
import json, re, sys
ok = True
for v in json.load(sys.stdin):
    v = v.strip()
    if len(v) > 200: ok = False; break
    try: re.compile(v)
    except re.error: ok = False; break
print(json.dumps(ok))`
  const run = spawnSync('python3', ['-c', script], { input: JSON.stringify(regexes), encoding: 'utf8' })
  return JSON.parse(run.stdout) ? doc.rules.length : 0
}

const rule = (value: string, id = 'r1') => ({
  id,
  name: id,
  conditions: [{ field: 'subject', operator: 'regex', value, case_sensitive: false }],
  actions: { webhook_url: 'https://hooks.acme.test/r', priority: 'normal', stop_processing: false },
})

describe('routing-rule regexes, as the legacy RoutingRulesService keeps them', () => {
  it('a regex over 200 characters is refused, naming its path; the legacy app would keep none of the rules', async () => {
    const t = await app()
    const doc = { rules: [rule(`(${'a'.repeat(248)})`), rule('invoice', 'r2')] }
    const res = await t.post('routing_rules', doc)
    expect(res.statusCode).toBe(400)
    expect(res.json().details).toEqual([
      {
        path: '/rules/0/conditions/0/value',
        message:
          'must be at most 200 characters once trimmed (it has 250): the legacy app refuses a longer regex, and then drops every rule',
      },
    ])
    if (python) expect(legacyRulesKept(doc)).toBe(0)
    expect(configFiles(t.dir)).toEqual([])
  })

  it("Python's dialect: (?i) and (?P<name>…) are kept, (?<name>…) is refused with the construct named", async () => {
    const t = await app()
    const doc = { rules: [rule('(?i)invoice'), rule('(?P<n>\\d+)-(?P=n)', 'r2'), rule(`  ${'b'.repeat(200)}  `, 'r3')] }
    const res = await t.post('routing_rules', doc)
    expect(res.statusCode).toBe(200)
    const stored = res.json().data
    expect(stored.rules[2].conditions[0].value).toBe('b'.repeat(200)) // stored trimmed, as the legacy writer does
    if (python) expect(legacyRulesKept(stored)).toBe(3)

    const js = await t.post('routing_rules', { rules: [rule('(?<n>\\d+)'), rule('invoice', 'r2')] })
    expect(js.statusCode).toBe(400)
    expect(js.json().details[0]).toEqual({
      path: '/rules/0/conditions/0/value',
      message:
        "is not a regex Python's re compiles (unknown extension ?<n at position 1: a named group is (?P<name>…) in Python): the legacy app would drop every rule",
    })
    if (python) expect(legacyRulesKept({ rules: [rule('(?<n>\\d+)'), rule('invoice', 'r2')] })).toBe(0)
  })

  it('a Make.com token as a rule target is stored as its URL; rule targets are not resolved (as in the legacy app)', async () => {
    const t = await app()
    const internal = {
      ...rule('x', 'r2'),
      actions: { ...rule('x').actions, webhook_url: 'https://internal.acme.test/r' },
    }
    const token = { ...rule('x'), actions: { ...rule('x').actions, webhook_url: 'abc123' } }
    const res = await t.post('routing_rules', { rules: [token, internal] })
    expect(res.statusCode).toBe(200)
    expect(res.json().data.rules.map((r: { actions: { webhook_url: string } }) => r.actions.webhook_url)).toEqual([
      'https://hook.eu2.make.com/abc123',
      'https://internal.acme.test/r',
    ])
  })
})

describe('webhook_config, as WebhookConfigService and the dashboard route take it', () => {
  it('webhook_delivery_mode is json or form, stored lowercase; webhook_fallback_on_415 is a boolean', async () => {
    const t = await app()
    const ok = await t.post('webhook_config', { webhook_delivery_mode: ' FORM ', webhook_fallback_on_415: false })
    expect(ok.statusCode).toBe(200)
    expect(ok.json().data).toMatchObject({ webhook_delivery_mode: 'form', webhook_fallback_on_415: false })
    // "false" is true to the legacy ingress (bool("false")) and false to the orchestrator: refused, not guessed
    const bad = await t.post('webhook_config', { webhook_delivery_mode: 'xml', webhook_fallback_on_415: 'false' })
    expect(bad.statusCode).toBe(400)
    expect(
      bad
        .json()
        .details.map((d: { path: string }) => d.path)
        .sort(),
    ).toEqual(['/webhook_delivery_mode', '/webhook_fallback_on_415'])
  })

  it.each([
    ['https://example.com/in', 'names example.com, a placeholder or local host'],
    ['https://example.org/in', 'names example.org, a placeholder or local host'],
    ['https://hooks.example.net/in', 'names hooks.example.net, a placeholder or local host'],
    ['https://test.com/in', 'names test.com, a placeholder or local host'],
    ['https://localhost:8443/in', 'names localhost, a placeholder or local host'],
    ['https://127.0.0.1/in', 'names 127.0.0.1, a placeholder or local host'],
    ['https://10.0.0.7/in', 'names 10.0.0.7, a private, loopback or link-local address'],
    ['https://[fd00::1]/in', 'names fd00::1, a private, loopback or link-local address'],
    ['https://internal.acme.test/in', 'its host internal.acme.test resolves to 10.1.2.3, a private'],
    ['https://mixed.acme.test/in', 'its host mixed.acme.test resolves to 192.168.7.7, a private'],
    ['https://loop.acme.test/in', 'its host loop.acme.test resolves to 127.0.0.2, a private'],
    ['https://v6local.acme.test/in', 'its host v6local.acme.test resolves to fe80::1, a private'],
    ['https://nodata.acme.test/in', 'its host nodata.acme.test resolves to no address'],
    ['https://nowhere.acme.test/in', 'its host nowhere.acme.test does not resolve (ENOTFOUND)'],
    ['http://hooks.acme.test/in', 'must be an https:// URL'],
    ['not a url', 'must be empty, an https:// URL, a Make.com token'],
  ])('%s is refused: %s', async (url, message) => {
    const t = await app()
    const res = await t.post('webhook_config', { webhook_url: url })
    expect(res.statusCode).toBe(400)
    expect(res.json().details).toEqual([{ path: '/webhook_url', message: expect.stringContaining(message) }])
    expect(configFiles(t.dir)).toEqual([])
  })

  it('a public host, a subdomain of example.org, and a Make.com token or alias are accepted, the token expanded', async () => {
    const t = await app()
    const write = async (url: string) => (await t.post('webhook_config', { webhook_url: url })).json().data?.webhook_url
    expect(await write('https://hooks.acme.test/in')).toBe('https://hooks.acme.test/in')
    expect(await write(' abc123 ')).toBe('https://hook.eu2.make.com/abc123')
    expect(await write('abc123@hook.eu2.make.com')).toBe('https://hook.eu2.make.com/abc123')
    expect(await write('')).toBe('')
    const cleared = await t.post('webhook_config', { webhook_url: null }) // the dashboard stores a cleared URL as null
    expect(cleared.statusCode).toBe(200)
  })

  it('a PATCH that sets the URL is resolved too; a rollback to a URL now refused is refused', async () => {
    const t = await app()
    expect((await t.post('webhook_config', { webhook_url: 'https://hooks.acme.test/in' })).statusCode).toBe(200)
    const patch = await t.app.inject({
      method: 'PATCH',
      url: '/api/config/webhook_config',
      headers: { ...bearer('admin'), 'content-type': 'application/merge-patch+json' },
      payload: { webhook_url: 'https://internal.acme.test/x' },
    })
    expect(patch.statusCode).toBe(400)
    expect(patch.json().details[0].path).toBe('/webhook_url')
  })

  it('a resolver that does not answer within CONFIG_WEBHOOK_DNS_TIMEOUT_MS refuses the write, saying so', async () => {
    const t = await app({ CONFIG_WEBHOOK_DNS_TIMEOUT_MS: '200' })
    const res = await t.post('webhook_config', { webhook_url: `https://${SILENT_HOST}/in` })
    expect(res.statusCode).toBe(400)
    expect(res.json().details[0].message).toBe(
      `its host ${SILENT_HOST} could not be resolved within 200 ms (CONFIG_WEBHOOK_DNS_TIMEOUT_MS): the legacy app refuses a host it cannot resolve`,
    )
  })

  it("without CONFIG_WEBHOOK_DNS_SERVERS the system's resolver answers (getaddrinfo, /etc/hosts included)", async () => {
    const host = hostname()
    const found = await lookup(host, { all: true }).catch(() => [])
    const t = await app({ CONFIG_WEBHOOK_DNS_SERVERS: undefined })
    const res = await t.post('webhook_config', { webhook_url: `https://${host}/in` })
    // This machine's own name resolves to a loopback or private address wherever the suite runs.
    if (found.length > 0 && found.every((a) => isRefusedAddress(a.address))) {
      expect(res.statusCode).toBe(400)
      expect(res.json().details[0].message).toMatch(new RegExp(`^its host ${host.toLowerCase()} resolves to `))
    } else expect(res.statusCode).toBe(200)
  })

  it('CONFIG_WEBHOOK_URL_CHECK=static resolves nothing, and still refuses placeholders and private literals', async () => {
    const t = await app({ CONFIG_WEBHOOK_URL_CHECK: 'static' })
    expect((await t.post('webhook_config', { webhook_url: 'https://internal.acme.test/in' })).statusCode).toBe(200)
    expect((await t.post('webhook_config', { webhook_url: 'https://example.com/in' })).statusCode).toBe(400)
    expect((await t.post('webhook_config', { webhook_url: 'https://192.168.1.1/in' })).statusCode).toBe(400)
  })

  it('bad DNS settings stop the start, naming the variable', async () => {
    await expect(buildTestApp({ CONFIG_WEBHOOK_URL_CHECK: 'maybe' })).rejects.toThrow(
      'CONFIG_WEBHOOK_URL_CHECK: must be one of resolve, static (got "maybe")',
    )
    await expect(buildTestApp({ CONFIG_WEBHOOK_DNS_SERVERS: 'dns.example' })).rejects.toThrow(
      /^CONFIG_WEBHOOK_DNS_SERVERS: must be DNS server addresses/,
    )
    await expect(buildTestApp({ CONFIG_WEBHOOK_DNS_SERVERS: '1.2.3' })).rejects.toThrow(/^CONFIG_WEBHOOK_DNS_SERVERS: /)
    await expect(buildTestApp({ CONFIG_WEBHOOK_DNS_TIMEOUT_MS: '0' })).rejects.toThrow(/^CONFIG_WEBHOOK_DNS_TIMEOUT_MS/)
  })
})

describe('what the legacy app writes itself is valid', () => {
  it('a cleared time window: global times null, webhook times empty (routes/api_config.py)', async () => {
    const t = await app()
    const doc = { global_time_start: null, global_time_end: null, webhook_time_start: '', webhook_time_end: '' }
    expect((await t.post('webhook_config', doc)).statusCode).toBe(200)
    writeFileSync(join(t.dir, 'webhook_config.json'), JSON.stringify({ ...doc, webhook_url: null }))
    const [result] = (await t.verify(['webhook_config'])).results
    expect(result).toMatchObject({ status: 'OK', valid: true })
  })

  it.each([
    ['9h00', '9h00'],
    ['9:00', '9:00'],
    ['13H30', '13H30'],
    [' 08:15 ', '08:15'],
  ])('the time %j is stored as %j (parse_time_hhmm; trimmed, case and one-digit hours kept)', async (sent, stored) => {
    const t = await app()
    const res = await t.post('webhook_config', { webhook_time_start: sent, webhook_time_end: '17:00' })
    expect(res.statusCode).toBe(200)
    expect(res.json().data.webhook_time_start).toBe(stored)
    const window = await t.post('webhook_time_window', { start: sent, end: '18h00' })
    expect(window.json().data.start).toBe(stored)
  })

  it.each(['24:00', '9:5', '9.00', '123:00'])('the time %j is refused', async (sent) => {
    const t = await app()
    const res = await t.post('webhook_config', { webhook_time_start: sent, webhook_time_end: '17:00' })
    expect(res.statusCode).toBe(400)
  })

  it('max_email_size_mb goes through int() (2.5 → 2, "3" → 3; 0.5 and 0 refused); sender_priority lowercased', async () => {
    const t = await app()
    const size = async (v: unknown) => t.post('processing_prefs', { max_email_size_mb: v })
    expect((await size(2.5)).json().data.max_email_size_mb).toBe(2)
    expect((await size('3')).json().data.max_email_size_mb).toBe(3)
    expect((await size(null)).json().data.max_email_size_mb).toBe(null)
    for (const v of [0.5, 0, -1, '2.5', true]) expect((await size(v)).statusCode, JSON.stringify(v)).toBe(400)
    const prio = await t.post('processing_prefs', { sender_priority: { ' Boss@ACME.test ': 'HIGH ', 'b@x.io': 'low' } })
    expect(prio.json().data.sender_priority).toEqual({ 'boss@acme.test': 'high', 'b@x.io': 'low' })
  })
})

describe('runtime_flags steers production (RuntimeFlagsService)', () => {
  it('only the flags the legacy app knows, as booleans', async () => {
    const t = await app()
    expect(RUNTIME_FLAGS).toEqual([
      'disable_email_id_dedup',
      'allow_custom_webhook_without_links',
      'gmail_ingress_enabled',
    ])
    const unknown = await t.post('runtime_flags', { gmail_ingress_enabled: true, maintenance: true })
    expect(unknown.statusCode).toBe(400)
    expect(unknown.json().details).toEqual([{ path: '/maintenance', message: 'is not an allowed property' }])
    const text = await t.post('runtime_flags', { gmail_ingress_enabled: 'false' })
    expect(text.statusCode).toBe(400)
  })

  it('verify flags a stored document the legacy app reads differently, and says how it reads it', async () => {
    const t = await app()
    writeFileSync(join(t.dir, 'runtime_flags.json'), JSON.stringify({ gmail_ingress_enabled: 'false', extra: 1 }))
    const [result] = (await t.verify(['runtime_flags'])).results
    expect(result.status).toBe('INVALID')
    expect(result.message).toMatch(/the legacy app reads it as \{"gmail_ingress_enabled":true\}$/)
  })

  it('migrate --force writes it as the legacy app reads it; import refuses it', async () => {
    const dir = (await app()).dir
    const env = {
      CONFIG_FILES_DIR: dir,
      REDIS_URL: inject('redisUrl'),
      CONFIG_STORE_REDIS_PREFIX: uniquePrefix(),
      CONFIG_WEBHOOK_DNS_SERVERS: inject('dnsServer'),
    }
    writeFileSync(join(dir, 'runtime_flags.json'), JSON.stringify({ gmail_ingress_enabled: 'false', extra: 1 }))
    const plain = await runCli(['migrate', '--only', 'runtime_flags'], env)
    expect(plain.code).toBe(1) // invalid: not written
    const forced = await runCli(['migrate', '--only', 'runtime_flags', '--force', '--no-verify'], env)
    expect(forced.code).toBe(0)
    const stored = JSON.parse((await runCli(['get', 'runtime_flags', '--source', 'redis'], env)).stdout)
    expect(stored).toMatchObject({ gmail_ingress_enabled: true })
    expect(Object.keys(stored).sort()).toEqual(['_updated_at', 'gmail_ingress_enabled'])
    const bundle = join(tempDir('bundle'), 'bundle.json')
    writeFileSync(
      bundle,
      JSON.stringify({ format: 'config-store-export/1', configs: { runtime_flags: { gmail_ingress_enabled: 'no' } } }),
    )
    expect((await runCli(['import', bundle], env)).code).toBe(1)
  })
})

describe('verify and check call a current legacy deployment healthy (scripts/check_config_store.py)', () => {
  it('the legacy key list: polling_config and webhook_time_window are not required, the legacy tolerances hold', async () => {
    const t = await app()
    const write = (key: string, doc: object) => writeFileSync(join(t.dir, `${key}.json`), JSON.stringify(doc))
    write('magic_link_tokens', { abc: { expires_at: null, consumed: false, consumed_at: null, single_use: true } })
    write('processing_prefs', { retry_count: 2 }) // no _updated_at: tolerated
    write('webhook_config', { webhook_url: 'https://hooks.acme.test/in', _updated_at: '2026-08-01T00:00:00+00:00' })
    write('runtime_flags', {}) // empty: defaults applied
    const reply = await t.verify()
    expect(reply.keys).toEqual([
      'magic_link_tokens',
      'processing_prefs',
      'routing_rules',
      'runtime_flags',
      'webhook_config',
    ])
    expect(reply.exit_code).toBe(0)
    const messages = Object.fromEntries(reply.results.map((r: { key: string; message: string }) => [r.key, r.message]))
    expect(messages).toEqual({
      magic_link_tokens: 'OK',
      processing_prefs: 'missing _updated_at (tolerated, injected on next save)',
      routing_rules: 'empty (allowed)',
      runtime_flags: 'empty (allowed, defaults applied)',
      webhook_config: 'OK',
    })
    // a retired key a layer still holds is checked; asked for by name, an absent one is MISSING
    write('polling_config', { active_days: [9] })
    const withPolling = await t.verify()
    expect(withPolling.keys).toContain('polling_config')
    expect(withPolling.exit_code).toBe(1)
    const asked = await t.verify(['webhook_time_window'])
    expect(asked.results[0]).toMatchObject({ status: 'MISSING', message: 'payload is empty: not found in any layer' })
  })
})

describe('the legacy route by client: a legacy app on redis-py 4 sends all its traffic here', () => {
  it('counts /config_api.php by caller and client software, and logs each new pair once', async () => {
    const t = await app()
    const call = (ua: string) =>
      t.app.inject({ url: '/config_api.php?key=runtime_flags', headers: { ...bearer('read'), 'user-agent': ua } })
    await call('python-requests/2.32.5')
    await call('python-requests/2.32.5')
    await call('curl/8.5.0')
    const metrics = (await t.app.inject({ url: '/metrics' })).body
    expect(metrics).toContain(
      'config_store_legacy_requests_total{method="GET",client="reader",agent="python-requests"} 2',
    )
    expect(metrics).toContain('config_store_legacy_requests_total{method="GET",client="reader",agent="curl"} 1')
    const lines = t.logs.filter((l) => l.msg.startsWith('the legacy route /config_api.php is called by'))
    expect(lines.map((l) => l.msg)).toEqual([
      'the legacy route /config_api.php is called by reader (python-requests)',
      'the legacy route /config_api.php is called by reader (curl)',
    ])
  })
})
