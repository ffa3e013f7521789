// Every rule of every built-in key (docs/keys.md), through the validator that writes, verify and migrate share; and the
// same rules through the HTTP API, where a refused body writes nothing.

import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ConfigError } from '../src/errors.js'

import { createValidator } from '../src/store/validation.js'
import { bearer, buildTestApp, configFiles, tempDir } from './helpers/app.js'

const validator = createValidator({ unknownKeys: 'allow' })
const token = { expires_at: 1800000000, consumed: false, consumed_at: null, single_use: true }
const rule = {
  id: 'r1',
  name: 'Invoices',
  conditions: [{ field: 'subject', operator: 'contains', value: 'invoice', case_sensitive: false }],
  actions: { webhook_url: 'https://hooks.acme.test/r1', priority: 'high', stop_processing: true },
}

const VALID: Record<string, object> = {
  polling_config: {
    active_days: [0, 1, 2, 3, 4],
    active_start_hour: 8,
    active_end_hour: 18,
    sender_of_interest_for_polling: ['ops@example.com'],
    enable_subject_group_dedup: true,
    vacation_start: '2026-12-20',
    vacation_end: '2027-01-03',
    enable_polling: true,
  },
  webhook_config: {
    webhook_url: 'https://hooks.acme.test/in',
    webhook_ssl_verify: true,
    webhook_sending_enabled: true,
    absence_pause_enabled: true,
    absence_pause_days: ['saturday', 'sunday'],
    webhook_time_start: '08:00',
    webhook_time_end: '18h30',
    global_time_start: '',
    global_time_end: '',
  },
  processing_prefs: {
    exclude_keywords: ['spam'],
    exclude_keywords_recadrage: [],
    exclude_keywords_autorepondeur: ['out of office'],
    require_attachments: false,
    notify_on_failure: true,
    mirror_media_to_custom: false,
    max_email_size_mb: 25,
    sender_priority: { 'boss@example.com': 'high', 'x@example.com': 'low' },
    retry_count: 3,
    retry_delay_sec: 60,
    webhook_timeout_sec: 30,
    rate_limit_per_hour: 1000,
  },
  runtime_flags: {
    disable_email_id_dedup: false,
    allow_custom_webhook_without_links: true,
    gmail_ingress_enabled: true,
  },
  routing_rules: { rules: [rule] },
  magic_link_tokens: {
    abc: token,
    def: { ...token, expires_at: null, consumed: true, consumed_at: 1790000000 },
    _updated_at: '2026-01-19T00:36:24+00:00',
  },
  webhook_time_window: { start: '09:00', end: '17h00' },
}

