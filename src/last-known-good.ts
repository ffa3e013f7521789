// Last-known-good (docs: README "Outages"): per key and per layer, the newest copy this instance has seen — written,
// read, or re-read after a change notice — so that while a layer is unreachable a read never turns back the clock to
// an older copy in a lower layer. In memory only the stamp and a digest are kept (the cache bound holds for every
// copy in memory); the documents are in a snapshot on disk, one 0600 file per key in CONFIG_LKG_DIR, that survives a
// restart. A snapshot file is replaced atomically (temp file, rename); the last change before a power loss may be
// lost, never a file half written.
import { createHash, randomBytes } from 'node:crypto'
import { mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { FastifyBaseLogger as Logger } from 'fastify'
import { isValidKey, type LayerName } from '../stores/types.js'
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

  constructor(
    readonly dir: string,
    readonly log: Logger,
  ) {}

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
    this.#update(key, (s) => {
      s.layers[layer] = { json: copy.json, updatedAt: copy.updatedAt }
    })
  }

  /** `layer` answered that it does not hold `key` (or it was deleted): nothing of it to fall back on. */
  forget(layer: LayerName, key: string): void {
    const layers = this.#index.get(key)
    if (layers === undefined || !layers.has(layer)) return
    layers.delete(layer)
    if (layers.size === 0) this.#index.delete(key)
    this.#update(key, (s) => {
      delete s.layers[layer]
    })
  }

  /** The copy of `layer` last seen, from the snapshot. */
  async get(layer: LayerName, key: string): Promise<KnownCopy | undefined> {
    if (this.#index.get(key)?.has(layer) !== true) return undefined
    await this.#writing.get(key)
    return (await this.#read(key))?.layers[layer]
  }

  /** Resolves when every snapshot write started so far is on disk. */
  async flushed(): Promise<void> {
    await Promise.all(this.#writing.values())
  }

  #update(key: string, change: (s: Snapshot) => void): void {
    const previous = this.#writing.get(key) ?? Promise.resolve()
    const next = previous.then(async () => {
      const snapshot = (await this.#read(key)) ?? { key, layers: {} }
      change(snapshot)
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
    })
    this.#writing.set(key, next)
    void next.finally(() => {
      if (this.#writing.get(key) === next) this.#writing.delete(key)
    })
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
