// The interface every layer implements (store.md "Layers"). The store above knows nothing of Redis, HTTP or files.
import { type Static, Type } from 'typebox'

export const LayerNameSchema = Type.Union([Type.Literal('redis'), Type.Literal('php'), Type.Literal('files')])
export type LayerName = Static<typeof LayerNameSchema>
export const LAYER_ORDER: readonly LayerName[] = ['redis', 'php', 'files']

export type ConfigDocument = Record<string, unknown>

/** A read never returns a bare `{}`: it is a hit, an answered absence, or a layer that could not answer. */
export type ReadResult =
  | { state: 'hit'; doc: ConfigDocument; json: string }
  | { state: 'absent' }
  | { state: 'unavailable'; reason: string }

export type DeleteOutcome = 'deleted' | 'absent'

export interface LayerHealth {
  ok: boolean
  latencyMs: number
  error?: string
}

export interface Layer {
  readonly name: LayerName
  get(key: string): Promise<ReadResult>
  /** Stores the whole document; throws LayerUnavailableError when the layer cannot take it. */
  set(key: string, doc: ConfigDocument): Promise<void>
  /** Throws LayerUnavailableError when the layer cannot answer. */
  delete(key: string): Promise<DeleteOutcome>
  /** Config keys this layer holds (a layer that cannot list, like the PHP API, returns []). */
  listKeys(): Promise<string[]>
  health(): Promise<LayerHealth>
}

export const KEY_PATTERN = /^[a-z0-9_-]{1,128}$/

export function isValidKey(key: unknown): key is string {
  return typeof key === 'string' && KEY_PATTERN.test(key)
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
