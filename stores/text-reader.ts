// Reading stored texts, shared by the Redis and files layers: each text is checked against the shape limits before it
// is parsed, and what it holds is remembered per key, within a byte bound.
import { ByteMap, bytesOf } from '../src/store/byte-map.js'
import { etagOf } from '../src/store/etag.js'
import { DEFAULT_MAX_NODES, jsonLimitError, STORED_SLACK } from '../src/store/json-limits.js'
import { type ConfigDocument, type Hit, parseDocument, updatedAtOf } from './layer.js'

// What a stored text holds (whether it is an object, its compact JSON and its `_updated_at`) is remembered per key,
// with the text it was read from: the same value read again — the usual case — costs a string comparison, not a
// parse. The document itself is parsed only when someone asks for it; a read served as JSON text never needs it.
/** What the memo keeps of a stored text; its ETag is computed the first time a read needs it, then kept. */
interface Known {
  text: string
  json: string
  updatedAt: string | null
  etag?: string
}

class TextHit implements Hit {
  readonly state = 'hit'
  #doc: ConfigDocument | undefined
  constructor(
    readonly known: Known,
    readonly reused: boolean,
    doc?: ConfigDocument,
  ) {
    this.#doc = doc
  }
  get json(): string {
    return this.known.json
  }
  get updatedAt(): string | null {
    return this.known.updatedAt
  }
  get raw(): string {
    return this.known.text
  }
  get doc(): ConfigDocument {
    this.#doc ??= JSON.parse(this.json) as ConfigDocument
    return this.#doc
  }
  get etag(): string {
    this.known.etag ??= etagOf(this.known.json)
    return this.known.etag
  }
}

export interface TextReaderOptions {
  /** Bytes of text the memo may hold (its share of CONFIG_CACHE_MAX_BYTES). */
  maxBytes: number
  /** A stored text with more values than this, or nested deeper than MAX_DEPTH, is refused unparsed. */
  maxNodes: number
}

export class TextReader {
  readonly #last: ByteMap<Known>
  readonly #maxNodes: number

  constructor({ maxBytes, maxNodes }: TextReaderOptions) {
    this.#last = new ByteMap(maxBytes)
    this.#maxNodes = maxNodes
  }

  /** A hit for the JSON text stored at `key`, or why it is not one (not a JSON object, or over the limits). The
   * hit's `json` is the compact form, whatever the spacing of the stored text (a pretty-printed file, Python's
   * `", "`). */
  hit(key: string, text: string): Hit | string {
    const last = this.#last.get(key)
    if (last !== undefined && last.text === text) return new TextHit(last, true)
    const tooBig = jsonLimitError(text, this.#maxNodes + STORED_SLACK)
    if (tooBig !== undefined) return tooBig
    const doc = parseDocument(text)
    if (doc === undefined) return 'does not hold a JSON object'
    const json = JSON.stringify(doc)
    const updatedAt = updatedAtOf(doc)
    const known: Known = { text, json, updatedAt }
    this.#last.set(key, known, bytesOf(text) + (json === text ? 0 : bytesOf(json)) + 128)
    return new TextHit(known, false, doc)
  }

  /** `key` now holds `json` (compact), written through the service: the next read of that text costs no parse. */
  remember(key: string, json: string, updatedAt: string | null, etag: string): void {
    this.#last.set(key, { text: json, json, updatedAt, etag }, bytesOf(json) + 128)
  }

  forget(key: string): void {
    this.#last.delete(key)
  }
}

/** Limits for a layer built without them (tests, tools): the configuration's defaults. */
export const textReaderDefaults: TextReaderOptions = { maxBytes: 16 * 1024 * 1024, maxNodes: DEFAULT_MAX_NODES }
