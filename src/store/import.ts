// Importing an export bundle (docs/operations.md "Export and import"): all or nothing. Every document is validated
// before anything is written; each keeps its own `_updated_at`; and when a write fails, the keys already written are
// put back in the primary as they were before the import.
import { type ConfigDocument, isDocument, isValidKey, type ReadResult } from '../../stores/layer.js'
import { AppError, reasonOf } from '../errors.js'
import { canonicalJson } from './canonical.js'
import type { Attribution } from './history/schemas.js'
import { checkWritable, type StoreParts } from './parts.js'
import { validOrThrow } from './validation.js'
import type { Writer } from './writes.js'

export interface Imported {
  keys: string[]
  /** The keys the primary already held exactly as the bundle has them (`_updated_at` included): not written again,
   * so they get no new revision. Null: a dry run could not read the primary, so which they are is not known. */
  unchanged: string[] | null
  /** The layer the documents were written to. */
  primary: string
  dryRun: boolean
}

/** Whether the primary's text holds `doc` as it is: the same content and the same `_updated_at`. */
function holds(read: ReadResult | undefined, doc: ConfigDocument): boolean {
  if (read?.state !== 'hit') return false
  const stored = JSON.parse(read.json) as ConfigDocument
  return stored._updated_at === doc._updated_at && canonicalJson(stored) === canonicalJson(doc)
}

export async function importBundle(
  parts: StoreParts,
  writer: Writer,
  configs: Record<string, unknown>,
  dryRun: boolean,
  by: Attribution,
): Promise<Imported> {
  const { primary, validator } = parts
  const problems: string[] = []
  for (const [key, doc] of Object.entries(configs)) {
    const result = isDocument(doc)
      ? validator.validate(key, doc)
      : { ok: false as const, errors: [{ path: '/', message: 'is not an object' }] }
    if (!isValidKey(key)) problems.push(`${key}: not a valid key name`)
    else if (!validator.accepts(key)) problems.push(`${key}: has no schema (CONFIG_STORE_UNKNOWN_KEYS=reject)`)
    else if (!result.ok) problems.push(...result.errors.map((e) => `${key} ${e.path} ${e.message}`))
  }
  if (problems.length > 0)
    throw new AppError('VALIDATION_FAILED', `import refused, nothing written: ${problems.join('; ')}`)
  const keys = Object.keys(configs)
  const before = new Map<string, ReadResult>()
  for (const key of keys) {
    const read = await primary.get(key)
    if (read.state === 'unavailable') {
      if (dryRun) return { keys, unchanged: null, primary: primary.name, dryRun }
      throw new AppError(
        'STORE_UNAVAILABLE',
        `the primary layer (${primary.name}) could not be reached; nothing written`,
      )
    }
    before.set(key, read)
  }
  const unchanged = keys.filter((key) => holds(before.get(key), configs[key] as ConfigDocument))
  if (dryRun) return { keys, unchanged, primary: primary.name, dryRun }
  const toWrite = keys.filter((key) => !unchanged.includes(key))
  const written: string[] = []
  try {
    for (const key of toWrite) {
      await restore(parts, writer, key, configs[key] as ConfigDocument, by)
      written.push(key)
    }
  } catch (err) {
    const failed = toWrite[written.length] as string
    // A write whose outcome is unknown may have landed: it is put back too.
    const undo = err instanceof AppError && err.code === 'WRITE_OUTCOME_UNKNOWN' ? [...written, failed] : written
    const notUndone: string[] = []
    for (const key of undo) {
      const old = before.get(key)
      try {
        await writer.putBack(key, old?.state === 'hit' ? old.json : null, by)
      } catch (undoErr) {
        notUndone.push(`${key} (${reasonOf(undoErr)})`)
      }
    }
    const undone = undo.filter((k) => !notUndone.some((n) => n.startsWith(`${k} (`)))
    const rolledBack = undone.length > 0 ? `rolled back ${undone.join(', ')}` : 'nothing to roll back'
    const left =
      notUndone.length > 0
        ? `; COULD NOT roll back ${notUndone.join(', ')}: they may hold the imported values — check them with config-store get`
        : ''
    throw new AppError(
      'STORE_UNAVAILABLE',
      `import failed at ${failed} (${(err as Error).message}); ${rolledBack}${left}`,
    )
  }
  return { keys, unchanged, primary: primary.name, dryRun }
}

/** Puts back an exported document as it was (its own `_updated_at` kept, stamped only when missing), validated. */
async function restore(parts: StoreParts, writer: Writer, key: string, input: ConfigDocument, by: Attribution) {
  checkWritable(parts, key)
  validOrThrow(parts.validator, key, input)
  return writer.commit(
    key,
    typeof input._updated_at === 'string' ? input : { ...input, _updated_at: new Date().toISOString() },
    by,
  )
}
