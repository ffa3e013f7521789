// Validation of config documents against the key's schema (docs/keys.md): built-in keys, operator schemas dropped into
// CONFIG_SCHEMAS_DIR as `<key>.schema.json`, or free-form. Every error is reported with its JSON pointer path.

import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import isSafeRegex from 'safe-regex2'
import type { TSchema } from 'typebox'
import { Compile, type Validator } from 'typebox/compile'
import type { ConfigDocument } from '../../stores/layer.js'
import { isValidKey } from '../../stores/layer.js'
import { AppError, ConfigError, type ErrorDetail } from '../errors.js'
import { BUILTIN_KEYS, type KeySpec } from './key-schemas.js'
import type { SchemaKind } from './schemas.js'
import type { WebhookHostCheck } from './webhook-dns.js'

export type ValidationResult = { ok: true; doc: ConfigDocument } | { ok: false; errors: ErrorDetail[] }

export interface DocumentValidator {
  kind(key: string): SchemaKind
  /** Keys that have a schema (built-in and custom). */
  schemaKeys(): string[]
  spec(key: string): KeySpec | undefined
  /** Holds credentials, or is another name of a key that does (a legacy file name): reading it needs admin. */
  isSecret(key: string): boolean
  /** The key that `name` is another name of (`magic_links` → `magic_link_tokens`), or undefined. */
  aliasOf(name: string): string | undefined
  /** Checks a document (its `_updated_at` is ignored) and returns its stored form, without `_updated_at`. */
  validate(key: string, doc: ConfigDocument): ValidationResult
  /** False when CONFIG_STORE_UNKNOWN_KEYS=reject and the key has no schema. */
  accepts(key: string): boolean
  /** Undoes PHP's `json_decode(…, true)` where the key's schema expects an object: `[]` → `{}`, a list → `{"0": …}`. */
  fromPhp(key: string, doc: ConfigDocument): ConfigDocument
  /** The checks a write makes beyond validity (webhook_config's host resolved, as the legacy app does on save): the
   * problems with `doc` (a whole document, or a merge patch), none when it passes. */
  admit(key: string, doc: ConfigDocument): Promise<ErrorDetail[]>
}

type SchemaNode = {
  type?: unknown
  properties?: Record<string, SchemaNode>
  patternProperties?: Record<string, SchemaNode>
  additionalProperties?: unknown
  items?: unknown
  anyOf?: SchemaNode[]
}

/** `value` reshaped where `schema` wants an object and PHP gave an array (never deeper than MAX_DEPTH: every stored
 * text was checked by the shape limits before it was parsed). */
function objectsBack(schema: SchemaNode | undefined, value: unknown): unknown {
  if (schema === undefined || typeof schema !== 'object') return value
  const object = schema.anyOf?.find((s) => s.type === 'object') ?? (schema.type === 'object' ? schema : undefined)
  if (object !== undefined && (Array.isArray(value) || (typeof value === 'object' && value !== null))) {
    const entries = Array.isArray(value) ? value.map((v, i) => [String(i), v] as const) : Object.entries(value)
    const out: Record<string, unknown> = Object.create(null)
    const pattern = Object.values(object.patternProperties ?? {})[0]
    const extra =
      typeof object.additionalProperties === 'object' ? (object.additionalProperties as SchemaNode) : undefined
    for (const [name, v] of entries) {
      const child =
        object.properties && Object.hasOwn(object.properties, name) ? object.properties[name] : (pattern ?? extra)
      out[name] = objectsBack(child, v)
    }
    return { ...out }
  }
  const array = schema.anyOf?.find((s) => s.type === 'array') ?? (schema.type === 'array' ? schema : undefined)
  if (array !== undefined && Array.isArray(value)) return value.map((v) => objectsBack(array.items as SchemaNode, v))
  return value
}

const FORBIDDEN_NAMES = new Set(['__proto__', 'constructor'])

