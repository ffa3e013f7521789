// A legacy world as the cut-over finds it: files and PHP holding different versions of each key (with and without
// `_updated_at`), Redis holding some newer and some older values, one invalid document, one missing key.
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import type { Redis } from 'ioredis'
import type { PhpServer } from './php-server.js'

export const token = { expires_at: 1900000000, consumed: false, consumed_at: null, single_use: true }

export const WORLD = {
  files: {
    polling_config: { active_days: [0, 1], enable_polling: true, _updated_at: '2026-01-01T00:00:00.000Z' },
    webhook_config: { webhook_url: 'https://hooks.acme.test/files', webhook_ssl_verify: true },
    routing_rules: {
      rules: [
        {
          id: 'r1',
          name: 'broken',
          conditions: [{ field: 'body', operator: 'regex', value: '([a-z', case_sensitive: false }],
          actions: { webhook_url: 'https://hooks.acme.test/r', priority: 'normal', stop_processing: false },
        },
      ],
    },
    magic_links: { abc: token },
  },
  php: {
    polling_config: { active_days: [0, 1, 2], enable_polling: true, _updated_at: '2026-02-01T00:00:00+00:00' },
    processing_prefs: { retry_count: 2, _updated_at: '2026-01-10T00:00:00+00:00' },
    runtime_flags: { gmail_ingress_enabled: true, _updated_at: '2026-03-01T00:00:00+00:00' },
  },
  redis: {
    processing_prefs: { retry_count: 5, _updated_at: '2026-03-01T00:00:00.000Z' },
    runtime_flags: { gmail_ingress_enabled: false, _updated_at: '2026-01-01T00:00:00.000Z' },
  },
}

export const ALL_KEYS = [
  'magic_link_tokens',
  'polling_config',
  'processing_prefs',
  'routing_rules',
  'runtime_flags',
  'webhook_config',
  'webhook_time_window',
] as const
export type Key = (typeof ALL_KEYS)[number]

export async function buildLegacyWorld(opts: { dir: string; php: PhpServer; redis: Redis; prefix: string }) {
  for (const [key, doc] of Object.entries(WORLD.files))
    writeFileSync(join(opts.dir, `${key}.json`), JSON.stringify(doc, null, 4))
  for (const [key, doc] of Object.entries(WORLD.php)) opts.php.files.set(key, JSON.stringify(doc))
  for (const [key, doc] of Object.entries(WORLD.redis))
    await opts.redis.set(`${opts.prefix}${key}`, JSON.stringify(doc))
}
