// The local JSON files layer: `<dir>/<key>.json`, pretty-printed UTF-8, written atomically (temp file, fsync,
// rename, fsync of the directory). `magic_link_tokens` is also read from the legacy file names (docs/keys.md).
import { randomBytes } from 'node:crypto'
import { type FSWatcher, watch } from 'node:fs'
import { access, constants, mkdir, open, readdir, readFile, realpath, rename, rm, stat } from 'node:fs/promises'
import { basename, dirname, join, resolve, sep } from 'node:path'
import { LayerUnavailableError, reasonOf } from '../src/errors.js'
import { ByteMap, bytesOf } from '../src/store/byte-map.js'
import { type ConfigDocument, isValidKey, type Layer, type ReadResult, timed } from './layer.js'
import { TextReader, type TextReaderOptions, textReaderDefaults } from './text-reader.js'

export interface FileLayerOptions extends Partial<TextReaderOptions> {
  dir: string
  /** Legacy alternate file for `magic_link_tokens`, read before the files in `dir`. */
  magicLinkTokensFile?: string | undefined
  /** Told the name of each `<name>.json` the directory's watch sees change (while the watch runs: after a read). */
  onChange?: ((name: string) => void) | undefined
}

export interface FileLayer extends Layer {
  /** The files a key is read from, in order (one, or the magic-link aliases). */
  pathsOf(key: string): string[]
  /** Starts the directory's watch now, rather than at the first read: a file written behind the service is then
   * noticed (onChange) even before anything was read. */
  watch(): void
  close(): void
}

const MAGIC = 'magic_link_tokens'
const MAGIC_ALIAS = 'magic_links'

/** The other names under which the files layer reaches `magic_link_tokens`: `magic_links` (the legacy file), and the
 * name of MAGIC_LINK_TOKENS_FILE when it lies in the files directory. Reading any of them needs admin. */
export function magicLinkAliases(dir: string, magicLinkTokensFile?: string): Map<string, string> {
  const aliases = new Map([[MAGIC_ALIAS, MAGIC]])
  if (magicLinkTokensFile !== undefined) {
    const file = resolve(magicLinkTokensFile)
    const name = basename(file, '.json')
    if (dirname(file) === resolve(dir) && file.endsWith('.json') && isValidKey(name) && name !== MAGIC)
      aliases.set(name, MAGIC)
  }
  return aliases
}

/** File texts (and absences) kept in memory while an inotify watch on the directory says they have not changed, so
 * a files layer that serves reads (Redis down, or files only) costs no disk I/O per read. Any event for a file drops
 * it; an event that is not about a config file (the directory itself went away) ends the watch and empties the
 * memory, and the next read starts again. */
class WatchedTexts {
  readonly #texts: ByteMap<string | null>
  #watcher: FSWatcher | undefined
  #generation = 0

  constructor(
    readonly root: string,
    maxBytes: number,
    readonly onChange?: (name: string) => void,
  ) {
    this.#texts = new ByteMap(maxBytes)
  }

  get(name: string): string | null | undefined {
    return this.#watcher === undefined ? undefined : this.#texts.get(name)
  }

  /** Call before reading a file; pass what it returns to `remember`. */
  begin(): number {
    if (this.#watcher === undefined) {
      try {
        this.#watcher = watch(this.root, { persistent: false }, (_event, name) => this.#changed(name))
        this.#watcher.on('error', () => this.stop())
      } catch {
        return -1 // no directory yet: nothing is remembered until there is one
      }
    }
    return this.#generation
  }

  remember(name: string, text: string | null, generation: number): void {
    if (generation !== this.#generation || this.#watcher === undefined) return
    this.#texts.set(name, text, (text === null ? 0 : bytesOf(text)) + 64)
  }

  forget(name: string): void {
    this.#generation++
    this.#texts.delete(name)
  }

  stop(): void {
    this.#watcher?.close()
    this.#watcher = undefined
    this.#generation++
    this.#texts.clear()
  }

  #changed(name: string | Buffer | null): void {
    const file = name === null ? '' : String(name)
    if (file.startsWith('.')) return // temp files, and the service's own folders (.lkg)
    if (file.endsWith('.json')) {
      this.forget(file)
      this.onChange?.(file.slice(0, -'.json'.length))
    } else if (!file.endsWith('.tmp')) this.stop()
  }
}

