// Export bundles (docs/operations.md "Export and import"): every key of the effective view in one JSON document,
// the cut-over's way back. Importing one is the store's (ConfigStore.importBundle: all or nothing).
import { randomBytes } from 'node:crypto'
import { lstatSync, renameSync, rmSync, type Stats, writeFileSync } from 'node:fs'
import { basename, dirname, join } from 'node:path'
import { isDocument } from '../../stores/layer.js'
import { AppError, UsageError } from '../errors.js'
import type { ConfigStore } from '../store/layered-store.js'

export const BUNDLE_FORMAT = 'config-store-export/1'

/** The bundle's text. Every configured layer must answer and every key be read: a bundle missing a key, or holding
 * a stale copy, would make a rollback silently lose data. */
export async function exportBundle(store: ConfigStore): Promise<{ text: string; keys: number }> {
  const down = (await store.health()).filter((l) => !l.ok).map((l) => l.layer)
  if (down.length > 0)
    throw new AppError('STORE_UNAVAILABLE', `${down.join(', ')} could not be reached; nothing exported`)
  const configs: Record<string, unknown> = Object.create(null) // a key named __proto__ is a key
  for (const { key, source } of await store.list()) {
    if (source === null) continue
    const r = await store.read(key)
    if (r.stale)
      throw new AppError('STORE_UNAVAILABLE', `${r.source} could not be reached for ${key}; nothing exported`)
    configs[key] = JSON.parse(r.json)
  }
  const text = `${JSON.stringify({ format: BUNDLE_FORMAT, exported_at: new Date().toISOString(), configs }, null, 2)}\n`
  return { text, keys: Object.keys(configs).length }
}

/** The configs of a parsed bundle; a UsageError naming `file` when it is not one. */
export function bundleConfigs(bundle: unknown, file: string): Record<string, unknown> {
  if (!isDocument(bundle) || bundle.format !== BUNDLE_FORMAT || !isDocument(bundle.configs))
    throw new UsageError(`${file} is not a config-store export bundle`)
  return bundle.configs
}

/** Writes a file that holds credentials: never through a symlink, and always ending 0600 (a new file renamed over the
 * old one, so an existing 0644 file does not keep its mode). */
export function writePrivate(path: string, text: string): void {
  let existing: Stats | undefined
  try {
    existing = lstatSync(path)
  } catch {}
  if (existing?.isSymbolicLink()) throw new UsageError(`${path} is a symlink; refusing to write credentials through it`)
  if (existing !== undefined && !existing.isFile()) throw new UsageError(`${path} is not a regular file`)
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`)
  try {
    writeFileSync(tmp, text, { mode: 0o600, flag: 'wx' })
    renameSync(tmp, path)
  } catch (err) {
    rmSync(tmp, { force: true })
    throw new UsageError(`cannot write ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`)
  }
}
