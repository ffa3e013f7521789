// The answers of the hot paths, built as JSON text from the document's text as stored, never parsed and serialised
// again. Each builder's shape is a schema of src/http/schemas.ts (test/http/bodies.test.ts checks them against it):
// ConfigReply for reads and writes, LegacyRead for the PHP contract's read.
import type { Resolved } from '../store/cache.js'
import type { Written } from '../store/layered-store.js'

// The envelope's `timestamp`, formatted once per millisecond rather than once per response: a measurable part of a
// cached read's cost at tens of thousands of requests a second.
let lastMs = 0
let lastIso = ''

export function now(): string {
  const ms = Date.now()
  if (ms !== lastMs) {
    lastMs = ms
    lastIso = new Date(ms).toISOString()
  }
  return lastIso
}

/** ConfigReply without its closing timestamp. Key names and layer names never need escaping (docs/keys.md). */
const configBodyStart = (
  key: string,
  json: string,
  source: string,
  updatedAt: string | null,
  stale?: true,
  revision?: number | null,
) =>
  `{"status":"success","key":"${key}","data":${json},"meta":{"source":"${source}","updated_at":${JSON.stringify(updatedAt)}${stale ? ',"stale":true' : ''}${revision === undefined ? '' : `,"revision":${revision}`}}`

/** A read's ConfigReply. A cached value keeps its body, and its timestamped form for the millisecond it names. */
export function resolvedBody(r: Resolved): string {
  const ms = Date.now()
  if (r.sentAt !== ms || r.response === undefined) {
    r.body ??= configBodyStart(r.key, r.json, r.source, r.updatedAt, r.stale)
    r.response = `${r.body},"timestamp":"${new Date(ms).toISOString()}"}`
    r.sentAt = ms
  }
  return r.response
}

/** A write's ConfigReply, with its warnings when it has any. */
export const writtenBody = (w: Written, warnings: string[] = []) =>
  `${configBodyStart(w.key, w.json, w.source, w.updatedAt, undefined, w.revision)}${warnings.length > 0 ? `,"warnings":${JSON.stringify(warnings)}` : ''},"timestamp":"${now()}"}`

/** A revision's document as a ConfigReply (`?revision=N`). */
export const revisionBody = (key: string, json: string, source: string, updatedAt: string | null, revision: number) =>
  `${configBodyStart(key, json, source, updatedAt, undefined, revision)},"timestamp":"${now()}"}`

/** The PHP contract's read: both shapes, `{ success, config }` and `{ status, data, timestamp }`. */
export const legacyReadBody = (json: string) =>
  `{"success":true,"config":${json},"status":"success","data":${json},"timestamp":"${now()}"}`
