// The built-in config keys and their rules (docs/keys.md). The TypeBox schema checks shapes; `check` adds the rules that
// span fields; `normalize` gives the stored form. Writes, verify and migrate all use these.
import { isIP } from 'node:net'
import { type TSchema, Type } from 'typebox'
import type { ConfigDocument } from '../../stores/layer.js'
import type { ErrorDetail } from '../errors.js'
import { checkPythonRegex } from './python-regex.js'
import { hostOf, makeWebhookUrl, staticWebhookProblem } from './webhook-url.js'

export interface KeySpec {
  schema: TSchema
  /** Rules the schema cannot say (cross-field, regex compiles); runs even when the shape is wrong, so be defensive. */
  check?: (doc: ConfigDocument, errors: ErrorDetail[]) => void
  normalize?: (doc: ConfigDocument) => ConfigDocument
  /** An empty document is a valid value (verify). */
  emptyAllowed?: boolean
  /** Holds credentials: reading it needs admin. */
  secret?: boolean
  /** The https URL a write must have resolved (webhook_config's target), when the document names one. */
  resolvedUrl?: (doc: ConfigDocument) => string | undefined
  /** What the legacy app makes of a stored document, where that can differ from the document (runtime_flags). */
  legacyReading?: (doc: ConfigDocument) => ConfigDocument
  /** Why the legacy app no longer needs the key in the store: verify checks it when a layer holds it, and does not
   * call it missing otherwise (its scripts/check_config_store.py KEY_CHOICES leave it out). */
  retired?: string
}

// Every pattern here runs in time linear in its input (no two adjacent repetitions that can match the same text),
// and every string has a bound: a body of CONFIG_MAX_BYTES must cost milliseconds to check, never seconds.
const Bool = Type.Boolean()
const Int = (minimum: number, maximum: number) => Type.Integer({ minimum, maximum })
const Text = (maxLength: number) => Type.String({ maxLength })
const StringList = Type.Array(Text(1024))
// `utils.time_helpers.parse_time_hhmm`: H:MM or HH:MM, `h` or `H` for the colon, spaces around; stored trimmed.
const Time = Type.String({
  pattern: '^\\s*$|^\\s*(?:[01]?[0-9]|2[0-3])[:hH][0-5][0-9]\\s*$',
  maxLength: 32,
  description: 'H:MM, HH:MM, HHhMM or HHHMM (stored trimmed), or empty',
})
const ClearedTime = Type.Union([Time, Type.Null()], { description: 'a time, empty, or null (a cleared window)' })
const IsoDate = Type.Union([Type.String({ pattern: '^\\d{4}-\\d{2}-\\d{2}', maxLength: 64 }), Type.Null()])
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
  webhook_url: Type.Optional(
    Type.Union([Text(2048), Type.Null()], {
      description:
        'an https URL, a Make.com token or <token>@hook.eu2.make.com (stored as the URL); empty or null: none',
    }),
  ),
  webhook_ssl_verify: Type.Optional(Bool),
  webhook_sending_enabled: Type.Optional(Bool),
  webhook_delivery_mode: Type.Optional(
    Type.String({
      pattern: '^\\s*(?:[Jj][Ss][Oo][Nn]|[Ff][Oo][Rr][Mm])\\s*$',
      maxLength: 64,
      description: 'json or form (stored lowercase)',
    }),
  ),
  webhook_fallback_on_415: Type.Optional(Bool),
  absence_pause_enabled: Type.Optional(Bool),
  absence_pause_days: Type.Optional(Type.Array(Type.Enum(WEEKDAYS))),
  webhook_time_start: Type.Optional(Time),
  webhook_time_end: Type.Optional(Time),
  global_time_start: Type.Optional(ClearedTime),
  global_time_end: Type.Optional(ClearedTime),
})

// Python's int() of a number (toward zero: 2.5 is 2) or of a string of digits ("3", " +3 ", "1_000").
const PyInt = Type.Union(
  // Underscores only between digits, as int() reads them: checked by processing_prefs' check (no nested repetition).
  [Type.Number(), Type.String({ pattern: '^\\s*[+-]?[0-9][0-9_]*\\s*$', maxLength: 64 })],
  {
    description: 'a number or a string of digits, stored as Python int() makes it: 2.5 as 2, "3" as 3',
  },
)

