// The layered store (docs/architecture.md): reads walk the layer order and the first hit wins, unless a layer above
// it could not be reached and its last-known-good copy is newer; writes go to the primary only (src/store/writes.ts);
// deletes reach every layer. `_updated_at` is stamped here, for every writer. Routes, ops and the command line use
// the store only through the ConfigStore interface.
import type { FastifyBaseLogger as Logger } from 'fastify'
import type { ConfigDocument, DeleteOutcome, Layer, LayerHealth, LayerName } from '../../stores/layer.js'
import { AppError, reasonOf } from '../errors.js'
import type { ConfigCache, Resolved } from './cache.js'
import { compareStampTexts } from './canonical.js'
import { type Imported, importBundle } from './import.js'
import type { Invalidation } from './invalidation.js'
import { createKeyQuota } from './key-quota.js'
import type { LastKnownGood } from './last-known-good.js'
import { applyMergePatch } from './merge-patch.js'
import { createOutageLog } from './outage-log.js'
import { checkKey, checkWritable, getFrom, layerNamed, type StoreParts } from './parts.js'
import type { LayerReport, ListedKey } from './schemas.js'
import { type DocumentValidator, validOrThrow } from './validation.js'
import { createWriter, type Written } from './writes.js'

export type { Written }

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

export interface StoreStats {
  /** The layers in read order; the first is the primary. */
  layers: LayerName[]
  primary: LayerName
  /** Per layer, the reads and writes it could not answer since start-up. */
  unavailable: Partial<Record<LayerName, number>>
  cache: { active: boolean; entries: number; bytes: number }
}

export interface ConfigStore {
  /** The schemas documents are checked against (immutable once the store is open). */
  readonly validator: DocumentValidator
  /** The cached effective value, without touching any layer: undefined when not cached (or the cache is off). */
  readCached(key: string): Resolved | undefined
  /** The effective value. A legacy file name of a key (`magic_links`) reads that key. */
  read(key: string): Promise<Resolved>
  /** One layer's copy, never the fallback chain. */
  readFrom(layer: LayerName, key: string): Promise<Resolved>
  /** Validates, stamps and writes the whole document to the primary. */
  write(key: string, doc: ConfigDocument): Promise<Written>
  /** JSON Merge Patch (RFC 7396) on the effective document, then written like `write`. */
  patch(key: string, mergePatch: ConfigDocument): Promise<Written>
  /** Deletes from every layer; per layer, whether it held the key. */
  remove(key: string): Promise<Record<string, DeleteOutcome>>
  /** Every key known to any layer or schema: complete, or a STORE_UNAVAILABLE naming what could not be read. */
  list(): Promise<ListedKey[]>
  /** Writes an export bundle's documents to the primary, all or nothing. */
  importBundle(configs: Record<string, unknown>, options?: { dryRun?: boolean }): Promise<Imported>
  /** Each layer's health, probed at most once a second however often this is called. */
  health(): Promise<LayerReport[]>
  stats(): StoreStats
  /** The layers, for operations that must read each one directly (verify, migrate). */
  layers(): readonly Layer[]
  /** After a change notice: re-reads the copies this instance remembers of `key`, so that its last-known-good is
   * never older than what was announced. */
  refresh(key: string): Promise<void>
  /** Drops the cached value of `key`, after a write made to a layer directly (migrate's compare-and-set). */
  forget(key: string): void
}

/** A layer is probed for /ready at most once in this long; callers in between share the answer. */
const PROBE_EVERY_MS = 1000
/** A fallback or last-known-good answer is cached this long at most: the next reads try the higher layer again. */
const FALLBACK_TTL_MS = 1000
/** Reads a listing makes at once, so a store of large documents does not trip the command timeout on itself. */
const LIST_READS = 8

