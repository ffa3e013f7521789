// Last-known-good (README "Outages and honest answers"): per key and per layer, the newest copy this instance has
// seen — written, read, or re-read after a change notice — so that while a layer is unreachable a read never turns
// back the clock to an older copy in a lower layer. In memory: a digest per copy, and the copies recently used within
// a byte bound (the share of CONFIG_CACHE_MAX_BYTES); every copy is in a snapshot on disk, one 0600 file per key in
// CONFIG_LKG_DIR, that survives a restart. A snapshot file is replaced atomically (temp file, rename); the last change before a power loss may be
// lost, never a file half written.
import { createHash, randomBytes } from 'node:crypto'
import { mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { FastifyBaseLogger as Logger } from 'fastify'
import { isValidKey, type LayerName } from '../stores/types.js'
import { ByteMap, bytesOf } from './byte-map.js'
import { reasonOf } from './errors.js'

export interface KnownCopy {
  /** The document's compact JSON text. */
  json: string
  updatedAt: string | null
}

interface Snapshot {
  key: string
  layers: Partial<Record<LayerName, KnownCopy>>
}

const digest = (json: string) => createHash('sha256').update(json).digest('base64')

export class LastKnownGood {
  /** key → layer → digest of the copy on disk. */
  readonly #index = new Map<string, Map<LayerName, string>>()
  /** Snapshot writes of one key run in order. */
  readonly #writing = new Map<string, Promise<void>>()

  /** Copies recently seen or read back, so that an outage's reads do not read the snapshot each time; bounded by
   * its share of CONFIG_CACHE_MAX_BYTES. */
  readonly #recent: ByteMap<KnownCopy>

  constructor(
    readonly dir: string,
    readonly log: Logger,
    maxBytes = 16 * 1024 * 1024,
  ) {
    this.#recent = new ByteMap(maxBytes)
  }

  /** Reads the snapshot a previous run left (a file that does not parse is skipped, and says so). */
  async load(): Promise<void> {
    let names: string[]
    try {
      names = await readdir(this.dir)
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT')
        this.log.warn({ dir: this.dir, reason: reasonOf(err) }, 'last-known-good snapshot unavailable')
      return
    }
    for (const name of names.filter((n) => n.endsWith('.json'))) {
      const snapshot = await this.#read(name.slice(0, -5))
      if (snapshot === undefined) continue
      const layers = new Map<LayerName, string>()
      for (const [layer, copy] of Object.entries(snapshot.layers)) layers.set(layer as LayerName, digest(copy.json))
      this.#index.set(snapshot.key, layers)
    }
  }

  has(key: string): boolean {
    return this.#index.has(key)
  }

  knows(layer: LayerName, key: string): boolean {
    return this.#index.get(key)?.has(layer) === true
  }

  keys(): string[] {
    return [...this.#index.keys()]
  }

  /** Remembers `copy` as what `layer` holds for `key` (a copy already known costs a digest, no write). */
  see(layer: LayerName, key: string, copy: KnownCopy): void {
    const sum = digest(copy.json)
    const layers = this.#index.get(key)
    if (layers?.get(layer) === sum) return
    if (layers === undefined) this.#index.set(key, new Map([[layer, sum]]))
    else layers.set(layer, sum)
    const known = { json: copy.json, updatedAt: copy.updatedAt }
    this.#recent.set(`${layer}:${key}`, known, bytesOf(copy.json) + 64)
    this.#change(key, layer, known)
  }

  /** `layer` answered that it does not hold `key` (or it was deleted): nothing of it to fall back on. */
  forget(layer: LayerName, key: string): void {
    const layers = this.#index.get(key)
    if (layers === undefined || !layers.has(layer)) return
    layers.delete(layer)
    if (layers.size === 0) this.#index.delete(key)
    this.#recent.delete(`${layer}:${key}`)
    this.#change(key, layer, null)
  }

  /** The copy of `layer` last seen: one not yet on disk, or the snapshot's. */
  async get(layer: LayerName, key: string): Promise<KnownCopy | undefined> {
    if (this.#index.get(key)?.has(layer) !== true) return undefined
    const recent = this.#recent.get(`${layer}:${key}`)
    if (recent !== undefined) return recent
    const pending = this.#pending.get(key)?.get(layer)
    if (pending !== undefined) return pending ?? undefined
    await this.#writing.get(key)
    const copy = (await this.#read(key))?.layers[layer]
    if (copy !== undefined && this.#index.get(key)?.has(layer))
      this.#recent.set(`${layer}:${key}`, copy, bytesOf(copy.json) + 64)
    return copy
  }

  /** Resolves when every snapshot write started so far is on disk. */
  async flushed(): Promise<void> {
    await Promise.all(this.#writing.values())
  }

  // Changes wait in #pending until the key's snapshot is written; however many arrive meanwhile (a key written
  // thousands of times a second), the next write of the file carries them all at once.
  readonly #pending = new Map<string, Map<LayerName, KnownCopy | null>>()

  #change(key: string, layer: LayerName, copy: KnownCopy | null): void {
    const waiting = this.#pending.get(key)
    if (waiting !== undefined) {
      waiting.set(layer, copy)
      return
    }
    this.#pending.set(key, new Map([[layer, copy]]))
    const previous = this.#writing.get(key) ?? Promise.resolve()
    const next = previous.then(() => this.#flush(key))
    this.#writing.set(key, next)
    void next.finally(() => {
      if (this.#writing.get(key) === next) this.#writing.delete(key)
    })
  }

  async #flush(key: string): Promise<void> {
    const snapshot = (await this.#read(key)) ?? { key, layers: {} }
    const changes = this.#pending.get(key)
    this.#pending.delete(key)
    for (const [layer, copy] of changes ?? []) {
      if (copy === null) delete snapshot.layers[layer]
      else snapshot.layers[layer] = copy
    }
    const file = join(this.dir, `${key}.json`)
    try {
      if (Object.keys(snapshot.layers).length === 0) return await rm(file, { force: true })
      await mkdir(this.dir, { recursive: true, mode: 0o700 })
      const tmp = join(this.dir, `.${key}.${randomBytes(4).toString('hex')}.tmp`)
      await writeFile(tmp, JSON.stringify(snapshot), { mode: 0o600, flag: 'wx' })
      await rename(tmp, file)
    } catch (err) {
      this.log.warn({ key, dir: this.dir, reason: reasonOf(err) }, 'could not update the last-known-good snapshot')
    }
  }

  async #read(key: string): Promise<Snapshot | undefined> {
    if (!isValidKey(key)) return undefined
    let text: string
    try {
      text = await readFile(join(this.dir, `${key}.json`), 'utf8')
    } catch {
      return undefined
    }
    try {
      const snapshot = JSON.parse(text) as Snapshot
      if (snapshot.key === key && typeof snapshot.layers === 'object' && snapshot.layers !== null) {
        // Null prototype: layer names index it, and nothing else may.
        return { key, layers: Object.assign(Object.create(null), snapshot.layers) }
      }
    } catch {}
    this.log.warn({ key, dir: this.dir }, 'a last-known-good snapshot file does not parse; ignored')
    return undefined
  }
}
