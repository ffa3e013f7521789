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
  type ReadResult,
} from '../stores/types.js'
import type { ConfigCache, Resolved } from './cache.js'
import { canonicalJson, compareStampTexts } from './canonical.js'
import { AppError, LayerUnavailableError, reasonOf, type WriteOutcome } from './errors.js'
import type { Invalidation } from './invalidation.js'
import type { LastKnownGood } from './last-known-good.js'
import { type DocumentValidator, type SchemaKind, validOrThrow } from './validation.js'

export interface StoreOptions {
  layers: Layer[]
  validator: DocumentValidator
  cache: ConfigCache
  log: Logger
  invalidation?: Invalidation | undefined
  /** A write that would make more keys than this is refused (CONFIG_MAX_KEYS). */
  maxKeys?: number
  /** The newest copy seen of each layer, served while that layer is unreachable. */
  lkg?: LastKnownGood | undefined
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
/** A fallback or last-known-good answer is cached this long at most: the next reads try the higher layer again. */
const FALLBACK_TTL_MS = 1000
/** Reads a listing makes at once. */
const LIST_READS = 8

export function createConfigStore({
  layers,
  validator,
  cache,
  log,
  invalidation,
  maxKeys = 10_000,
  lkg,
}: StoreOptions) {
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

  /** One layer's answer, remembered as that layer's last-known-good copy (or its absence). */
  async function getFrom(l: Layer, key: string): Promise<ReadResult> {
    const r = await l.get(key)
    if (lkg !== undefined) {
      if (r.state === 'hit' && !(r.reused && lkg.knows(l.name, key))) lkg.see(l.name, key, r)
      else if (r.state === 'absent') lkg.forget(l.name, key)
    }
    return r
  }

  /** The newest of `live` (a lower layer's answer) and the last-known-good copies of the layers above it that could
   * not be reached, by `_updated_at`; a tie goes to the live answer. */
  async function newest(key: string, live: Resolved | undefined, down: LayerName[]): Promise<Resolved | undefined> {
    let best = live
    for (const name of lkg === undefined ? [] : down) {
      const copy = await lkg?.get(name, key)
      if (copy === undefined) continue
      if (best === undefined || compareStampTexts(copy.updatedAt, best.updatedAt) > 0)
        best = { key, json: copy.json, source: name, updatedAt: copy.updatedAt, stale: true }
    }
    return best
  }

  /** The effective value: the first layer that holds the key, in the configured order — unless a layer above it
   * could not be reached and its last-known-good copy is newer. A legacy file name of a key (`magic_links`) reads
   * that key. */
  async function read(name: string): Promise<Resolved> {
    const cached = cache.get(name)
    if (cached !== undefined) return cached
    checkKey(name)
    const key = validator.aliasOf(name) ?? name
    const epoch = cache.epoch
    const down: LayerName[] = []
    for (const l of layers) {
      const r = await getFrom(l, key)
      if (r.state === 'hit') {
        const live: Resolved = { key, json: r.json, source: l.name, updatedAt: r.updatedAt }
        if (down.length === 0) {
          cache.set(live, epoch)
          return live
        }
        const resolved = (await newest(key, live, down)) as Resolved
        warn(
          `fallback:${resolved.source}:${key}`,
          { layer: resolved.source, key, down, stale: resolved.stale === true },
          resolved.stale
            ? `served ${key} from the last-known-good copy of ${resolved.source}`
            : `served ${key} from ${l.name} (fallback)`,
        )
        cache.set(resolved, epoch, FALLBACK_TTL_MS)
        return resolved
      }
      if (r.state === 'unavailable') {
        noteUnavailable(l.name, key, r.reason)
        down.push(l.name)
      }
    }
    if (down.length > 0) {
      const stale = await newest(key, undefined, down)
      if (stale !== undefined) {
        warn(
          `stale:${stale.source}:${key}`,
          { layer: stale.source, key, down },
          `served ${key} from the last-known-good copy of ${stale.source}`,
        )
        cache.set(stale, epoch, FALLBACK_TTL_MS)
        return stale
      }
      throw new AppError(
        'STORE_UNAVAILABLE',
        `${key} was not found in the layers that answered, and ${down.join(', ')} could not be reached`,
      )
    }
    throw new AppError('CONFIG_NOT_FOUND', `no layer holds ${key}`)
  }

  /** After a change notice (another instance, the legacy app, redis-cli): the copies this instance remembers of
   * `key` are read again, so that its last-known-good is never older than what was announced. */
  async function refresh(key: string): Promise<void> {
    if (lkg === undefined || !lkg.has(key)) return
    await Promise.all(layers.filter((l) => lkg.knows(l.name, key)).map((l) => getFrom(l, key).catch(() => undefined)))
  }

  /** One layer only, never the fallback chain. */
  async function readFrom(name: LayerName, requested: string): Promise<Resolved> {
    checkKey(requested)
    const key = validator.aliasOf(requested) ?? requested
    const r = await getFrom(layer(name), key)
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
    let written: Written = { key, doc, json, source: primary.name, updatedAt: doc._updated_at as string }
    try {
      await primary.set(key, doc, json)
    } catch (err) {
      // Even a failed write may have landed (a timeout after the server applied it): never trust the old value.
      cache.invalidate(key)
      const outcome = err instanceof LayerUnavailableError ? err.outcome : 'unknown'
      const landed = outcome === 'unknown' ? await readBack(key, doc, json) : undefined
      if (landed === undefined) throw refusedWrite(key, outcome, err)
      log.info(
        { layer: primary.name, key, reason: reasonOf(err) },
        `write of ${key} failed, but reading back shows it landed`,
      )
      written = landed
    }
    cache.invalidate(key)
    // PHP stamps its own `_updated_at` (whole seconds): answer what the next read serves, not our stamp.
    if (primary.name === 'php') written = (await readBack(key, doc, json)) ?? written
    lkg?.see(primary.name, key, written)
    // A Redis write reaches other instances through tracking; anything else is announced.
    if (primary.name !== 'redis') await invalidation?.announce(key)
    return written
  }

  /** What the primary holds for `key` when it is the write of `doc` (its own stamp, or PHP's), else undefined. */
  async function readBack(key: string, doc: ConfigDocument, json: string): Promise<Written | undefined> {
    const r = await primary.get(key).catch(() => ({ state: 'unavailable' }) as const)
    if (r.state !== 'hit') return undefined
    const same = primary.name === 'php' ? canonicalJson(r.doc) === canonicalJson(doc) : r.json === json
    if (!same) return undefined
    return {
      key,
      doc: r.doc,
      json: r.json,
      source: primary.name,
      updatedAt: r.updatedAt ?? (doc._updated_at as string),
    }
  }

  function refusedWrite(key: string, outcome: WriteOutcome, err: unknown): AppError {
    if (outcome === 'unknown') {
      log.warn({ layer: primary.name, key, reason: reasonOf(err) }, `write of ${key}: outcome unknown`)
      return new AppError(
        'WRITE_OUTCOME_UNKNOWN',
        `the primary layer (${primary.name}) did not confirm the write of ${key}, and reading it back could not tell whether it landed; read ${key} before retrying`,
        { cause: err },
      )
    }
    log.warn({ layer: primary.name, key, reason: reasonOf(err) }, `write of ${key} refused: primary down`)
    return new AppError(
      'STORE_UNAVAILABLE',
      `the primary layer (${primary.name}) could not be reached; nothing was written`,
      {
        cause: err,
      },
    )
  }

  /** JSON Merge Patch (RFC 7396) on the effective document, then written like a POST. */
  async function patch(key: string, mergePatch: ConfigDocument): Promise<Written> {
    checkWritable(key)
    const current = await read(key)
    return write(key, applyMergePatch(JSON.parse(current.json), mergePatch) as ConfigDocument)
  }

  /** The PHP API has no delete: blanking the document there would leave the legacy app, which reads a document
   * holding only `_updated_at` as present and empty, with a silently blank config. So while PHP holds the key, the
   * delete is refused and nothing is deleted anywhere; it must be removed on the PHP host first. */
  async function checkPhpDelete(key: string): Promise<Layer[]> {
    const php = byName.get('php')
    if (php === undefined) return layers
    const r = await php.get(key)
    if (r.state === 'hit')
      throw new AppError(
        'DELETE_REFUSED',
        `the PHP API holds ${key} and cannot delete it (blanking it would leave the legacy app an empty config); remove ${key}.json on the PHP host, then delete again`,
      )
    if (r.state === 'unavailable')
      throw new AppError(
        'STORE_UNAVAILABLE',
        `the php layer could not be reached, so ${key} may be there; nothing was deleted`,
      )
    return layers.filter((l) => l !== php)
  }

  async function remove(key: string): Promise<Record<string, DeleteOutcome>> {
    checkWritable(key)
    const targets = await checkPhpDelete(key)
    existing.delete(key)
    counted = undefined
    const done: Record<string, DeleteOutcome> = {}
    if (targets.length < layers.length) done.php = 'absent'
    const down: string[] = []
    await Promise.all(
      targets.map(async (l) => {
        try {
          done[l.name] = await l.delete(key)
        } catch (err) {
          // A delete that timed out may have been applied: if the layer now answers absent, it was.
          const unknown = err instanceof LayerUnavailableError && err.outcome === 'unknown'
          if (unknown && (await l.get(key).catch(() => undefined))?.state === 'absent') done[l.name] = 'deleted'
          else {
            noteUnavailable(l.name, key, reasonOf(err))
            down.push(l.name)
          }
        }
      }),
    )
    for (const l of layers) if (done[l.name] !== undefined) lkg?.forget(l.name, key)
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

  /** Every key known to any layer or schema, with where it is served from. Complete or an error: a layer that could
   * not list, or a key that could not be read, is a 503 naming them, never a shorter list. Reads run LIST_READS at a
   * time, so a store of large documents does not trip the command timeout on itself. */
  async function list(): Promise<ListedKey[]> {
    const names = new Set(validator.schemaKeys())
    const unlisted: string[] = []
    for (const l of layers) {
      try {
        for (const k of await l.listKeys()) names.add(k)
      } catch (err) {
        noteUnavailable(l.name, '*', reasonOf(err))
        unlisted.push(l.name)
      }
    }
    if (unlisted.length > 0)
      throw new AppError(
        'STORE_UNAVAILABLE',
        `the keys of ${unlisted.join(', ')} could not be listed; the list would be incomplete`,
      )
    const sorted = [...names].sort()
    const listed: Array<ListedKey | undefined> = []
    const unreadable: string[] = []
    let next = 0
    async function worker(): Promise<void> {
      while (next < sorted.length) {
        const i = next++
        const key = sorted[i] as string
        const schema = validator.kind(key)
        try {
          const r = await read(key)
          listed[i] = { key, source: r.source, updated_at: r.updatedAt, schema }
        } catch (err) {
          if (!(err instanceof AppError && err.code === 'CONFIG_NOT_FOUND')) unreadable.push(key)
          else if (schema !== 'none') listed[i] = { key, source: null, updated_at: null, schema }
        }
      }
    }
    await Promise.all(Array.from({ length: LIST_READS }, worker))
    if (unreadable.length > 0) {
      throw new AppError(
        'STORE_UNAVAILABLE',
        `${unreadable.sort().join(', ')} could not be read; the list would be incomplete`,
        {
          details: unreadable.map((key) => ({ path: `/${key}`, message: 'could not be read' })),
        },
      )
    }
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
    refresh,
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