export function createFileLayer({ dir, magicLinkTokensFile, onChange, ...limits }: FileLayerOptions): FileLayer {
  const root = resolve(dir)
  const unavailable = (err: unknown) => new LayerUnavailableError('files', reasonOf(err), err)
  const { maxBytes, maxNodes } = { ...textReaderDefaults, ...limits }
  // The memo of file texts and the reader's memo of what they hold share this layer's part of the memory bound.
  const reader = new TextReader({ maxBytes: maxBytes / 2, maxNodes })
  const texts = new WatchedTexts(root, maxBytes / 2, (name) => {
    if (isValidKey(name)) onChange?.(name)
  })

  /** The text of a file of `root` (remembered while unchanged), or null when it does not exist. */
  async function readText(path: string): Promise<string | null> {
    const name = dirname(path) === root ? basename(path) : undefined
    const known = name === undefined ? undefined : texts.get(name)
    if (known !== undefined) return known
    const generation = texts.begin()
    let text: string | null
    try {
      text = await readInside(path)
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
      text = null
    }
    if (name !== undefined) texts.remember(name, text, generation)
    return text
  }

  /** A file of the directory is read without following a symlink out of it (a planted link to /etc/shadow is
   * refused); MAGIC_LINK_TOKENS_FILE, named by the operator, is read wherever it is. */
  async function readInside(path: string): Promise<string> {
    if (dirname(path) !== root) return readFile(path, 'utf8')
    try {
      return await readFile(path, { encoding: 'utf8', flag: constants.O_RDONLY | constants.O_NOFOLLOW })
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ELOOP') throw err
    }
    const [target, realRoot] = await Promise.all([realpath(path), realpath(root)])
    if (!target.startsWith(realRoot + sep)) {
      throw Object.assign(new Error(`${basename(path)} is a symlink out of the files directory; not read`), {
        code: 'EXDEV',
      })
    }
    return readFile(target, { encoding: 'utf8', flag: constants.O_RDONLY | constants.O_NOFOLLOW })
  }

  /** The legacy order for `magic_link_tokens`: MAGIC_LINK_TOKENS_FILE (the legacy default is magic_links.json, the
   * only file the legacy MagicLinkService reads and writes) first, then magic_link_tokens.json. Writes go to the
   * first, so that the legacy app sees them and no older file can shadow them. */
  function pathsOf(key: string): string[] {
    const own = join(root, `${key}.json`)
    if (key !== MAGIC) return [own]
    const legacy = join(root, `${MAGIC_ALIAS}.json`)
    return [...new Set([magicLinkTokensFile ? resolve(magicLinkTokensFile) : legacy, own, legacy])]
  }

  async function writeAtomic(path: string, text: string, progress = { renamed: false }): Promise<void> {
    // Credentials live here (magic_link_tokens): the directory is created 0700 and every file written 0600.
    await mkdir(dirname(path), { recursive: true, mode: 0o700 })
    const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`)
    try {
      const file = await open(tmp, 'wx', 0o600)
      try {
        await file.writeFile(text, 'utf8')
        await file.sync()
      } finally {
        await file.close()
      }
      await rename(tmp, path)
      progress.renamed = true
    } catch (err) {
      await rm(tmp, { force: true })
      throw err
    }
    const folder = await open(dirname(path), 'r')
    try {
      await folder.sync()
    } finally {
      await folder.close()
    }
  }

  return {
    name: 'files',
    pathsOf,
    watch: () => void texts.begin(),
    close: () => texts.stop(),

    async get(key: string): Promise<ReadResult> {
      for (const path of pathsOf(key)) {
        let text: string | null
        try {
          text = await readText(path)
        } catch (err) {
          return { state: 'unavailable', reason: reasonOf(err) }
        }
        if (text === null) continue
        const hit = reader.hit(key, text)
        return typeof hit === 'string' ? { state: 'unavailable', reason: `${path} ${hit}` } : hit
      }
      return { state: 'absent' }
    },

    fresh(key: string): Promise<ReadResult> {
      for (const path of pathsOf(key)) texts.forget(basename(path))
      return this.get(key)
    },

    async set(key: string, doc: ConfigDocument): Promise<void> {
      const target = pathsOf(key)[0] as string
      const progress = { renamed: false }
      try {
        await writeAtomic(target, `${JSON.stringify(doc, null, 2)}\n`, progress)
        if (onChange !== undefined) texts.begin() // the directory may have just been made: watched from now
      } catch (err) {
        // Failing after the rename (the directory's fsync), the new file is in place but perhaps not durable.
        throw new LayerUnavailableError('files', reasonOf(err), err, progress.renamed ? 'unknown' : 'not_written')
      } finally {
        texts.forget(basename(target)) // now, not when the watch event arrives: the next read must see this write
      }
    },

    async delete(key: string) {
      let deleted = false
      for (const path of pathsOf(key)) {
        try {
          await access(path)
          await rm(path)
          texts.forget(basename(path))
          deleted = true
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw unavailable(err)
        }
      }
      return deleted ? 'deleted' : 'absent'
    },

    async listKeys(): Promise<string[]> {
      let names: string[]
      try {
        names = await readdir(root)
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return []
        throw unavailable(err)
      }
      const keys = new Set<string>()
      for (const name of names) {
        if (!name.endsWith('.json')) continue
        const key = name.slice(0, -5) === MAGIC_ALIAS ? MAGIC : name.slice(0, -5)
        if (isValidKey(key)) keys.add(key)
      }
      if (magicLinkTokensFile && !keys.has(MAGIC)) {
        try {
          await access(resolve(magicLinkTokensFile))
          keys.add(MAGIC)
        } catch {}
      }
      return [...keys].sort()
    },

    async health() {
      try {
        const { value: info, ms } = await timed(async () => {
          await access(root, constants.R_OK | constants.W_OK)
          return stat(root)
        })
        if (!info.isDirectory()) return { ok: false, latencyMs: ms, error: `${root} is not a directory` }
        return { ok: true, latencyMs: ms }
      } catch (err) {
        // A directory that does not exist yet is created by the first write.
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { ok: true, latencyMs: 0 }
        return { ok: false, latencyMs: 0, error: reasonOf(err) }
      }
    },
  }
}