// [key, document, the error paths it must report — every one of them]
const INVALID: Array<[string, object, string[]]> = [
  ['polling_config', { active_days: [7, -1, 2.5] }, ['/active_days/0', '/active_days/1', '/active_days/2']],
  ['polling_config', { active_start_hour: 24, active_end_hour: -1 }, ['/active_start_hour', '/active_end_hour']],
  [
    'polling_config',
    { sender_of_interest_for_polling: ['not-an-email', 'a@b', 'a b@c.d'] },
    ['/sender_of_interest_for_polling/0', '/sender_of_interest_for_polling/1', '/sender_of_interest_for_polling/2'],
  ],
  [
    'polling_config',
    { enable_subject_group_dedup: 'yes', enable_polling: 1 },
    ['/enable_subject_group_dedup', '/enable_polling'],
  ],
  ['polling_config', { vacation_start: '2026-13-45', vacation_end: 'tomorrow' }, ['/vacation_start', '/vacation_end']],
  ['polling_config', { vacation_start: '2026-05-02', vacation_end: '2026-05-01' }, ['/vacation_start']],
  ['webhook_config', { webhook_url: 'http://hooks.acme.test' }, ['/webhook_url']],
  ['webhook_config', { webhook_url: 'https://a' }, ['/webhook_url']],
  ['webhook_config', { webhook_url: 'https://localhost/x' }, ['/webhook_url']],
  [
    'webhook_config',
    { webhook_ssl_verify: 'true', webhook_sending_enabled: null, absence_pause_enabled: 0 },
    ['/webhook_ssl_verify', '/webhook_sending_enabled', '/absence_pause_enabled'],
  ],
  ['webhook_config', { absence_pause_days: ['Monday', 'funday'] }, ['/absence_pause_days/0', '/absence_pause_days/1']],
  ['webhook_config', { absence_pause_enabled: true, absence_pause_days: [] }, ['/absence_pause_days']],
  ['webhook_config', { absence_pause_enabled: true }, ['/absence_pause_days']],
  [
    'webhook_config',
    { webhook_time_start: '24:00', webhook_time_end: '8am' },
    ['/webhook_time_start', '/webhook_time_end'],
  ],
  ['webhook_config', { webhook_time_start: '08:00', webhook_time_end: '' }, ['/webhook_time_end']],
  ['webhook_config', { global_time_start: '', global_time_end: '18:00' }, ['/global_time_start']],
  [
    'processing_prefs',
    { exclude_keywords: 'spam', exclude_keywords_recadrage: [1], exclude_keywords_autorepondeur: null },
    ['/exclude_keywords', '/exclude_keywords_recadrage/0', '/exclude_keywords_autorepondeur'],
  ],
  [
    'processing_prefs',
    { require_attachments: 'no', notify_on_failure: 1, mirror_media_to_custom: [] },
    ['/require_attachments', '/notify_on_failure', '/mirror_media_to_custom'],
  ],
  ['processing_prefs', { max_email_size_mb: 0 }, ['/max_email_size_mb']],
  ['processing_prefs', { max_email_size_mb: -5 }, ['/max_email_size_mb']],
  ['processing_prefs', { sender_priority: { 'a@b.c': 'urgent' } }, ['/sender_priority/a@b.c']],
  [
    'processing_prefs',
    { retry_count: 11, retry_delay_sec: 601, webhook_timeout_sec: 0, rate_limit_per_hour: 100001 },
    ['/retry_count', '/retry_delay_sec', '/webhook_timeout_sec', '/rate_limit_per_hour'],
  ],
  [
    'processing_prefs',
    { retry_count: -1, retry_delay_sec: '1.5', webhook_timeout_sec: 301, rate_limit_per_hour: -1 },
    ['/retry_count', '/retry_delay_sec', '/webhook_timeout_sec', '/rate_limit_per_hour'],
  ],
  ['runtime_flags', { gmail_ingress_enabled: 'on', custom: 1 }, ['/gmail_ingress_enabled', '/custom']],
  ['routing_rules', {}, ['/rules']],
  ['routing_rules', { rules: {} }, ['/rules']],
  ['routing_rules', { rules: [{ id: 'x' }] }, ['/rules/0/name', '/rules/0/conditions', '/rules/0/actions']],
  [
    'routing_rules',
    { rules: [{ ...rule, conditions: [{ field: 'to', operator: 'like', value: 1, case_sensitive: 'no' }] }] },
    [
      '/rules/0/conditions/0/field',
      '/rules/0/conditions/0/operator',
      '/rules/0/conditions/0/value',
      '/rules/0/conditions/0/case_sensitive',
    ],
  ],
  [
    'routing_rules',
    { rules: [{ ...rule, conditions: [{ field: 'body', operator: 'regex', value: '([a-z', case_sensitive: true }] }] },
    ['/rules/0/conditions/0/value'],
  ],
  [
    'routing_rules',
    { rules: [{ ...rule, actions: { webhook_url: 'http://x.example.com', priority: 'low', stop_processing: 'yes' } }] },
    ['/rules/0/actions/webhook_url', '/rules/0/actions/priority', '/rules/0/actions/stop_processing'],
  ],
  [
    'magic_link_tokens',
    { abc: { expires_at: 'soon', consumed: 'no', consumed_at: 'x', single_use: 1 } },
    ['/*/expires_at', '/*/consumed', '/*/consumed_at', '/*/single_use'],
  ],
  // Under a secret key, the token id (data) never appears in a path.
  ['magic_link_tokens', { abc: 'token' }, ['/*']],
  ['magic_link_tokens', { abc: { consumed: false } }, ['/*/expires_at', '/*/consumed_at', '/*/single_use']],
  ['webhook_time_window', { start: '09:00' }, ['/end']],
  ['webhook_time_window', { start: '25:00', end: '9' }, ['/start', '/end']],
  ['webhook_time_window', { start: '', end: '10:00' }, ['/start']],
]

