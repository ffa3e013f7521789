// Verify (docs/operations.md "Verify"): every configured layer read directly, never through the fallback chain (docs/legacy.md, defect 4),
// so "OK" means the effective value really exists, is valid and non-empty — and drift between layers is named.
import { readFile } from 'node:fs/promises'
import { basename } from 'node:path'
import type { FileLayer } from '../../stores/file-layer.js'
import { isValidKey, LAYER_ORDER, type LayerName, parseDocument } from '../../stores/layer.js'
import { AppError, type ErrorDetail } from '../errors.js'
import { canonicalHash, compareStamps } from '../store/canonical.js'
import type { ConfigStore } from '../store/layered-store.js'
import type { DocumentValidator } from '../store/validation.js'
import type { LayerCheck, VerifyReply, VerifyResult } from './schemas.js'

/** The keys to check: those asked for (any valid key name, de-duplicated in order; a malformed one is a 400), or by
 * default every key with a schema that the legacy app still requires and every key any layer holds, that the caller
 * may read (a retired key is checked when a layer holds it). */
export function selectKeys(
  validator: DocumentValidator,
  requested: string[] | undefined,
  mayRead: (key: string) => boolean = () => true,
  present: Iterable<string> = [],
): string[] {
  if (requested === undefined || requested.length === 0)
    return [...new Set([...validator.schemaKeys().filter((k) => !validator.spec(k)?.retired), ...present])]
      .sort()
      .filter(mayRead)
  const malformed = requested.filter((k) => !isValidKey(k))
  if (malformed.length > 0) {
    throw new AppError('BAD_REQUEST', `not valid key names: ${malformed.join(', ')} (keys match ^[a-z0-9_-]{1,128}$)`, {
      details: malformed.map((k) => ({ path: k, message: 'is not a valid key name' })),
    })
  }
  return [...new Set(requested)]
}

/** Every key the layers hold, and the layers that could not list theirs. */
export async function presentKeys(store: ConfigStore): Promise<{ keys: Set<string>; unreachable: LayerName[] }> {
  const keys = new Set<string>()
  const unreachable: LayerName[] = []
  await Promise.all(
    store.layers().map(async (l) => {
      try {
        for (const k of await l.listKeys()) keys.add(k)
      } catch {
        unreachable.push(l.name)
      }
    }),
  )
  return { keys, unreachable }
}

interface VerifyOptions {
  keys?: string[] | undefined
  raw?: boolean | undefined
  failOnDrift?: boolean | undefined
  /** May see the payload of secret keys. */
  admin: boolean
  /** The default list is narrowed to these (a caller's key limits). */
  mayRead?: (key: string) => boolean
}

export async function verifyConfigStore(store: ConfigStore, options: VerifyOptions): Promise<VerifyReply> {
  const present = await presentKeys(store)
  const keys = selectKeys(store.validator, options.keys, options.mayRead, present.keys)
  const results = await Promise.all(keys.map((key) => verifyKey(store, key, options)))
  // A configured layer that could not be reached leaves the check incomplete: never "all OK" then.
  const unreachable = new Set<LayerName>(present.unreachable)
  for (const r of results)
    for (const [name, c] of Object.entries(r.layers)) if (c.state === 'unavailable') unreachable.add(name as LayerName)
  const ok = unreachable.size === 0 && results.every((r) => r.valid && (!options.failOnDrift || r.drift.length === 0))
  return {
    status: 'success',
    success: ok,
    ok,
    exit_code: ok ? 0 : 1,
    keys,
    unreachable: [...unreachable].sort(),
    results,
    timestamp: new Date().toISOString(),
  }
}