/** Python's int() of a value PyInt accepts. */
export function pyInt(value: number | string): number {
  return typeof value === 'number' ? Math.trunc(value) || 0 : Number(value.trim().replaceAll('_', ''))
}

export const ProcessingPrefs = Type.Object({
  exclude_keywords: Type.Optional(StringList),
  exclude_keywords_recadrage: Type.Optional(StringList),
  exclude_keywords_autorepondeur: Type.Optional(StringList),
  require_attachments: Type.Optional(Bool),
  notify_on_failure: Type.Optional(Bool),
  mirror_media_to_custom: Type.Optional(Bool),
  max_email_size_mb: Type.Optional(Type.Union([PyInt, Type.Null()])),
  sender_priority: Type.Optional(
    Type.Record(
      Type.String({ maxLength: 320 }),
      Type.String({
        pattern: '^\\s*(?:[Hh][Ii][Gg][Hh]|[Mm][Ee][Dd][Ii][Uu][Mm]|[Ll][Oo][Ww])\\s*$',
        maxLength: 64,
        description: 'high, medium or low (stored lowercase)',
      }),
    ),
  ),
  retry_count: Type.Optional(PyInt),
  retry_delay_sec: Type.Optional(PyInt),
  webhook_timeout_sec: Type.Optional(PyInt),
  rate_limit_per_hour: Type.Optional(PyInt),
})

/** The bounds `validate_processing_prefs` checks after `int()`; max_email_size_mb must be above 0. */
const PREF_BOUNDS: Record<string, [number, number]> = {
  max_email_size_mb: [1, Number.MAX_SAFE_INTEGER],
  retry_count: [0, 10],
  retry_delay_sec: [0, 600],
  webhook_timeout_sec: [1, 300],
  rate_limit_per_hour: [0, 100_000],
}

/** The flags the legacy RuntimeFlagsService knows: it reads only these, each as Python's bool() of its value. */
export const RUNTIME_FLAGS = ['disable_email_id_dedup', 'allow_custom_webhook_without_links', 'gmail_ingress_enabled']

export const RuntimeFlags = Type.Object(Object.fromEntries(RUNTIME_FLAGS.map((flag) => [flag, Type.Optional(Bool)])), {
  additionalProperties: false,
})

/** Python's truth value of a JSON value. */
const truthy = (v: unknown) =>
  !(
    v === false ||
    v === 0 ||
    v === '' ||
    v === null ||
    (Array.isArray(v) && v.length === 0) ||
    (typeof v === 'object' && v !== null && Object.keys(v).length === 0)
  )

const Condition = Type.Object({
  field: Type.Enum(['sender', 'subject', 'body']),
  operator: Type.Enum(['contains', 'equals', 'regex']),
  // The legacy RoutingRulesService drops the whole document for a value that is empty once stripped.
  value: Type.String({
    maxLength: 1024,
    pattern: '\\S',
    description:
      'not blank; stored trimmed. A regex: at most 200 characters, in the dialect of Python re (docs/keys.md)',
  }),
  case_sensitive: Bool,
})

/** `MAX_REGEX_LENGTH` of the legacy RoutingRulesService, counted once the value is trimmed. */
export const MAX_REGEX_LENGTH = 200
/** The quantifiers a pattern may hold, as the check Fastify's router uses (safe-regex2) counts them. */
const MAX_QUANTIFIERS = 25

/** Where a JavaScript habit meets Python's refusal, what to write instead. */
function dialectHint(message: string): string {
  if (/^unknown extension \?<[^=!]/.test(message)) return ': a named group is (?P<name>…) in Python'
  if (message.startsWith('bad escape \\k')) return ': a named back-reference is (?P=name) in Python'
  if (/^bad escape \\[pP]/.test(message)) return ": Python's re has no Unicode property classes"
  if (message.startsWith('look-behind requires')) return ": Python's look-behinds must have a fixed width"
  return ''
}

