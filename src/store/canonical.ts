// The canonical form of a document, for comparing copies across layers: keys sorted at every depth, the top-level
// `_updated_at` left out (each layer may stamp its own).
import { hash } from 'node:crypto'
import type { ConfigDocument } from '../../stores/layer.js'

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
  return hash('sha256', canonicalJson(doc), 'hex')
}

/** Milliseconds of a document's `_updated_at`, or null when it has none (or one that does not parse). */
export function stampOf(doc: ConfigDocument): number | null {
  const at = doc._updated_at
  if (typeof at !== 'string') return null
  const ms = Date.parse(at)
  return Number.isNaN(ms) ? null : ms
}

const stampText = (doc: ConfigDocument) => (typeof doc._updated_at === 'string' ? doc._updated_at : null)

/** -1, 0 or 1: which of two documents is newer by `_updated_at`; one with a stamp beats one without. */
export function compareStamps(a: ConfigDocument, b: ConfigDocument): number {
  return compareStampTexts(stampText(a), stampText(b))
}

/** A stamp without fractional seconds (PHP's `gmdate('c')`: 2026-01-19T00:36:24+00:00) says only which second. */
const wholeSeconds = (text: string) => !/T\d\d:\d\d:\d\d\./.test(text)

/** -1, 0 or 1 for two `_updated_at` texts. When either is in whole seconds, the two are compared by the second (PHP's
 * 18+00:00 is neither before nor after our 18.384Z). A stamp beats none, and one that does not parse. */
export function compareStampTexts(a: string | null, b: string | null): number {
  const x = a === null ? Number.NaN : Date.parse(a)
  const y = b === null ? Number.NaN : Date.parse(b)
  if (Number.isNaN(x) || Number.isNaN(y)) return Number.isNaN(x) === Number.isNaN(y) ? 0 : Number.isNaN(x) ? -1 : 1
  const coarse = wholeSeconds(a as string) || wholeSeconds(b as string)
  const [p, q] = coarse ? [Math.floor(x / 1000), Math.floor(y / 1000)] : [x, y]
  return p === q ? 0 : p < q ? -1 : 1
}