export function createConfigStore({
  layers,
  validator,
  cache,
  log,
  invalidation,
  maxKeys = 10_000,
  lkg,
}: StoreOptions): ConfigStore {
  const primary = layers[0]
  if (primary === undefined) throw new Error('no store layer is configured')
  const outages = createOutageLog(log)
  const parts: StoreParts = { layers, primary, validator, cache, log, outages, invalidation, lkg }
  const writer = createWriter(parts, createKeyQuota(layers, maxKeys))

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

  /** A fallback or stale answer: said once in the log, and cached only briefly. */
  function servedDegraded(resolved: Resolved, down: LayerName[], epoch: number, from: LayerName | undefined) {
    const { key, source, stale } = resolved
    outages.warn(
      `${from === undefined ? 'stale' : 'fallback'}:${source}:${key}`,
      from === undefined ? { layer: source, key, down } : { layer: source, key, down, stale: stale === true },
      stale ? `served ${key} from the last-known-good copy of ${source}` : `served ${key} from ${from} (fallback)`,
    )
    cache.set(resolved, epoch, FALLBACK_TTL_MS)
    return resolved
  }

  async function read(name: string): Promise<Resolved> {
    const cached = cache.get(name)
    if (cached !== undefined) return cached
    checkKey(name)
    const key = validator.aliasOf(name) ?? name
    const epoch = cache.epoch
    const down: LayerName[] = []
    for (const l of layers) {
      const r = await getFrom(parts, l, key)
      if (r.state === 'hit') {
        const live: Resolved = { key, json: r.json, source: l.name, updatedAt: r.updatedAt }
        if (down.length === 0) {
          cache.set(live, epoch)
          return live
        }
        return servedDegraded((await newest(key, live, down)) as Resolved, down, epoch, l.name)
      }
      if (r.state === 'unavailable') {
        outages.unavailable(l.name, key, r.reason)
        down.push(l.name)
      }
    }
    if (down.length === 0) throw new AppError('CONFIG_NOT_FOUND', `no layer holds ${key}`)
    const stale = await newest(key, undefined, down)
    if (stale !== undefined) return servedDegraded(stale, down, epoch, undefined)
    throw new AppError(
      'STORE_UNAVAILABLE',
      `${key} was not found in the layers that answered, and ${down.join(', ')} could not be reached`,
    )
  }

  async function readFrom(name: LayerName, requested: string): Promise<Resolved> {
    checkKey(requested)
    const key = validator.aliasOf(requested) ?? requested
    const r = await getFrom(parts, layerNamed(parts, name), key)
    if (r.state === 'hit') return { key, json: r.json, source: name, updatedAt: r.updatedAt }
    if (r.state === 'absent') throw new AppError('CONFIG_NOT_FOUND', `the ${name} layer does not hold ${key}`)
    outages.unavailable(name, key, r.reason)
    throw new AppError('STORE_UNAVAILABLE', `the ${name} layer could not be reached`)
  }

  async function write(key: string, input: ConfigDocument): Promise<Written> {
    checkWritable(parts, key)
    if (!validator.accepts(key))
      throw new AppError('INVALID_KEY', `${key} has no schema and CONFIG_STORE_UNKNOWN_KEYS=reject`)
    const updatedAt = new Date().toISOString()
    return writer.commit(key, { ...validOrThrow(validator, key, input), _updated_at: updatedAt })
  }

  async function patch(key: string, mergePatch: ConfigDocument): Promise<Written> {
    checkWritable(parts, key)
    const current = await read(key)
    return write(key, applyMergePatch(JSON.parse(current.json), mergePatch) as ConfigDocument)
  }

  /** The read of one listed key: its entry, undefined for a key no layer holds and no schema names, or 'unreadable'. */
  async function listed(key: string): Promise<ListedKey | undefined | 'unreadable'> {
    const schema = validator.kind(key)
    try {
      const r = await read(key)
      return { key, source: r.source, updated_at: r.updatedAt, schema }
    } catch (err) {
      if (!(err instanceof AppError && err.code === 'CONFIG_NOT_FOUND')) return 'unreadable'
      return schema === 'none' ? undefined : { key, source: null, updated_at: null, schema }
    }
  }

  async function list(): Promise<ListedKey[]> {
    const names = new Set(validator.schemaKeys())
    const unlisted: string[] = []
    for (const l of layers) {
      try {
        for (const k of await l.listKeys()) names.add(k)
      } catch (err) {
        outages.unavailable(l.name, '*', reasonOf(err))
        unlisted.push(l.name)
      }
    }
    if (unlisted.length > 0)
      throw new AppError(
        'STORE_UNAVAILABLE',
        `the keys of ${unlisted.join(', ')} could not be listed; the list would be incomplete`,
      )
    const sorted = [...names].sort()
    const entries: Array<ListedKey | undefined | 'unreadable'> = []
    let next = 0
    const worker = async () => {
      while (next < sorted.length) {
        const i = next++
        entries[i] = await listed(sorted[i] as string)
      }
    }
    await Promise.all(Array.from({ length: LIST_READS }, worker))
    const unreadable = sorted.filter((_, i) => entries[i] === 'unreadable')
    if (unreadable.length > 0) {
      throw new AppError(
        'STORE_UNAVAILABLE',
        `${unreadable.join(', ')} could not be read; the list would be incomplete`,
        {
          details: unreadable.map((key) => ({ path: `/${key}`, message: 'could not be read' })),
        },
      )
    }
    return entries.filter((e): e is ListedKey => e !== undefined && e !== 'unreadable')
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

  return {
    validator,
    readCached: (key) => cache.get(key),
    read,
    readFrom,
    write,
    patch,
    remove: writer.remove,
    list,
    importBundle: (configs, options) => importBundle(parts, writer, configs, options?.dryRun === true),
    health: () =>
      Promise.all(
        layers.map(async (l) => ({ layer: l.name, ...(await probe(l)), unavailable: outages.counts()[l.name] ?? 0 })),
      ),
    stats: () => ({
      layers: layers.map((l) => l.name),
      primary: primary.name,
      unavailable: { ...outages.counts() },
      cache: { active: cache.active, entries: cache.size, bytes: cache.bytes },
    }),
    layers: () => layers,
    async refresh(key) {
      if (lkg === undefined || !lkg.has(key)) return
      const known = layers.filter((l) => lkg.knows(l.name, key))
      await Promise.all(known.map((l) => getFrom(parts, l, key).catch(() => undefined)))
    },
    forget: (key) => cache.invalidate(key),
  }
}