/** Why the legacy app would refuse a regex condition (and then drop every rule), or undefined. */
export function regexProblem(value: string): string | undefined {
  const pattern = value.trim()
  if (pattern.length > MAX_REGEX_LENGTH)
    return `must be at most ${MAX_REGEX_LENGTH} characters once trimmed (it has ${pattern.length}): the legacy app refuses a longer regex, and then drops every rule`
  const checked = checkPythonRegex(pattern)
  if (!checked.ok)
    return `is not a regex Python's re compiles (${checked.message}${dialectHint(checked.message)}): the legacy app would drop every rule`
  // The legacy app runs these on every e-mail: the check Fastify's router uses (star height, safe-regex2).
  if (checked.starHeight > 1 || checked.quantifiers > MAX_QUANTIFIERS)
    return 'must not nest repetitions (catastrophic backtracking)'
  return undefined
}

export const RoutingRules = Type.Object({
  rules: Type.Array(
    Type.Object({
      id: Type.String({ minLength: 1, maxLength: 128 }),
      // Empty gets a default name from the legacy app; blank (spaces only) makes it drop every rule.
      name: Type.String({ maxLength: 256, pattern: '^$|\\S' }),
      conditions: Type.Array(Condition, { minItems: 1 }),
      actions: Type.Object({
        webhook_url: Type.String({
          minLength: 1,
          maxLength: 2048,
          description: 'an https URL, a Make.com token or <token>@hook.eu2.make.com (stored as the URL)',
        }),
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

/** A time field that holds no time: absent, null, or blank. */
const noTime = (v: unknown) => v === undefined || v === null || (typeof v === 'string' && v.trim() === '')

function bothOrNeither(doc: ConfigDocument, errors: ErrorDetail[], start: string, end: string): void {
  if (noTime(doc[start]) !== noTime(doc[end])) {
    errors.push({
      path: `/${noTime(doc[start]) ? start : end}`,
      message: `${start} and ${end} must both be set or both be empty`,
    })
  }
}

/** The fields' strings trimmed, as the legacy routes store them. */
function trimmed(doc: ConfigDocument, fields: string[]): ConfigDocument {
  const out = { ...doc }
  for (const f of fields) if (typeof doc[f] === 'string') out[f] = (doc[f] as string).trim()
  return out
}

const TIME_FIELDS = ['webhook_time_start', 'webhook_time_end', 'global_time_start', 'global_time_end']

function uniqueSorted<T>(values: T[], compare?: (a: T, b: T) => number): T[] {
  return [...new Set(values)].sort(compare)
}

const SPECS: Record<string, KeySpec> = {
  polling_config: {
    schema: PollingConfig,
    retired: 'retired by the legacy app: only its migrate script reads it',
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
      if (typeof url === 'string' && url.trim() !== '') {
        const problem = staticWebhookProblem(makeWebhookUrl(url))
        if (problem !== undefined) errors.push({ path: '/webhook_url', message: problem })
      }
      const days = doc.absence_pause_days
      if (doc.absence_pause_enabled === true && (!Array.isArray(days) || days.length === 0)) {
        errors.push({ path: '/absence_pause_days', message: 'needs at least one day when absence_pause_enabled' })
      }
      bothOrNeither(doc, errors, 'webhook_time_start', 'webhook_time_end')
      bothOrNeither(doc, errors, 'global_time_start', 'global_time_end')
    },
    // As the legacy service stores them: the Make.com form expanded, the mode lowercase, times trimmed.
    normalize(doc) {
      const out = trimmed(doc, TIME_FIELDS)
      if (typeof doc.webhook_url === 'string') out.webhook_url = makeWebhookUrl(doc.webhook_url) ?? ''
      if (typeof doc.webhook_delivery_mode === 'string')
        out.webhook_delivery_mode = doc.webhook_delivery_mode.trim().toLowerCase()
      return out
    },
    resolvedUrl(doc) {
      if (typeof doc.webhook_url !== 'string' || doc.webhook_url.trim() === '') return undefined
      const url = makeWebhookUrl(doc.webhook_url)
      // A host name only: a literal address needs no resolving, and what the static rules refuse is refused anyway.
      if (url === undefined || staticWebhookProblem(url) !== undefined) return undefined
      return isIP(hostOf(url) as string) === 0 ? url : undefined
    },
  },
  processing_prefs: {
    schema: ProcessingPrefs,
    check(doc, errors) {
      for (const [field, [min, max]] of Object.entries(PREF_BOUNDS)) {
        const v = doc[field]
        if (typeof v !== 'number' && typeof v !== 'string') continue
        if (typeof v === 'string' && /__|_\s*$/.test(v)) {
          errors.push({
            path: `/${field}`,
            message: `is not an integer Python's int() reads (got ${JSON.stringify(v)})`,
          })
          continue
        }
        const n = pyInt(v)
        if (n < min || n > max)
          errors.push({
            path: `/${field}`,
            message: `must be ${min}..${max} once made an integer (int() makes ${JSON.stringify(v)} ${n})`,
          })
      }
    },
    // As `validate_processing_prefs` stores them: integers through int(), sender_priority's addresses and levels
    // lowercase and trimmed, exclude_keywords trimmed (an empty one dropped).
    normalize(doc) {
      const out = { ...doc }
      for (const field of Object.keys(PREF_BOUNDS)) {
        const v = doc[field]
        if (typeof v === 'number' || typeof v === 'string') out[field] = pyInt(v)
      }
      const sp = doc.sender_priority
      if (typeof sp === 'object' && sp !== null)
        out.sender_priority = Object.fromEntries(
          Object.entries(sp as Record<string, string>).map(([k, v]) => [
            k.trim().toLowerCase(),
            v.trim().toLowerCase(),
          ]),
        )
      if (Array.isArray(doc.exclude_keywords))
        out.exclude_keywords = (doc.exclude_keywords as string[]).filter((k) => k !== '').map((k) => k.trim())
      return out
    },
  },
  runtime_flags: {
    schema: RuntimeFlags,
    emptyAllowed: true,
    legacyReading: (doc) =>
      Object.fromEntries(RUNTIME_FLAGS.filter((f) => Object.hasOwn(doc, f)).map((f) => [f, truthy(doc[f])])),
  },
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
            const problem = regexProblem(c.value)
            if (problem !== undefined) errors.push({ path: `/rules/${i}/conditions/${j}/value`, message: problem })
          })
        }
        // `_validate_actions`: the Make.com form expanded, then https:// (hosts are not checked: docs/keys.md).
        const url = actions?.webhook_url
        if (typeof url === 'string' && !(makeWebhookUrl(url) ?? url.trim()).startsWith('https://')) {
          errors.push({
            path: `/rules/${i}/actions/webhook_url`,
            message: 'must be an https:// URL, a Make.com token or <token>@hook.eu2.make.com',
          })
        }
      })
    },
    // As `_normalize_rules` stores them: condition values trimmed, the Make.com form expanded.
    normalize(doc) {
      if (!Array.isArray(doc.rules)) return doc
      const rules = (doc.rules as Array<Record<string, unknown>>).map((rule) => {
        const conditions = (rule.conditions as Array<Record<string, unknown>>).map((c) => ({
          ...c,
          value: (c.value as string).trim(),
        }))
        const actions = rule.actions as Record<string, unknown>
        const url = actions.webhook_url as string
        return { ...rule, conditions, actions: { ...actions, webhook_url: makeWebhookUrl(url) ?? url.trim() } }
      })
      return { ...doc, rules }
    },
  },
  magic_link_tokens: { schema: MagicLinkTokens, secret: true },
  webhook_time_window: {
    schema: WebhookTimeWindow,
    retired: 'the legacy app keeps it in a file of its own, not in the store',
    check: (doc, errors) => bothOrNeither(doc, errors, 'start', 'end'),
    normalize: (doc) => trimmed(doc, ['start', 'end']),
  },
}

/** A Map, not an object: a key named `constructor` or `__proto__` must not find Object.prototype's members. */
export const BUILTIN_KEYS: ReadonlyMap<string, KeySpec> = new Map(Object.entries(SPECS))
