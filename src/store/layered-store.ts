// The layered store (docs/architecture.md): reads (src/store/reads.ts) walk the layer order and the first hit wins;
// writes go to the primary only and deletes reach every layer (src/store/writes.ts); `_updated_at` is stamped here,
// for every writer. Routes, ops and the command line use the store only through the ConfigStore interface.
import type { FastifyBaseLogger as Logger } from 'fastify'
import { type ConfigDocument, isValidKey, type Layer, type LayerHealth, type LayerName } from '../../stores/layer.js'
import { nearNames } from '../did-you-mean.js'
import { AppError } from '../errors.js'
import type { ConfigCache, Resolved } from './cache.js'
import { KeyChanges } from './changes.js'
import { etagOf } from './etag.js'
import { type Feed, type History, KeyQueue } from './history/history.js'
import type { Attribution, Revision } from './history/schemas.js'
import { type Imported, importBundle } from './import.js'
import type { Invalidation } from './invalidation.js'
import { jsonPatch, type PatchOperation } from './json-patch.js'
import { createKeyQuota } from './key-quota.js'
import type { LastKnownGood } from './last-known-good.js'
import { applyMergePatch } from './merge-patch.js'
import { createOutageLog } from './outage-log.js'
import { checkKey, checkWritable, getFrom, newCounts, type StoreCounts, type StoreParts } from './parts.js'
import { createReader } from './reads.js'
import type { LayerReport, ListedKey } from './schemas.js'
import { type DocumentValidator, validOrThrow } from './validation.js'
import { ANONYMOUS, createWriter, type Removed, type WriteOptions, type Written } from './writes.js'

export type { Removed, WriteOptions, Written }

/** A revision with its document (null for a delete). */
export interface RevisionDocument {
  key: string
  revision: Revision
  json: string | null
  etag: string | null
}

export interface Diff {
  key: string
  from: number
  /** The revision compared to; null: the current document. */
  to: number | null
  patch: PatchOperation[]
}

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
  /** Where revisions and the change feed are kept. */
  history: History
}

export interface StoreStats {
  /** The layers in read order; the first is the primary. */
  layers: LayerName[]
  primary: LayerName
  /** Per layer, the reads and writes it could not answer since start-up. */
  unavailable: Partial<Record<LayerName, number>>
  cache: { active: boolean; entries: number; bytes: number; hits: number; misses: number }
  /** Change notices received from Redis (tracking and announcements). */
  notices: number
  /** Blocking reads waiting now. */
  waiting: number
  /** Change feed connections open now. */
  listeners: number
  /** Where history is kept. */
  history: History['kind']
  counts: Readonly<StoreCounts>
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
  /** Validates, stamps and writes the whole document to the primary, as a new revision. */
  write(key: string, doc: ConfigDocument, options?: WriteOptions): Promise<Written>
  /** JSON Merge Patch (RFC 7396) on the effective document, then written like `write`. */
  patch(key: string, mergePatch: ConfigDocument, options?: WriteOptions): Promise<Written>
  /** Deletes from every layer; per layer, whether it held the key. */
  remove(key: string, options?: WriteOptions): Promise<Removed>
  /** The revisions of `key`, newest first (`before`: older than that revision). */
  history(key: string, limit: number, before?: number): Promise<Revision[]>
  /** A revision's document; REVISION_NOT_FOUND when it is not kept. */
  revision(key: string, revision: number): Promise<RevisionDocument>
  /** The JSON Patch (RFC 6902) from revision `from` to revision `to`, or to the current document. */
  diff(key: string, from: number, to?: number): Promise<Diff>
  /** Writes revision `revision`'s document again, as a new revision: checked against today's schema, stamped now. */
  rollback(key: string, revision: number, options?: WriteOptions): Promise<Written>
  /** Migrate's compare-and-set on the primary: `doc` as it is, when the primary's text is still `expected` (null:
   * absent), with its revision. Answers whether it applied. */
  compareAndSet(key: string, expected: string | null, doc: ConfigDocument, by: Attribution): Promise<boolean>
  /** The change feed. */
  readonly feed: Feed
  /** After a change notice: records what the primary holds now when no revision has it (a write made behind the
   * service, as an `external` revision). */
  observe(key: string): Promise<void>
  /** Every key known to any layer or schema that `visible` lets through: complete, or a STORE_UNAVAILABLE naming what
   * could not be read. */
  list(visible?: (key: string) => boolean): Promise<ListedKey[]>
  /** The keys a typo away from `name` (known to a layer at most a second ago, or to a schema), nearest first. */
  similarKeys(name: string): Promise<string[]>
  /** Writes an export bundle's documents to the primary, all or nothing. */
  importBundle(configs: Record<string, unknown>, options?: { dryRun?: boolean; by?: Attribution }): Promise<Imported>
  /** Each layer's health, probed at most once a second however often this is called. */
  health(): Promise<LayerReport[]>
  stats(): StoreStats
  /** The layers, for operations that must read each one directly (verify, migrate). */
  layers(): readonly Layer[]
  /** After a change notice: re-reads the copies this instance remembers of `key`, so that its last-known-good is
   * never older than what was announced. */
  refresh(key: string): Promise<void>
  /** Drops the cached value of `key` and wakes its waiters: after a write made to a layer directly (migrate's
   * compare-and-set), or a change notice (null: every key). */
  forget(key: string | null): void
  /** Resolves true when `key` changes within `ms` (a blocking read), false when the time is up. */
  waitForChange(key: string, ms: number, signal?: AbortSignal): Promise<boolean>
  /** Ends every blocking read now (at shutdown). */
  releaseWaits(): void
}

