// Reads (docs/architecture.md "Reads"): the first layer in order that holds the key wins, unless a layer above it
// could not be reached and its last-known-good copy is newer. Only an answer with no layer above it down is cached
// for the full TTL; a fallback or stale answer is logged once and cached briefly. A listing is complete or an error.
import type { Hit, LayerName } from '../../stores/layer.js'
import { AppError, reasonOf } from '../errors.js'
import type { Resolved } from './cache.js'
import { compareStampTexts } from './canonical.js'
import { etagOf } from './etag.js'
import { checkKey, getFrom, layerNamed, type StoreParts } from './parts.js'
import type { ListedKey } from './schemas.js'

/** A fallback or last-known-good answer is cached this long at most: the next reads try the higher layer again. */
const FALLBACK_TTL_MS = 1000
/** Reads a listing makes at once, so a store of large documents does not trip the command timeout on itself. */
const LIST_READS = 8

/** The hit's ETag when its layer keeps one (computed once per stored text), so that reads do not hash it again. */
const etagOfHit = (hit: Hit) => (hit.etag === undefined ? {} : { etag: hit.etag })

export function createReader(parts: StoreParts) {
  const { layers, validator, cache, outages, lkg, counts } = parts

  /** The newest of `live` (a lower layer's answer) and the last-known-good copies of the layers above it that could
   * not be reached, by `_updated_at`; a tie goes to the live answer. */
  async function newest(key: string, live: Resolved | undefined, down: LayerName[]): Promise<Resolved | undefined> {
    let best = live
    for (const name of lkg === undefined ? [] : down) {
      const copy = await lkg?.get(name, key)
      if (copy === undefined) continue
      if (best !== undefined && compareStampTexts(copy.updatedAt, best.updatedAt) <= 0) continue
      const etag = copy.etag ?? etagOf(copy.json)
      copy.etag = etag
      best = { key, json: copy.json, source: name, updatedAt: copy.updatedAt, stale: true, etag }
    }
    return best
  }

  /** A fallback or stale answer: said once in the log, and cached only briefly. */
  function servedDegraded(
    resolved: Resolved,
    down: LayerName[],
    epoch: number,
    from: LayerName | 'replica' | undefined,
  ) {
    const { key, source, stale } = resolved
    if (stale) counts.stale[source]++
    else counts.fallbacks[source]++
    outages.warn(
      `${from === undefined ? 'stale' : 'fallback'}:${source}:${key}`,
      from === undefined ? { layer: source, key, down } : { layer: source, key, down, stale: stale === true },
      from === 'replica'
        ? `served ${key} from a ${source} replica (stale: the master could not be read)`
        : stale
          ? `served ${key} from the last-known-good copy of ${source}`
          : `served ${key} from ${from} (fallback)`,
    )
    cache.set(resolved, epoch, FALLBACK_TTL_MS)
    return resolved
  }

  async function read(name: string): Promise<Resolved> {
    const cached = cache.get(name)
    if (cached !== undefined) {
      cache.hits++
      return cached
    }
    cache.misses++
    checkKey(name)
    const key = validator.aliasOf(name) ?? name
    const epoch = cache.epoch
    const down: LayerName[] = []
    for (const l of layers) {
      const r = await getFrom(parts, l, key)
      if (r.state === 'hit') {
        const live: Resolved = { key, json: r.json, source: l.name, updatedAt: r.updatedAt, ...etagOfHit(r) }
        if (r.stale) {
          // A replica's copy, the master down: served as stale, unless a last-known-good copy is newer.
          outages.unavailable(l.name, key, 'the master could not be read; served from a replica')
          down.push(l.name)
          const copy: Resolved = { ...live, stale: true }
          const best = (await newest(key, copy, down)) as Resolved
          return servedDegraded(best, down, epoch, best === copy ? 'replica' : undefined)
        }
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
    if (r.state === 'hit') return { key, json: r.json, source: name, updatedAt: r.updatedAt, ...etagOfHit(r) }
    if (r.state === 'absent') throw new AppError('CONFIG_NOT_FOUND', `the ${name} layer does not hold ${key}`)
    outages.unavailable(name, key, r.reason)
    throw new AppError('STORE_UNAVAILABLE', `the ${name} layer could not be reached`)
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

  /** Every key of the layers and schemas that `visible` lets through (a caller's keys: the others are never read, so a
   * key it may not see can neither break its listing nor be named to it). */
  async function list(visible: (key: string) => boolean = () => true): Promise<ListedKey[]> {
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
    const sorted = [...names].filter(visible).sort()
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

  return { read, readFrom, list }
}