describe('built-in keys accept their documented shape', () => {
  it.each(Object.entries(VALID))('%s', (key, doc) => {
    const result = validator.validate(key, doc as Record<string, unknown>)
    expect(result.ok ? [] : result.errors).toEqual([])
  })

  it('polling_config: active_days sorted and de-duplicated, senders lowercased and de-duplicated', () => {
    const result = validator.validate('polling_config', {
      active_days: [4, 0, 4, 2],
      sender_of_interest_for_polling: ['Ops@Example.com', 'ops@example.com', 'b@x.io'],
    })
    expect(result.ok && result.doc).toEqual({
      active_days: [0, 2, 4],
      sender_of_interest_for_polling: ['ops@example.com', 'b@x.io'],
    })
  })

  it('keeps fields the schema does not name (the legacy app adds fields over time)', () => {
    const result = validator.validate('webhook_config', { webhook_url: '', future_field: { nested: [1] } })
    expect(result.ok && result.doc).toEqual({ webhook_url: '', future_field: { nested: [1] } })
  })

  it('empty documents are valid for runtime_flags, and routing_rules with no rules', () => {
    expect(validator.validate('runtime_flags', {}).ok).toBe(true)
    expect(validator.validate('routing_rules', { rules: [] }).ok).toBe(true)
  })
})

describe('every rule reports every error with its path', () => {
  it.each(INVALID)('%s %j', (key, doc, paths) => {
    const result = validator.validate(key, doc as Record<string, unknown>)
    expect(result.ok).toBe(false)
    if (result.ok) return
    expect(result.errors.map((e) => e.path).sort()).toEqual([...new Set(paths)].sort())
    for (const e of result.errors) expect(e.message.length).toBeGreaterThan(0)
  })
})

describe('operator schemas in CONFIG_SCHEMAS_DIR', () => {
  it('validate a custom key like a built-in one, ignoring _updated_at', () => {
    const dir = tempDir('schemas')
    writeFileSync(
      join(dir, 'team_limits.schema.json'),
      JSON.stringify({
        type: 'object',
        properties: { max: { type: 'integer', maximum: 10 } },
        required: ['max'],
        additionalProperties: false,
      }),
    )
    const custom = createValidator({ schemasDir: dir, unknownKeys: 'reject' })
    expect(custom.kind('team_limits')).toBe('custom')
    expect(custom.validate('team_limits', { max: 3, _updated_at: 'x' }).ok).toBe(true)
    const bad = custom.validate('team_limits', { max: 11, extra: true })
    expect(bad.ok ? [] : bad.errors).toEqual([
      { path: '/extra', message: 'is not an allowed property' },
      { path: '/max', message: 'must be <= 10' },
    ])
    expect(custom.accepts('team_limits')).toBe(true)
    expect(custom.accepts('free_form')).toBe(false)
  })

  it.each([
    ['broken.schema.json', '{"type": ', /broken.schema.json is not a usable JSON Schema/],
    ['Bad Name.schema.json', '{}', /does not name a valid config key/],
    ['webhook_config.schema.json', '{}', /would replace the built-in schema/],
    [
      'team_names.schema.json',
      '{"type":"object","properties":{"owner":{"type":"string","pattern":"^(a+)+$"}}}',
      /^CONFIG_SCHEMAS_DIR: team_names\.schema\.json: the pattern "\^\(a\+\)\+\$" at \/properties\/owner\/pattern could take exponential time/,
    ],
    [
      'team_tags.schema.json',
      '{"type":"object","patternProperties":{"^(\\\\w+\\\\s?)*$":{"type":"string"}}}',
      /team_tags\.schema\.json: the pattern .* at \/patternProperties could take exponential time/,
    ],
  ])('refuses %s at start-up with a clear error', (name, text, message) => {
    const dir = tempDir('schemas')
    writeFileSync(join(dir, name), text)
    expect(() => createValidator({ schemasDir: dir, unknownKeys: 'allow' })).toThrow(ConfigError)
    expect(() => createValidator({ schemasDir: dir, unknownKeys: 'allow' })).toThrow(message)
  })
})

describe('through the API', () => {
  let t: Awaited<ReturnType<typeof buildTestApp>>
  beforeAll(async () => {
    t = await buildTestApp({ REDIS_URL: undefined })
  })
  afterAll(() => t.app.close())

  it.each(INVALID)('%s %j → 400 VALIDATION_FAILED, nothing written', async (key, doc, paths) => {
    const res = await t.app.inject({
      method: 'POST',
      url: `/api/config/${key}`,
      headers: bearer('admin'),
      payload: doc,
    })
    expect(res.statusCode).toBe(400)
    const body = res.json()
    expect(body.code).toBe('VALIDATION_FAILED')
    expect(body.details.map((d: { path: string }) => d.path).sort()).toEqual([...new Set(paths)].sort())
    expect(configFiles(t.dir)).toEqual([])
  })
})