async function verifyKey(store: ConfigStore, key: string, options: VerifyOptions): Promise<VerifyResult> {
  const spec = store.validator.spec(key)
  const configured = new Map(store.layers().map((l) => [l.name, l]))
  const layers: Record<string, LayerCheck> = {}
  const docs = new Map<LayerName, Record<string, unknown>>()

  async function check(name: LayerName): Promise<LayerCheck> {
    const layer = configured.get(name)
    const none = { valid: null, errors: [], updated_at: null, sha256: null }
    if (layer === undefined) return { state: 'disabled', ...none }
    const read = await layer.get(key)
    if (read.state === 'absent') return { state: 'absent', ...none }
    if (read.state === 'unavailable') return { state: 'unavailable', ...none, reason: read.reason }
    const checked = store.validator.validate(key, read.doc)
    const errors = checked.ok ? [] : checked.errors
    const { _updated_at: _, ...content } = read.doc
    if (errors.length === 0 && Object.keys(content).length === 0 && !spec?.emptyAllowed) {
      errors.push({ path: '/', message: 'payload is empty' })
    }
    docs.set(name, read.doc)
    return {
      state: 'present',
      valid: errors.length === 0,
      errors,
      updated_at: typeof read.doc._updated_at === 'string' ? read.doc._updated_at : null,
      sha256: canonicalHash(read.doc),
    }
  }
  const checks = await Promise.all(LAYER_ORDER.map(check))
  LAYER_ORDER.forEach((name, i) => {
    layers[name] = checks[i] as LayerCheck
  })

  const order = store.layers().map((l) => l.name)
  const source = order.find((n) => layers[n]?.state === 'present') ?? null
  const effective = source === null ? undefined : layers[source]
  const down = order.filter((n) => layers[n]?.state === 'unavailable')
  const present = order.filter((n) => docs.has(n))

  const drift: VerifyResult['drift'] = []
  for (let i = 0; i < present.length; i++) {
    for (let j = i + 1; j < present.length; j++) {
      const [a, b] = [present[i] as LayerName, present[j] as LayerName]
      if (layers[a]?.sha256 === layers[b]?.sha256) continue
      const cmp = compareStamps(docs.get(a) as Record<string, unknown>, docs.get(b) as Record<string, unknown>)
      drift.push({ layers: [a, b], newer: cmp === 0 ? null : cmp > 0 ? a : b })
    }
  }

  const warnings: string[] = []
  const shadowed = await legacyFileDrift(store, key)
  if (shadowed !== undefined) {
    warnings.push(shadowed.warning)
    drift.push({ layers: ['files', 'files'], newer: null })
  }
  if (effective && effective.updated_at === null && key !== 'magic_link_tokens' && key !== 'runtime_flags') {
    warnings.push(`${source} copy has no _updated_at`)
  }
  if (spec?.retired && effective === undefined && down.length === 0) warnings.push(spec.retired)
  for (const n of present) {
    if (n !== source && layers[n]?.valid === false) warnings.push(`${n} copy is invalid: ${describe(layers[n].errors)}`)
  }
  for (const n of down) warnings.push(`${n} unavailable: ${layers[n]?.reason}`)

  // The legacy check's words (scripts/check_config_store.py at 69f59fd) where it has them.
  const empty = key === 'runtime_flags' ? 'empty (allowed, defaults applied)' : 'empty (allowed)'
  let message = 'OK'
  let status: VerifyResult['status'] = 'OK'
  if (effective === undefined) {
    if (down.length > 0) {
      status = 'INVALID'
      message = `not found in the layers that answered; ${down.join(', ')} unavailable`
    } else if (spec?.emptyAllowed) {
      message = empty // as the legacy check treats an absent routing_rules or runtime_flags
    } else {
      status = 'MISSING'
      message = 'payload is empty: not found in any layer'
    }
  } else if (!effective.valid) {
    status = 'INVALID'
    message = `${source}: ${describe(effective.errors)}`
    const reading = spec?.legacyReading?.(docs.get(source as LayerName) as Record<string, unknown>)
    if (reading !== undefined) message += `; the legacy app reads it as ${JSON.stringify(reading)}`
  } else if (spec?.emptyAllowed && isEmpty(docs.get(source as LayerName))) {
    message = empty
  } else if (effective.updated_at === null && key !== 'magic_link_tokens' && key !== 'runtime_flags') {
    message = 'missing _updated_at (tolerated, injected on next save)'
  }
  const valid = status === 'OK'
  const secretHidden = spec?.secret === true && !options.admin
  const summary = [
    source ? `served by ${source}` : 'not served',
    present.length > 0 ? `present in ${present.join(', ')}` : null,
    ...drift.map((d) => `drift ${d.layers.join('/')}${d.newer ? ` (${d.newer} newer)` : ''}`),
  ]
    .filter(Boolean)
    .join('; ')

  return {
    key,
    valid,
    status,
    message,
    summary,
    source,
    updated_at: effective?.updated_at ?? null,
    sha256: effective?.sha256 ?? null,
    layers,
    drift,
    warnings,
    errors: effective?.errors ?? [],
    payload_present: effective !== undefined,
    ...(options.raw && !secretHidden ? { payload: source ? (docs.get(source) ?? null) : null } : {}),
  }
}

/** magic_link_tokens may sit in two legacy files at once (MAGIC_LINK_TOKENS_FILE or magic_links.json, and
 * magic_link_tokens.json): only the first is served, so two that differ are drift. */
async function legacyFileDrift(store: ConfigStore, key: string): Promise<{ warning: string } | undefined> {
  const files = store.layers().find((l) => l.name === 'files') as FileLayer | undefined
  if (files === undefined || files.pathsOf(key).length < 2) return undefined
  const copies: Array<{ path: string; sha: string }> = []
  for (const path of files.pathsOf(key)) {
    const doc = parseDocument(await readFile(path, 'utf8').catch(() => ''))
    if (doc !== undefined) copies.push({ path, sha: canonicalHash(doc) })
  }
  const [served, ...others] = copies
  const differing = others.filter((c) => c.sha !== served?.sha)
  if (served === undefined || differing.length === 0) return undefined
  return {
    warning: `files: ${differing.map((c) => basename(c.path)).join(', ')} differ from ${basename(served.path)}, which is the one served`,
  }
}

/** A document with nothing but `_updated_at`, or with no rules (routing_rules). */
function isEmpty(doc: Record<string, unknown> | undefined): boolean {
  const { _updated_at: _, ...content } = doc ?? {}
  const values = Object.values(content)
  return values.length === 0 || (values.length === 1 && Array.isArray(content.rules) && content.rules.length === 0)
}

function describe(errors: ErrorDetail[]): string {
  return errors.map((e) => `${e.path} ${e.message}`).join('; ')
}
