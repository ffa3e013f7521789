// A Map bounded by the bytes of what it holds: the oldest entries go first when a new one needs room, and an entry
// larger than the whole bound is not kept. Every in-memory copy of a stored text (the cache, the per-key text memos of
// the Redis and files layers) lives in one of these, each with its share of CONFIG_CACHE_MAX_BYTES.

/** Bytes a string costs in memory at most (V8 keeps one- or two-byte strings). */
export const bytesOf = (text: string) => text.length * 2

export class ByteMap<V> {
  readonly #entries = new Map<string, { value: V; bytes: number }>()
  #bytes = 0

  constructor(readonly maxBytes: number) {}

  get(key: string): V | undefined {
    return this.#entries.get(key)?.value
  }

  set(key: string, value: V, bytes: number): void {
    this.delete(key)
    if (bytes > this.maxBytes) return
    while (this.#bytes + bytes > this.maxBytes) {
      const oldest = this.#entries.keys().next()
      if (oldest.done) break
      this.delete(oldest.value)
    }
    this.#entries.set(key, { value, bytes })
    this.#bytes += bytes
  }

  delete(key: string): void {
    const entry = this.#entries.get(key)
    if (entry === undefined) return
    this.#entries.delete(key)
    this.#bytes -= entry.bytes
  }

  clear(): void {
    this.#entries.clear()
    this.#bytes = 0
  }

  get size(): number {
    return this.#entries.size
  }

  get bytes(): number {
    return this.#bytes
  }
}
