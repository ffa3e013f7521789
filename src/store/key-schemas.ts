// The built-in config keys and their rules (docs/keys.md). The TypeBox schema checks shapes; `check` adds the rules that
// span fields; `normalize` gives the stored form. Writes, verify and migrate all use these.
import isSafeRegex from 'safe-regex2'
import { type TSchema, Type } from 'typebox'
import type { ConfigDocument } from '../../stores/layer.js'
import type { ErrorDetail } from '../errors.js'

export interface KeySpec {
  schema: TSchema
  /** Rules the schema cannot say (cross-field, regex compiles); runs even when the shape is wrong, so be defensive. */
  check?: (doc: ConfigDocument, errors: ErrorDetail[]) => void
  normalize?: (doc: ConfigDocument) => ConfigDocument
  /** An empty document is a valid value (verify). */
  emptyAllowed?: boolean
  /** Holds credentials: reading it needs admin. */
  secret?: boolean
}

// Every pattern here runs in time linear in its input (no two adjacent repetitions that can match the same text),
// and every string has a bound: a body of CONFIG_MAX_BYTES must cost milliseconds to check, never seconds.
const Bool = Type.Boolean()
const Int = (minimum: number, maximum: number) => Type.Integer({ minimum, maximum })
const Text = (maxLength: number) => Type.String({ maxLength })
const StringList = Type.Array(Text(1024))
const Time = Type.String({
  pattern: '^$|^([01][0-9]|2[0-3])[:h][0-5][0-9]$',
  maxLength: 5,
  description: 'HH:MM or HHhMM, or empty',
})
const IsoDate = Type.Union([Type.String({ pattern: '^\\d{4}-\\d{2}-\\d{2}', maxLength: 64 }), Type.Null()])
const HttpsUrl = Type.String({ pattern: '^https://', minLength: 10, maxLength: 2048 })
// `local@domain` with a dot inside the domain. The domain is matched as one character, then no dots, then the first
// dot: one way to match any text, where `[^@\s]+\.[^@\s]+` tries every dot and is quadratic on `a@....@`.
const Email = Type.String({ pattern: '^[^@\\s]+@[^@\\s][^@\\s.]*\\.[^@\\s]+$', maxLength: 320 })
const WEEKDAYS = ['monday', 'tuesday', 'wednesday', 'thursday', 'friday', 'saturday', 'sunday'] as const

export const PollingConfig = Type.Object({
  active_days: Type.Optional(Type.Array(Int(0, 6))),
  active_start_hour: Type.Optional(Int(0, 23)),
  active_end_hour: Type.Optional(Int(0, 23)),
  sender_of_interest_for_polling: Type.Optional(Type.Array(Email)),
  enable_subject_group_dedup: Type.Optional(Bool),
  vacation_start: Type.Optional(IsoDate),
  vacation_end: Type.Optional(IsoDate),
  enable_polling: Type.Optional(Bool),
})

export const WebhookConfig = Type.Object({
  webhook_url: Type.Optional(Text(2048)),
  webhook_ssl_verify: Type.Optional(Bool),
  webhook_sending_enabled: Type.Optional(Bool),
  absence_pause_enabled: Type.Optional(Bool),
  absence_pause_days: Type.Optional(Type.Array(Type.Enum(WEEKDAYS))),
  webhook_time_start: Type.Optional(Time),
  webhook_time_end: Type.Optional(Time),
  global_time_start: Type.Optional(Time),
  global_time_end: Type.Optional(Time),
})

export const ProcessingPrefs = Type.Object({
  exclude_keywords: Type.Optional(StringList),
  exclude_keywords_recadrage: Type.Optional(StringList),
  exclude_keywords_autorepondeur: Type.Optional(StringList),
  require_attachments: Type.Optional(Bool),
  notify_on_failure: Type.Optional(Bool),
  mirror_media_to_custom: Type.Optional(Bool),
  max_email_size_mb: Type.Optional(Type.Union([Type.Number({ exclusiveMinimum: 0 }), Type.Null()])),
  sender_priority: Type.Optional(Type.Record(Type.String(), Type.Enum(['high', 'medium', 'low']))),
  retry_count: Type.Optional(Int(0, 10)),
  retry_delay_sec: Type.Optional(Int(0, 600)),
  webhook_timeout_sec: Type.Optional(Int(1, 300)),
  rate_limit_per_hour: Type.Optional(Int(0, 100000)),
})

export const RuntimeFlags = Type.Object(
  {
    disable_email_id_dedup: Type.Optional(Bool),
    allow_custom_webhook_without_links: Type.Optional(Bool),
    gmail_ingress_enabled: Type.Optional(Bool),
  },
  { additionalProperties: Bool },
)

const Condition = Type.Object({
  field: Type.Enum(['sender', 'subject', 'body']),
  operator: Type.Enum(['contains', 'equals', 'regex']),
  // The legacy RoutingRulesService drops the whole document for a value that is empty once stripped.
  value: Type.String({ maxLength: 1024, pattern: '\\S', description: 'not blank' }),
  case_sensitive: Bool,
})