/** A layer is probed for /ready at most once in this long; callers in between share the answer. */
const PROBE_EVERY_MS = 1000

export function createConfigStore({
  layers,
  validator,
  cache,
  log,
  invalidation,
  maxKeys = 10_000,
  lkg,
  history,
}: StoreOptions): ConfigStore {
  const [primary] = layers
  if (primary === undefined) throw new Error('no store layer is configured')
  const first: Layer = primary
  const outages = createOutageLog(log)
  const counts = newCounts()
  const changes = new KeyChanges()
  const parts: StoreParts = {
    layers,
    primary,
    validator,
    cache,
    log,
    outages,
    invalidation,
    lkg,
    counts,
    changes,
    history,
  }
  const quota = createKeyQuota(layers, maxKeys)
  const writer = createWriter(parts, quota)
  const { read, readFrom, list } = createReader(parts)

  async function similarKeys(name: string): Promise<string[]> {
    const listed = await quota.known()
    return nearNames(name, new Set([...validator.schemaKeys(), ...listed]))
  }

  /** The stored form of `input`: valid for `key`, stamped now. */
  function stamped(key: string, input: ConfigDocument): ConfigDocument {
    if (!validator.accepts(key)) {
      const [near] = nearNames(key, validator.schemaKeys())
      throw new AppError(
        'INVALID_KEY',
        `${key} has no schema and CONFIG_STORE_UNKNOWN_KEYS=reject${near === undefined ? '' : `; did you mean ${near}?`}`,
      )
    }
    return { ...validOrThrow(validator, key, input), _updated_at: new Date().toISOString() }
  }

  /** A write's checks beyond validity (a webhook host resolved), made once its document is known to be valid. */
  async function admitted(key: string, input: ConfigDocument): Promise<void> {
    const errors = await validator.admit(key, input)
    if (errors.length > 0)
      throw new AppError('VALIDATION_FAILED', `${key} does not match its schema`, { details: errors })
  }

  async function write(key: string, input: ConfigDocument, options: WriteOptions = {}): Promise<Written> {
    checkWritable(parts, key)
    const conditional = options.ifMatch !== undefined || options.ifNoneMatch !== undefined
    // Validity first (no host is resolved for invalid input); a conditional write validates again per attempt.
    const doc = conditional ? undefined : stamped(key, input)
    if (validator.spec(key)?.resolvedUrl?.(input) !== undefined) {
      if (doc === undefined) stamped(key, input)
      await admitted(key, input)
    }
    if (doc !== undefined) return writer.commit(key, doc, options.by)
    return writer.commitIf(key, () => stamped(key, input), options, options.by)
  }

  /** Atomic: merged into the document as it is when written, made again if another write lands in between. */
  async function patch(key: string, mergePatch: ConfigDocument, options: WriteOptions = {}): Promise<Written> {
    checkWritable(parts, key)
    await admitted(key, mergePatch) // a URL the patch sets; one it leaves was admitted when it was written
    return writer.commitIf(
      key,
      (base) => {
        if (base === undefined) throw new AppError('CONFIG_NOT_FOUND', `no layer holds ${key}`)
        return stamped(key, applyMergePatch(base, mergePatch) as ConfigDocument)
      },
      options,
      options.by,
    )
  }

  async function revision(key: string, n: number): Promise<RevisionDocument> {
    checkKey(key)
    const found = await history.document(key, n)
    if (found === undefined || (found.revision.op === 'write' && found.json === null))
      throw new AppError(
        'REVISION_NOT_FOUND',
        `${key} has no revision ${n}: it was never made, or is older than the CONFIG_HISTORY_MAX revisions kept`,
      )
    const json = found.json === null ? null : JSON.stringify(JSON.parse(found.json))
    return { key, revision: found.revision, json, etag: json === null ? null : etagOf(json) }
  }

  /** A revision's document, for comparing or writing again: refused for a delete, which has none. */
  async function documentOf(key: string, n: number): Promise<ConfigDocument> {
    const found = await revision(key, n)
    if (found.json === null)
      throw new AppError('BAD_REQUEST', `revision ${n} of ${key} is a delete: it has no document`)
    return JSON.parse(found.json) as ConfigDocument
  }

  async function diff(key: string, from: number, to?: number): Promise<Diff> {
    const before = await documentOf(key, from)
    const after = to === undefined ? (JSON.parse((await read(key)).json) as ConfigDocument) : await documentOf(key, to)
    return { key, from, to: to ?? null, patch: jsonPatch(before, after) }
  }

  async function rollback(key: string, n: number, options: WriteOptions = {}): Promise<Written> {
    checkWritable(parts, key)
    const { _updated_at: _, ...doc } = await documentOf(key, n)
    const by = { ...(options.by ?? ANONYMOUS), via: 'rollback' as const }
    return write(key, doc, { ...options, by })
  }

  // Refreshes of last-known-good copies, one after another per key, with at most one waiting that has not read yet:
  // it reads after every notice that came before it, so a burst of notices (a write load) costs two reads, not one
  // per notice.
  const refreshes = new KeyQueue()
  const refreshWaiting = new Set<string>()
  function refresh(key: string): Promise<void> {
    if (lkg === undefined || !lkg.has(key) || refreshWaiting.has(key)) return Promise.resolve()
    refreshWaiting.add(key)
    return refreshes.run(key, () => {
      refreshWaiting.delete(key)
      return readKnown(key)
    })
  }
  async function readKnown(key: string): Promise<void> {
    const known = layers.filter((l) => lkg?.knows(l.name, key))
    await Promise.all(known.map((l) => getFrom(parts, l, key).catch(() => undefined)))
  }

  // Keys whose observation is queued and has not read the key yet: it will see every change notified until then,
  // so a burst of notices (another writer's load) makes one observation, not a queue without end.
  const unread = new Set<string>()

  async function observe(key: string): Promise<void> {
    if (!isValidKey(key) || unread.has(key)) return
    unread.add(key)
    let read = false
    const current = async () => {
      read = true
      unread.delete(key)
      const r = await (first.fresh?.(key) ?? first.get(key))
      if (r.state === 'unavailable') throw new AppError('STORE_UNAVAILABLE', r.reason)
      return r.state === 'hit' ? { json: r.json, raw: r.raw } : undefined
    }
    const recorded = await history.observe(key, current, first.name).catch(() => undefined)
    if (!read) unread.delete(key) // it failed before reading
    if (recorded === undefined) return
    const { revision: n, before, after } = recorded.revision
    log.info(
      { audit: true, key, actor: 'external', via: 'external', revision: n, before, after },
      `config change: ${key} by external (external)`,
    )
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
    readCached(key) {
      const cached = cache.get(key)
      if (cached !== undefined) cache.hits++
      return cached
    },
    read,
    readFrom,
    write,
    patch,
    remove: writer.remove,
    history: (key, limit, before) => {
      checkKey(key)
      return history.list(key, limit, before)
    },
    revision,
    diff,
    rollback,
    feed: history.feed,
    compareAndSet: writer.compareAndSet,
    observe,
    list,
    similarKeys,
    importBundle: (configs, options) =>
      importBundle(parts, writer, configs, options?.dryRun === true, options?.by ?? { ...ANONYMOUS, via: 'import' }),
    health: () =>
      Promise.all(
        layers.map(async (l) => ({ layer: l.name, ...(await probe(l)), unavailable: outages.counts()[l.name] ?? 0 })),
      ),
    stats: () => ({
      layers: layers.map((l) => l.name),
      primary: primary.name,
      unavailable: { ...outages.counts() },
      cache: { active: cache.active, entries: cache.size, bytes: cache.bytes, hits: cache.hits, misses: cache.misses },
      notices: invalidation?.received() ?? 0,
      waiting: changes.waiting,
      listeners: history.feed.listeners,
      history: history.kind,
      counts,
    }),
    layers: () => layers,
    refresh,
    forget(key) {
      if (key === null) cache.clear()
      else cache.invalidate(key)
      changes.changed(key)
    },
    waitForChange: (key, ms, signal) => changes.wait(key, ms, signal),
    releaseWaits: () => changes.release(),
  }
}