function forbiddenNames(value: unknown, path: string, errors: ErrorDetail[]): void {
  if (typeof value !== 'object' || value === null) return
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const item: unknown = value[i]
      if (typeof item === 'object' && item !== null) forbiddenNames(item, `${path}/${i}`, errors) // scalars: no path built
    }
    return
  }
  for (const name of Object.keys(value)) {
    const child = (value as Record<string, unknown>)[name]
    if (FORBIDDEN_NAMES.has(name))
      errors.push({ path: `${path}/${name}`, message: `the property name "${name}" is not allowed` })
    if (typeof child === 'object' && child !== null) forbiddenNames(child, `${path}/${name}`, errors)
  }
}

type SchemaError = ReturnType<Validator['Errors']>[number]

/** Schema errors in words a person can act on: one per path, unions collapsed, extra properties named. */
function describe(raw: SchemaError[]): ErrorDetail[] {
  const unions = new Map<string, string[]>()
  for (const e of raw) if (e.keyword === 'anyOf') unions.set(e.instancePath, [])
  const out: ErrorDetail[] = []
  for (const e of raw) {
    const params = e.params as { requiredProperties?: string[]; allowedValues?: unknown[] }
    const path = e.instancePath || '/'
    if (e.keyword === 'additionalProperties' || e.keyword === 'anyOf') continue
    let message = e.message
    if (e.keyword === 'required' && params.requiredProperties) {
      for (const name of params.requiredProperties)
        out.push({ path: `${e.instancePath}/${name}`, message: 'is required' })
      continue
    }
    if (e.keyword === 'boolean') message = 'is not an allowed property'
    if (e.keyword === 'enum' && params.allowedValues) message = `must be one of: ${params.allowedValues.join(', ')}`
    const union = unions.get(e.instancePath)
    if (union !== undefined) union.push(message)
    else out.push({ path, message })
  }
  for (const [path, messages] of unions) out.push({ path: path || '/', message: [...new Set(messages)].join(', or ') })
  return out
}

/** Under a secret key the first name of a path is a credential's id (`/mlt_…/single_use`): it is never shown. */
function redacted(e: ErrorDetail): ErrorDetail {
  return { ...e, path: e.path.replace(/^\/[^/]+/, '/*') }
}

function firstPerPath(errors: ErrorDetail[]): ErrorDetail[] {
  const seen = new Set<string>()
  return errors.filter((e) => !seen.has(e.path) && seen.add(e.path))
}

function loadCustomSchemas(dir: string | undefined): Map<string, KeySpec> {
  const specs = new Map<string, KeySpec>()
  if (!dir) return specs
  let names: string[]
  try {
    names = readdirSync(dir)
  } catch (err) {
    throw new ConfigError(`CONFIG_SCHEMAS_DIR: cannot read ${dir} (${(err as Error).message})`)
  }
  for (const name of names.filter((n) => n.endsWith('.schema.json')).sort()) {
    const key = name.slice(0, -'.schema.json'.length)
    if (!isValidKey(key)) throw new ConfigError(`CONFIG_SCHEMAS_DIR: ${name} does not name a valid config key`)
    if (BUILTIN_KEYS.has(key))
      throw new ConfigError(`CONFIG_SCHEMAS_DIR: ${name} would replace the built-in schema of ${key}`)
    let schema: unknown
    try {
      schema = JSON.parse(readFileSync(join(dir, name), 'utf8'))
      Compile(schema as TSchema)
    } catch (err) {
      throw new ConfigError(`CONFIG_SCHEMAS_DIR: ${name} is not a usable JSON Schema (${(err as Error).message})`)
    }
    const unsafe = unsafePattern(schema, '')
    if (unsafe !== undefined)
      throw new ConfigError(
        `CONFIG_SCHEMAS_DIR: ${name}: the pattern ${JSON.stringify(unsafe.pattern)} at ${unsafe.path} could take exponential time on a crafted value (a repetition inside a repetition, or more than 25): every write of ${key} would run it`,
      )
    specs.set(key, { schema: schema as TSchema })
  }
  return specs
}

