// The canonical form of a document, for comparing copies across layers: keys sorted at every depth, the top-level
// `_updated_at` left out (each layer may stamp its own).
import { createHash } from 'node:crypto'
import type { ConfigDocument } from '../stores/types.js'

function sorted(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sorted)
  if (typeof value !== 'object' || value === null) return value
  const out: Record<string, unknown> = Object.create(null) // a `__proto__` name is data here, not a prototype
  for (const name of Object.keys(value).sort()) out[name] = sorted((value as Record<string, unknown>)[name])
  return out
}

export function canonicalJson(doc: ConfigDocument): string {
  const { _updated_at: _, ...content } = doc
  return JSON.stringify(sorted(content))
}

export function canonicalHash(doc: ConfigDocument): string {
  return createHash('sha256').update(canonicalJson(doc)).digest('hex')
}

/** Milliseconds of a document's `_updated_at`, or null when it has none (or one that does not parse). */
export function stampOf(doc: ConfigDocument): number | null {
  const at = doc._updated_at
  if (typeof at !== 'string') return null
  const ms = Date.parse(at)
  return Number.isNaN(ms) ? null : ms
}

/** -1, 0 or 1: which of two documents is newer by `_updated_at`; one with a stamp beats one without. */
export function compareStamps(a: ConfigDocument, b: ConfigDocument): number {
  const x = stampOf(a)
  const y = stampOf(b)
  if (x === y) return 0
  if (x === null) return -1
  if (y === null) return 1
  return x < y ? -1 : 1
}
