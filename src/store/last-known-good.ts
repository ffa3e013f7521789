// Last-known-good (README "Outages and honest answers"): per key and per layer, the newest copy this instance has
// seen — written, read, or re-read after a change notice — so that while a layer is unreachable a read never turns
// back the clock to an older copy in a lower layer. In memory: a digest per copy, and the copies recently used within
// a byte bound (a share of CONFIG_CACHE_MAX_BYTES). On disk, in CONFIG_LKG_DIR, a snapshot that survives a restart:
// one 0600 file per key and layer, `<key>.<layer>` (key names hold no dot), holding a header line and the document's
// JSON text as it is, so writing one costs no serialisation. A file is replaced atomically (temp file, rename); the
// last change before a power loss may be lost, never a file half written.
import { hash, randomBytes } from 'node:crypto'
import { readdir, rename, rm } from 'node:fs/promises'
import { join } from 'node:path'
import type { FastifyBaseLogger as Logger } from 'fastify'
import { isValidKey, LAYER_ORDER, type LayerName } from '../../stores/layer.js'
import { reasonOf } from '../errors.js'
import { ByteMap, bytesOf } from './byte-map.js'
import { jsonLimitError } from './json-limits.js'
import { createNew, privateDir, readPrivate } from './private-files.js'

export interface KnownCopy {
  /** The document's compact JSON text. */
  json: string
  updatedAt: string | null
  /** Its ETag, once a read has needed it. */
  etag?: string
}

const digest = (json: string) => hash('sha256', json, 'base64url')
const fileName = (layer: LayerName, key: string) => `${key}.${layer}`

export class LastKnownGood {
  /** key → layer → digest of the copy last seen. */
  readonly #index = new Map<string, Map<LayerName, string>>()
  /** Copies recently seen or read back, so that an outage's reads do not read the snapshot each time. */
  readonly #recent: ByteMap<KnownCopy>
  /** Per file: the change waiting to be written (null: remove the file), and the write in progress. Changes that
   * arrive while a write runs replace each other: a key written thousands of times a second is written once a turn. */
  readonly #pending = new Map<string, KnownCopy | null>()
  readonly #writing = new Map<string, Promise<void>>()

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
    for (const name of names) {
      const dot = name.lastIndexOf('.')
      const [key, layer] = [name.slice(0, dot), name.slice(dot + 1) as LayerName]
      if (dot <= 0 || !isValidKey(key) || !LAYER_ORDER.includes(layer)) continue
      const copy = await this.#read(layer, key)
      if (copy === undefined) continue
      const layers = this.#index.get(key) ?? new Map<LayerName, string>()
      layers.set(layer, digest(copy.json))
      this.#index.set(key, layers)
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

  /** Remembers `copy` as what `layer` holds for `key` (a copy already known costs a digest, no write). The digest is
   * the ETag's own hash (src/store/etag.ts): a copy that has its tag already is not hashed again. */
  see(layer: LayerName, key: string, copy: KnownCopy): void {
    const sum = copy.etag === undefined ? digest(copy.json) : copy.etag.slice(1, -1)
    const layers = this.#index.get(key)
    if (layers?.get(layer) === sum) return
    if (layers === undefined) this.#index.set(key, new Map([[layer, sum]]))
    else layers.set(layer, sum)
    // A stale answer served from this copy needs no other tag.
    const known = { json: copy.json, updatedAt: copy.updatedAt, etag: `"${sum}"` }
    this.#recent.set(fileName(layer, key), known, bytesOf(copy.json) + 64)
    this.#change(fileName(layer, key), known)
  }

  /** `layer` answered that it does not hold `key` (or it was deleted): nothing of it to fall back on. */
  forget(layer: LayerName, key: string): void {
    const layers = this.#index.get(key)
    if (layers === undefined || !layers.has(layer)) return
    layers.delete(layer)
    if (layers.size === 0) this.#index.delete(key)
    this.#recent.delete(fileName(layer, key))
    this.#change(fileName(layer, key), null)
  }

  /** The copy of `layer` last seen: from memory when it is there, else from the snapshot. */
  async get(layer: LayerName, key: string): Promise<KnownCopy | undefined> {
    if (!this.knows(layer, key)) return undefined
    const name = fileName(layer, key)
    const known = this.#recent.get(name) ?? this.#pending.get(name)
    if (known !== undefined) return known ?? undefined
    await this.#writing.get(name)
    const copy = await this.#read(layer, key)
    if (copy !== undefined && this.knows(layer, key)) this.#recent.set(name, copy, bytesOf(copy.json) + 64)
    return copy
  }

  /** Resolves when every snapshot write started so far is on disk. */
  async flushed(): Promise<void> {
    while (this.#writing.size > 0) await Promise.all(this.#writing.values())
  }

  #change(name: string, copy: KnownCopy | null): void {
    const queued = this.#pending.has(name)
    this.#pending.set(name, copy)
    if (queued) return
    const next = (this.#writing.get(name) ?? Promise.resolve()).then(() => this.#flush(name))
    this.#writing.set(name, next)
    void next.finally(() => {
      if (this.#writing.get(name) === next) this.#writing.delete(name)
    })
  }

  async #flush(name: string): Promise<void> {
    const copy = this.#pending.get(name)
    this.#pending.delete(name)
    const file = join(this.dir, name)
    try {
      if (copy === null || copy === undefined) return await rm(file, { force: true })
      await privateDir(this.dir)
      const tmp = join(this.dir, `.${name}.${randomBytes(4).toString('hex')}.tmp`)
      const fh = await createNew(tmp)
      try {
        await fh.writeFile(`${JSON.stringify(copy.updatedAt)}\n${copy.json}`)
      } finally {
        await fh.close()
      }
      await rename(tmp, file)
    } catch (err) {
      this.log.warn({ file, reason: reasonOf(err) }, 'could not update the last-known-good snapshot')
    }
  }

  async #read(layer: LayerName, key: string): Promise<KnownCopy | undefined> {
    let text: string
    try {
      text = await readPrivate(join(this.dir, fileName(layer, key)))
    } catch {
      return undefined
    }
    const newline = text.indexOf('\n')
    try {
      const updatedAt: unknown = JSON.parse(text.slice(0, newline))
      const json = text.slice(newline + 1)
      // Written by this service, but a file on disk: checked for depth like any stored text before it is served.
      const shape = newline > 0 && json.startsWith('{') && jsonLimitError(json, Number.MAX_SAFE_INTEGER) === undefined
      if (shape && (updatedAt === null || typeof updatedAt === 'string')) return { json, updatedAt }
    } catch {}
    this.log.warn({ key, layer, dir: this.dir }, 'a last-known-good snapshot file does not parse; ignored')
    return undefined
  }
}