/** The first regular expression of an operator's schema (`pattern`, a `patternProperties` name) that fails the guard
 * the built-in schemas pass: the star-height check Fastify's router uses (safe-regex2). */
function unsafePattern(node: unknown, path: string): { pattern: string; path: string } | undefined {
  if (typeof node !== 'object' || node === null) return undefined
  const here = node as Record<string, unknown>
  if (typeof here.pattern === 'string' && !isSafeRegex(here.pattern))
    return { pattern: here.pattern, path: `${path}/pattern` }
  const props = here.patternProperties
  if (typeof props === 'object' && props !== null)
    for (const p of Object.keys(props)) if (!isSafeRegex(p)) return { pattern: p, path: `${path}/patternProperties` }
  for (const [name, child] of Object.entries(here)) {
    const found = unsafePattern(child, `${path}/${name}`)
    if (found !== undefined) return found
  }
  return undefined
}

export function createValidator(opts: {
  schemasDir?: string | undefined
  unknownKeys: 'allow' | 'reject'
  /** Other names of a key (legacy file names that the files layer reads it from): alias → key. */
  aliases?: ReadonlyMap<string, string>
  /** Resolves the host of a webhook URL a write names (CONFIG_WEBHOOK_URL_CHECK); none: not resolved. */
  webhookHosts?: WebhookHostCheck
}) {
  const custom = loadCustomSchemas(opts.schemasDir)
  const aliases = opts.aliases ?? new Map<string, string>()
  const compiled = new Map<string, Validator>()
  const spec = (key: string): KeySpec | undefined => BUILTIN_KEYS.get(key) ?? custom.get(key)
  const secrets = new Set([...BUILTIN_KEYS].filter(([, s]) => s.secret).map(([k]) => k))

  function compiledFor(key: string, s: KeySpec): Validator {
    let v = compiled.get(key)
    if (v === undefined) {
      v = Compile(s.schema)
      compiled.set(key, v)
    }
    return v
  }

  const validator: DocumentValidator = {
    kind: (key) => (BUILTIN_KEYS.has(key) ? 'builtin' : custom.has(key) ? 'custom' : 'none'),
    schemaKeys: () => [...BUILTIN_KEYS.keys(), ...custom.keys()].sort(),
    spec,
    isSecret: (key) => secrets.has(aliases.get(key) ?? key),
    aliasOf: (name) => aliases.get(name),
    accepts: (key) => opts.unknownKeys === 'allow' || spec(key) !== undefined,
    async admit(key, doc) {
      const url = spec(key)?.resolvedUrl?.(doc)
      if (url === undefined || opts.webhookHosts === undefined) return []
      const problem = await opts.webhookHosts.problem(url)
      return problem === undefined ? [] : [{ path: '/webhook_url', message: problem }]
    },
    fromPhp(key, doc) {
      const s = spec(key)
      return s === undefined ? doc : (objectsBack(s.schema as SchemaNode, doc) as ConfigDocument)
    },

    validate(key, input) {
      const { _updated_at: _, ...doc } = input
      const errors: ErrorDetail[] = []
      forbiddenNames(doc, '', errors)
      const s = spec(key)
      if (s !== undefined) {
        const schema = compiledFor(key, s)
        if (!schema.Check(doc)) errors.push(...describe(schema.Errors(doc)))
        s.check?.(doc, errors)
      }
      if (errors.length > 0) return { ok: false, errors: firstPerPath(s?.secret ? errors.map(redacted) : errors) }
      return { ok: true, doc: s?.normalize ? s.normalize(doc) : doc }
    },
  }
  return validator
}

/** The validated stored form, or a VALIDATION_FAILED error listing every problem. */
export function validOrThrow(validator: DocumentValidator, key: string, doc: ConfigDocument): ConfigDocument {
  const result = validator.validate(key, doc)
  if (!result.ok) {
    throw new AppError('VALIDATION_FAILED', `${key} does not match its schema`, { details: result.errors })
  }
  return result.doc
}
