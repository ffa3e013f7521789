// The layered store (store.md): reads walk the layer order and the first hit wins; writes go to the primary only and
// are refused when it is down; deletes reach every layer. `_updated_at` is stamped here, for every writer.
import type { FastifyBaseLogger as Logger } from 'fastify'
import {
  type ConfigDocument,
  type DeleteOutcome,
  isValidKey,
  type Layer,
  type LayerHealth,
  type LayerName,
} from '../stores/types.js'
import type { ConfigCache, Resolved } from './cache.js'
import { AppError, reasonOf } from './errors.js'
import type { Invalidation } from './invalidation.js'
import { type DocumentValidator, type SchemaKind, validOrThrow } from './validation.js'

export interface StoreOptions {
  layers: Layer[]
  validator: DocumentValidator
  cache: ConfigCache
  log: Logger
  invalidation?: Invalidation | undefined
  /** A write that would make more keys than this is refused (CONFIG_MAX_KEYS). */
  maxKeys?: number
}

export interface Written {
  key: string
  doc: ConfigDocument
  /** The document's JSON text, as written. */
  json: string
  source: LayerName
  updatedAt: string
}

export interface ListedKey {
  key: string
  source: LayerName | null
  updated_at: string | null
  schema: SchemaKind
}

/** A key that does not match the rule never becomes a file path or a Redis key (keys.md). */
function checkKey(key: string): void {
  if (!isValidKey(key))
    throw new AppError('INVALID_KEY', `invalid key ${JSON.stringify(key)}: it must match ^[a-z0-9_-]{1,128}$`)
}

const WARN_EVERY_MS = 10_000
/** A layer is probed for /ready at most once in this long; callers in between share the answer. */
const PROBE_EVERY_MS = 1000
/** How long a count of the keys, taken for the CONFIG_MAX_KEYS quota, is trusted. */
const KEY_COUNT_MS = 1000

