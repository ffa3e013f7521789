// The interface every layer implements (docs/architecture.md "Layers"). The store above knows nothing of Redis, HTTP
// or files.
import { type Static, Type } from 'typebox'

export const LayerNameSchema = Type.Union([Type.Literal('redis'), Type.Literal('php'), Type.Literal('files')])
export type LayerName = Static<typeof LayerNameSchema>
export const LAYER_ORDER: readonly LayerName[] = ['redis', 'php', 'files']

export type ConfigDocument = Record<string, unknown>

/** A document a layer holds: its JSON text, its `_updated_at`, and the document itself. */
export interface Hit {
  readonly state: 'hit'
  readonly json: string
  readonly updatedAt: string | null
  readonly doc: ConfigDocument
  /** The layer's text is the one it gave last time for this key (so nothing about it changed). */
  readonly reused?: boolean
  /** The text exactly as stored (Redis), for a compare-and-set against it. */
  readonly raw?: string
  /** The document's strong ETag, when the layer keeps it (computed once per stored text). */
  readonly etag?: string
  /** Read from a Redis replica while the master could not be read (REDIS_READ_FROM=replica): it may lag behind. */
  readonly stale?: true
}

/** A read never returns a bare `{}`: it is a hit, an answered absence, or a layer that could not answer. */
export type ReadResult =
  | Hit
  | { state: 'absent' }
  | {
      state: 'unavailable'
      reason: string
      /** The stored text, when the layer answered with one that is not a document (not JSON, over the limits). */
      unreadable?: string
    }

export const DeleteOutcomeSchema = Type.Union([Type.Literal('deleted'), Type.Literal('absent')])
export type DeleteOutcome = Static<typeof DeleteOutcomeSchema>

export const LayerHealthSchema = Type.Object({
  ok: Type.Boolean(),
  latencyMs: Type.Number(),
  error: Type.Optional(
    Type.String({ description: 'why the layer is down: shown only to a caller with a valid token' }),
  ),
})
export type LayerHealth = Static<typeof LayerHealthSchema>

export interface Layer {
  readonly name: LayerName
  get(key: string): Promise<ReadResult>
  /** A read of what the layer holds this instant, past anything it remembers (the files layer's watched texts,
   * which lag a write by another process until its watch event arrives). */
  fresh?(key: string): Promise<ReadResult>
  /** Stores the whole document (`json` is its JSON text, when the caller has it already); throws
   * LayerUnavailableError when the layer cannot take it. */
  set(key: string, doc: ConfigDocument, json?: string): Promise<void>
  /** Throws LayerUnavailableError when the layer cannot answer. */
  delete(key: string): Promise<DeleteOutcome>
  /** Atomically: when the key still holds `expected` (the raw text a read gave, or null for absent), replaces it with
   * `json` (or deletes it, for null) and answers true; otherwise changes nothing and answers false. Only layers that
   * can do this atomically against every writer have it (Redis); the store serialises the others in-process. */
  swap?(key: string, expected: string | null, json: string | null): Promise<boolean>
  /** The service wrote `json` (compact, as stored) to `key` of this layer: a layer that remembers the texts it read
   * remembers this one, so that reading it back costs no parse. */
  wrote?(key: string, json: string, updatedAt: string | null, etag: string): void
  /** Config keys this layer holds (a layer that cannot list, like the PHP API, returns []). */
  listKeys(): Promise<string[]>
  health(): Promise<LayerHealth>
}

export const KEY_PATTERN = /^[a-z0-9_-]{1,128}$/

export function isValidKey(key: unknown): key is string {
  return typeof key === 'string' && KEY_PATTERN.test(key)
}

/** The text a hit was read from, as a `swap` compares it. */
export const rawOf = (hit: Hit): string => hit.raw ?? hit.json

export const updatedAtOf = (doc: ConfigDocument) => (typeof doc._updated_at === 'string' ? doc._updated_at : null)

export function hitFromDoc(doc: ConfigDocument): Hit {
  return { state: 'hit', doc, json: JSON.stringify(doc), updatedAt: updatedAtOf(doc) }
}

/** Parses a stored JSON text; only a JSON object is a document. */
export function parseDocument(text: string): ConfigDocument | undefined {
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch {
    return undefined
  }
  return isDocument(value) ? value : undefined
}

export function isDocument(value: unknown): value is ConfigDocument {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

export async function timed<T>(fn: () => Promise<T>): Promise<{ value: T; ms: number }> {
  const start = performance.now()
  const value = await fn()
  return { value, ms: Math.round((performance.now() - start) * 100) / 100 }
}