export const RoutingRules = Type.Object({
  rules: Type.Array(
    Type.Object({
      id: Type.String({ minLength: 1, maxLength: 128 }),
      // Empty gets a default name from the legacy app; blank (spaces only) makes it drop every rule.
      name: Type.String({ maxLength: 256, pattern: '^$|\\S' }),
      conditions: Type.Array(Condition, { minItems: 1 }),
      actions: Type.Object({
        webhook_url: HttpsUrl,
        priority: Type.Enum(['normal', 'high']),
        stop_processing: Bool,
      }),
    }),
  ),
})

export const MagicLinkToken = Type.Object({
  expires_at: Type.Union([Type.Number(), Type.Null()]),
  consumed: Bool,
  consumed_at: Type.Union([Type.Number(), Type.Null()]),
  single_use: Bool,
})

// Token ids map to tokens; `_updated_at` (written by the PHP backend among the ids) is metadata, removed before checks.
export const MagicLinkTokens = Type.Record(Type.String(), MagicLinkToken)

export const WebhookTimeWindow = Type.Object({ start: Time, end: Time })

function bothOrNeither(doc: ConfigDocument, errors: ErrorDetail[], start: string, end: string): void {
  const a = doc[start]
  const b = doc[end]
  if (a === undefined && b === undefined) return
  if ((a === '' || a === undefined) !== (b === '' || b === undefined)) {
    errors.push({ path: `/${a ? end : start}`, message: `${start} and ${end} must both be set or both be empty` })
  }
}

function uniqueSorted<T>(values: T[], compare?: (a: T, b: T) => number): T[] {
  return [...new Set(values)].sort(compare)
}

const SPECS: Record<string, KeySpec> = {
  polling_config: {
    schema: PollingConfig,
    check(doc, errors) {
      const start = doc.vacation_start
      const end = doc.vacation_end
      for (const field of ['vacation_start', 'vacation_end'] as const) {
        const v = doc[field]
        if (typeof v === 'string' && Number.isNaN(Date.parse(v))) {
          errors.push({ path: `/${field}`, message: 'must be a valid ISO date' })
        }
      }
      if (typeof start === 'string' && typeof end === 'string' && Date.parse(start) > Date.parse(end)) {
        errors.push({ path: '/vacation_start', message: 'must not be after vacation_end' })
      }
    },
    normalize(doc) {
      const out = { ...doc }
      if (Array.isArray(doc.active_days)) out.active_days = uniqueSorted(doc.active_days as number[], (a, b) => a - b)
      const senders = doc.sender_of_interest_for_polling
      if (Array.isArray(senders)) {
        out.sender_of_interest_for_polling = [...new Set((senders as string[]).map((s) => s.toLowerCase()))]
      }
      return out
    },
  },
  webhook_config: {
    schema: WebhookConfig,
    check(doc, errors) {
      const url = doc.webhook_url
      if (typeof url === 'string' && url !== '' && !isHttpsUrl(url)) {
        errors.push({ path: '/webhook_url', message: 'must be empty or an https:// URL of at least 10 characters' })
      }
      const days = doc.absence_pause_days
      if (doc.absence_pause_enabled === true && (!Array.isArray(days) || days.length === 0)) {
        errors.push({ path: '/absence_pause_days', message: 'needs at least one day when absence_pause_enabled' })
      }
      bothOrNeither(doc, errors, 'webhook_time_start', 'webhook_time_end')
      bothOrNeither(doc, errors, 'global_time_start', 'global_time_end')
    },
  },
  processing_prefs: { schema: ProcessingPrefs },
  runtime_flags: { schema: RuntimeFlags, emptyAllowed: true },
  routing_rules: {
    schema: RoutingRules,
    emptyAllowed: true,
    check(doc, errors) {
      const rules = Array.isArray(doc.rules) ? (doc.rules as unknown[]) : []
      rules.forEach((rule, i) => {
        const { conditions, actions } = (rule ?? {}) as { conditions?: unknown; actions?: { webhook_url?: unknown } }
        if (Array.isArray(conditions)) {
          conditions.forEach((c: { operator?: unknown; value?: unknown }, j) => {
            if (c?.operator !== 'regex' || typeof c.value !== 'string') return
            const path = `/rules/${i}/conditions/${j}/value`
            try {
              new RegExp(c.value)
            } catch {
              errors.push({ path, message: 'must be a valid regular expression' })
              return
            }
            // The legacy app runs these on every e-mail: the check Fastify's router uses (star height).
            if (!isSafeRegex(c.value))
              errors.push({ path, message: 'must not nest repetitions (catastrophic backtracking)' })
          })
        }
        const url = actions?.webhook_url
        if (typeof url === 'string' && !isHttpsUrl(url)) {
          errors.push({
            path: `/rules/${i}/actions/webhook_url`,
            message: 'must be an https URL with a dot in the host',
          })
        }
      })
    },
  },
  magic_link_tokens: { schema: MagicLinkTokens, secret: true },
  webhook_time_window: {
    schema: WebhookTimeWindow,
    check: (doc, errors) => bothOrNeither(doc, errors, 'start', 'end'),
  },
}

/** A Map, not an object: a key named `constructor` or `__proto__` must not find Object.prototype's members. */
export const BUILTIN_KEYS: ReadonlyMap<string, KeySpec> = new Map(Object.entries(SPECS))

function isHttpsUrl(value: string): boolean {
  if (value.length < 10) return false
  try {
    const url = new URL(value)
    return url.protocol === 'https:' && url.hostname.includes('.')
  } catch {
    return false
  }
}