export function createConfigStore({ layers, validator, cache, log, invalidation, maxKeys = 10_000 }: StoreOptions) {
  if (layers[0] === undefined) throw new Error('no store layer is configured')
  const primary: Layer = layers[0]
  const byName = new Map(layers.map((l) => [l.name, l]))
  /** Per layer: how many times it could not answer, since start-up (shown by /ready). */
  const unavailableCount: Record<string, number> = {}

  // One WARN line per layer and key and kind of event, then at most one every WARN_EVERY_MS with the number of
  // repeats in between: a layer that is down must not turn every read into log lines.
  const quiet = new Map<string, { until: number; repeats: number }>()
  function warn(id: string, fields: Record<string, unknown>, message: string): void {
    const now = Date.now()
    const seen = quiet.get(id)
    if (seen !== undefined && now < seen.until) {
      seen.repeats++
      return
    }
    log.warn(seen?.repeats ? { ...fields, repeats: seen.repeats } : fields, message)
    if (quiet.size >= 10_000) quiet.clear()
    quiet.set(id, { until: now + WARN_EVERY_MS, repeats: 0 })
  }

  function noteUnavailable(layer: LayerName, key: string, reason: string): void {
    unavailableCount[layer] = (unavailableCount[layer] ?? 0) + 1
    warn(`down:${layer}:${key}`, { layer, key, reason }, `${layer} layer unavailable for ${key}`)
  }

  function layer(name: LayerName): Layer {
    const found = byName.get(name)
    if (found === undefined) throw new AppError('BAD_REQUEST', `the ${name} layer is not configured`)
    return found
  }

  /** The effective value: the first layer that holds the key, in the configured order. A legacy file name of a key
   * (`magic_links`) reads that key. */
  async function read(name: string): Promise<Resolved> {
    const cached = cache.get(name)
    if (cached !== undefined) return cached
    checkKey(name)
    const key = validator.aliasOf(name) ?? name
    const epoch = cache.epoch
    const down: LayerName[] = []
    for (const l of layers) {
      const r = await l.get(key)
      if (r.state === 'hit') {
        if (down.length > 0)
          warn(`fallback:${l.name}:${key}`, { layer: l.name, key, down }, `served ${key} from ${l.name} (fallback)`)
        const resolved: Resolved = { key, json: r.json, source: l.name, updatedAt: r.updatedAt }
        cache.set(resolved, epoch)
        return resolved
      }
      if (r.state === 'unavailable') {
        noteUnavailable(l.name, key, r.reason)
        down.push(l.name)
      }
    }
    if (down.length > 0) {
      throw new AppError(
        'STORE_UNAVAILABLE',
        `${key} was not found in the layers that answered, and ${down.join(', ')} could not be reached`,
      )
    }
    throw new AppError('CONFIG_NOT_FOUND', `no layer holds ${key}`)
  }

  /** One layer only, never the fallback chain. */
  async function readFrom(name: LayerName, requested: string): Promise<Resolved> {
    checkKey(requested)
    const key = validator.aliasOf(requested) ?? requested
    const r = await layer(name).get(key)
    if (r.state === 'hit') return { key, json: r.json, source: name, updatedAt: r.updatedAt }
    if (r.state === 'absent') throw new AppError('CONFIG_NOT_FOUND', `the ${name} layer does not hold ${key}`)
    noteUnavailable(name, key, r.reason)
    throw new AppError('STORE_UNAVAILABLE', `the ${name} layer could not be reached`)
  }

  /** Validates, stamps and writes the whole document to the primary; 503 and nothing written when it is down. */
  async function write(key: string, input: ConfigDocument): Promise<Written> {
    const updatedAt = new Date().toISOString()
    return commit(key, { ...validOrThrow(validator, key, checkAccepted(key, input)), _updated_at: updatedAt })
  }

  /** Puts back an exported document as it was (its own `_updated_at` kept, stamped only when missing), validated. */
  async function restore(key: string, input: ConfigDocument): Promise<Written> {
    validOrThrow(validator, key, checkAccepted(key, input))
    return commit(
      key,
      typeof input._updated_at === 'string' ? input : { ...input, _updated_at: new Date().toISOString() },
    )
  }

  function checkAccepted(key: string, input: ConfigDocument): ConfigDocument {
    checkWritable(key)
    if (!validator.accepts(key)) {
      throw new AppError('INVALID_KEY', `${key} has no schema and CONFIG_STORE_UNKNOWN_KEYS=reject`)
    }
    return input
  }

  /** Valid, and not another name of a key: a write never replaces a secret through a legacy file name. */
  function checkWritable(key: string): void {
    checkKey(key)
    const target = validator.aliasOf(key)
    if (target !== undefined)
      throw new AppError('INVALID_KEY', `${key} is a legacy file name of ${target}; write or delete ${target} itself`)
  }

  // The CONFIG_MAX_KEYS quota. Keys known to exist need no count; a new key is counted against every layer's
  // listing (taken at most once a KEY_COUNT_MS). Several instances creating keys at the same moment may overshoot by
  // the writes in flight; the PHP API cannot list, so a PHP-only store is not counted.
  const existing = new Set<string>()
  let counted: { at: number; keys: Promise<Set<string>> } | undefined
  function allKeys(): Promise<Set<string>> {
    if (counted === undefined || Date.now() - counted.at > KEY_COUNT_MS) {
      const keys = Promise.all(layers.map((l) => l.listKeys().catch(() => []))).then((lists) => new Set(lists.flat()))
      counted = { at: Date.now(), keys }
    }
    return counted.keys
  }
  async function checkRoom(key: string): Promise<void> {
    if (existing.has(key)) return
    const keys = await allKeys()
    if (!keys.has(key) && keys.size >= maxKeys) {
      throw new AppError('QUOTA_EXCEEDED', `the store holds ${keys.size} keys, the most CONFIG_MAX_KEYS allows`)
    }
    if (existing.size < maxKeys) existing.add(key)
    keys.add(key)
  }

  async function commit(key: string, doc: ConfigDocument): Promise<Written> {
    await checkRoom(key)
    const json = JSON.stringify(doc)
    try {
      await primary.set(key, doc, json)
    } catch (err) {
      log.warn({ layer: primary.name, key, reason: reasonOf(err) }, `write of ${key} refused: primary down`)
      throw new AppError(
        'STORE_UNAVAILABLE',
        `the primary layer (${primary.name}) could not be reached; nothing was written`,
        { cause: err },
      )
    } finally {
      // Even a failed write may have landed (a timeout after the server applied it): never trust the old value.
      cache.invalidate(key)
    }
    // A Redis write reaches other instances through tracking; anything else is announced.
    if (primary.name !== 'redis') await invalidation?.announce(key)
    return { key, doc, json, source: primary.name, updatedAt: doc._updated_at as string }
  }

  /** JSON Merge Patch (RFC 7396) on the effective document, then written like a POST. */
  async function patch(key: string, mergePatch: ConfigDocument): Promise<Written> {
    checkWritable(key)
    const current = await read(key)
    return write(key, applyMergePatch(JSON.parse(current.json), mergePatch) as ConfigDocument)
  }

  async function remove(key: string): Promise<Record<string, DeleteOutcome>> {
    checkWritable(key)
    existing.delete(key)
    counted = undefined
    const done: Record<string, DeleteOutcome> = {}
    const down: string[] = []
    await Promise.all(
      layers.map(async (l) => {
        try {
          done[l.name] = await l.delete(key)
        } catch (err) {
          noteUnavailable(l.name, key, reasonOf(err))
          down.push(l.name)
        }
      }),
    )
    cache.invalidate(key)
    await invalidation?.announce(key)
    if (down.length > 0) {
      const details = [
        ...Object.entries(done).map(([path, message]) => ({ path, message })),
        ...down.map((path) => ({ path, message: 'unavailable' })),
      ]
      throw new AppError('STORE_UNAVAILABLE', `${key} could not be deleted from ${down.join(', ')}; retry the delete`, {
        details,
      })
    }
    if (Object.values(done).every((o) => o === 'absent'))
      throw new AppError('CONFIG_NOT_FOUND', `no layer holds ${key}`)
    return done
  }

  async function list(): Promise<ListedKey[]> {
    const names = new Set(validator.schemaKeys())
    for (const l of layers) {
      try {
        for (const k of await l.listKeys()) names.add(k)
      } catch (err) {
        noteUnavailable(l.name, '*', reasonOf(err))
      }
    }
    const listed = await Promise.all(
      [...names].sort().map(async (key): Promise<ListedKey | undefined> => {
        const schema = validator.kind(key)
        try {
          const r = await read(key)
          return { key, source: r.source, updated_at: r.updatedAt, schema }
        } catch {
          return schema === 'none' ? undefined : { key, source: null, updated_at: null, schema }
        }
      }),
    )
    return listed.filter((x) => x !== undefined)
  }

  // /ready is anonymous: however often it is called, each layer (the PHP host, with our token) is probed at most once
  // a PROBE_EVERY_MS, and callers in between share that probe.
  const probes = new Map<LayerName, { at: number; health: Promise<LayerHealth> }>()
  function probe(l: Layer): Promise<LayerHealth> {
    const last = probes.get(l.name)
    if (last !== undefined && Date.now() - last.at < PROBE_EVERY_MS) return last.health
    const health = l.health()
    probes.set(l.name, { at: Date.now(), health })
    return health
  }

  async function health(): Promise<Array<LayerHealth & { layer: LayerName }>> {
    return Promise.all(layers.map(async (l) => ({ layer: l.name, ...(await probe(l)) })))
  }

  return {
    layers,
    primary,
    validator,
    cache,
    layer,
    read,
    readFrom,
    write,
    restore,
    patch,
    remove,
    list,
    health,
    unavailableCount,
  }
}

export type ConfigStore = ReturnType<typeof createConfigStore>

export function applyMergePatch(target: unknown, patch: unknown): unknown {
  if (typeof patch !== 'object' || patch === null || Array.isArray(patch)) return patch
  // Null prototype: a member named `__proto__` is a member like any other, never the object's prototype.
  const out: Record<string, unknown> = Object.create(null)
  if (typeof target === 'object' && target !== null && !Array.isArray(target)) Object.assign(out, target)
  for (const [name, value] of Object.entries(patch)) {
    if (value === null) delete out[name]
    else out[name] = applyMergePatch(out[name], value)
  }
  return out
}
