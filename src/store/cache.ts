// The per-process cache of resolved reads (docs/architecture.md "The cache and its invalidation"): bounded in bytes, with a TTL, and only trusted while
// something guarantees invalidation. `epoch` lets a read that started before an invalidation of its key refuse to fill
// the cache with what it read, so a value older than an acknowledged write is never served.
import type { LayerName } from '../../stores/layer.js'
import { ByteMap, bytesOf } from './byte-map.js'

export interface Resolved {
  key: string
  /** The document as JSON text, as the layer gave it. */
  json: string
  source: LayerName
  updatedAt: string | null
  /** Served from the last-known-good copy of a layer that could not be reached. */
  stale?: true
  /** Its strong ETag, computed once per value by the route. */
  etag?: string
  /** The GET response without its timestamp, built once per value by the route. */
  body?: string
  /** The whole GET response, and the millisecond its timestamp names. */
  response?: string
  sentAt?: number
}

export interface CacheOptions {
  ttlMs: number
  maxBytes: number
}

/** Keys whose last invalidation is remembered one by one; past this many, all of them count as invalidated now. */
const REMEMBERED_KEYS = 10_000

export class ConfigCache {
  readonly ttlMs: number
  /** Counts invalidations; a read takes it when it starts, and `set` compares. */
  epoch = 0
  /** The epoch of each key's last invalidation, and of the last one of every key (a clear). */
  readonly #changedAt = new Map<string, number>()
  #clearedAt = 0
  /** Reads answered from the cache, and reads that had to go to the layers, since start-up (counted by the store). */
  hits = 0
  misses = 0
  #active: boolean
  readonly #entries: ByteMap<{ value: Resolved; expires: number; brief: boolean }>

  constructor({ ttlMs, maxBytes }: CacheOptions, active = true) {
    this.ttlMs = ttlMs
    this.#entries = new ByteMap(maxBytes)
    this.#active = active && ttlMs > 0
  }

  get active(): boolean {
    return this.#active
  }

  /** Trust the cache only while invalidation works; turning it off drops everything. */
  setActive(active: boolean): void {
    this.#active = active && this.ttlMs > 0
    this.clear()
  }

  get(key: string): Resolved | undefined {
    const entry = this.#entries.get(key)
    if (entry === undefined || (!this.#active && !entry.brief)) return undefined
    if (entry.expires <= Date.now()) {
      this.#entries.delete(key)
      return undefined
    }
    return entry.value
  }

  /** Stores a value read from `epoch` on; dropped when its key (or every key) was invalidated since, not when another
   * key was. `briefMs`: a fallback answer, kept that long at most so that the next read tries the higher layer again,
   * and kept even while the cache is not trusted (Redis down, and its invalidation with it): the layers it came from
   * have their own (the files' watch), a change of the trust drops it, and without it every read of an outage ran
   * the layers, its answer built anew each time (the latency spike of the first load after Redis stopped). */
  set(value: Resolved, epoch: number, briefMs?: number): void {
    const brief = briefMs !== undefined
    if ((!this.#active && !brief) || this.ttlMs === 0) return
    if (this.#clearedAt > epoch || (this.#changedAt.get(value.key) ?? 0) > epoch) return
    // The JSON text, plus the two response strings the route derives from it.
    const expires = Date.now() + Math.min(briefMs ?? this.ttlMs, this.ttlMs)
    this.#entries.set(value.key, { value, expires, brief }, bytesOf(value.json) * 3 + 256)
  }

  invalidate(key: string): void {
    this.epoch++
    this.#entries.delete(key)
    if (this.#changedAt.size >= REMEMBERED_KEYS && !this.#changedAt.has(key)) this.#forgetKeys()
    else this.#changedAt.set(key, this.epoch)
  }

  clear(): void {
    this.epoch++
    this.#entries.clear()
    this.#forgetKeys()
  }

  /** Every read in flight now counts as overlapping an invalidation of its key. */
  #forgetKeys(): void {
    this.#clearedAt = this.epoch
    this.#changedAt.clear()
  }

  get size(): number {
    return this.#entries.size
  }

  get bytes(): number {
    return this.#entries.bytes
  }
}
