// The per-process cache of resolved reads (docs/architecture.md "The cache and its invalidation"): bounded in bytes, with a TTL, and only trusted while
// something guarantees invalidation. `epoch` lets a read that started before an invalidation refuse to fill the cache
// with what it read, so a value older than an acknowledged write is never served.
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

export class ConfigCache {
  readonly ttlMs: number
  epoch = 0
  /** Reads answered from the cache, and reads that had to go to the layers, since start-up (counted by the store). */
  hits = 0
  misses = 0
  #active: boolean
  readonly #entries: ByteMap<{ value: Resolved; expires: number }>

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
    if (!this.#active) return undefined
    const entry = this.#entries.get(key)
    if (entry === undefined) return undefined
    if (entry.expires <= Date.now()) {
      this.#entries.delete(key)
      return undefined
    }
    return entry.value
  }

  /** Stores a value read while `epoch` was current; dropped when anything was invalidated since. `ttlMs` shortens
   * the TTL (a fallback answer is kept briefly, so the next read tries the higher layer again). */
  set(value: Resolved, epoch: number, ttlMs = this.ttlMs): void {
    if (!this.#active || epoch !== this.epoch) return
    // The JSON text, plus the two response strings the route derives from it.
    const expires = Date.now() + Math.min(ttlMs, this.ttlMs)
    this.#entries.set(value.key, { value, expires }, bytesOf(value.json) * 3 + 256)
  }

  invalidate(key: string): void {
    this.epoch++
    this.#entries.delete(key)
  }

  clear(): void {
    this.epoch++
    this.#entries.clear()
  }

  get size(): number {
    return this.#entries.size
  }

  get bytes(): number {
    return this.#entries.bytes
  }
}
