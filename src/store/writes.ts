// Writes and deletes (docs/architecture.md "Writes" and "Deletes"): a write goes to the primary only, and its answer
// says only what is known — written, not written, or an outcome that reading back could not settle. A delete reaches
// every layer, so that no lower layer can resurrect the key.
import type { ConfigDocument, DeleteOutcome, Layer } from '../../stores/layer.js'
import { AppError, LayerUnavailableError, reasonOf, type WriteOutcome } from '../errors.js'
import { canonicalJson } from './canonical.js'
import type { KeyQuota } from './key-quota.js'
import { checkWritable, type StoreParts } from './parts.js'

export interface Written {
  key: string
  doc: ConfigDocument
  /** The document's JSON text, as written. */
  json: string
  source: Layer['name']
  updatedAt: string
}

export function createWriter(parts: StoreParts, quota: KeyQuota) {
  const { layers, primary, cache, log, outages, lkg, invalidation, counts } = parts

  /** Writes `doc` (stamped already) to the primary; 503 and nothing written when it is down. */
  async function commit(key: string, doc: ConfigDocument): Promise<Written> {
    await quota.check(key)
    const json = JSON.stringify(doc)
    let written: Written = { key, doc, json, source: primary.name, updatedAt: doc._updated_at as string }
    try {
      await primary.set(key, doc, json)
    } catch (err) {
      // Even a failed write may have landed (a timeout after the server applied it): never trust the old value.
      cache.invalidate(key)
      const outcome = err instanceof LayerUnavailableError ? err.outcome : 'unknown'
      const landed = outcome === 'unknown' ? await readBack(key, doc, json) : undefined
      if (landed === undefined) {
        counts.writes[outcome === 'unknown' ? 'unknown' : 'refused']++
        throw refusedWrite(key, outcome, err)
      }
      log.info(
        { layer: primary.name, key, reason: reasonOf(err) },
        `write of ${key} failed, but reading back shows it landed`,
      )
      written = landed
    }
    counts.writes.ok++
    cache.invalidate(key)
    // PHP stamps its own `_updated_at` (whole seconds): answer what the next read serves, not our stamp.
    if (primary.name === 'php') written = (await readBack(key, doc, json)) ?? written
    lkg?.see(primary.name, key, written)
    // A Redis write reaches other instances through tracking; anything else is announced.
    if (primary.name !== 'redis') await invalidation?.announce(key)
    return written
  }

  /** What the primary holds for `key` when it is the write of `doc` (its own stamp, or PHP's), else undefined. */
  async function readBack(key: string, doc: ConfigDocument, json: string): Promise<Written | undefined> {
    const r = await primary.get(key).catch(() => ({ state: 'unavailable' }) as const)
    if (r.state !== 'hit') return undefined
    const same = primary.name === 'php' ? canonicalJson(r.doc) === canonicalJson(doc) : r.json === json
    if (!same) return undefined
    return {
      key,
      doc: r.doc,
      json: r.json,
      source: primary.name,
      updatedAt: r.updatedAt ?? (doc._updated_at as string),
    }
  }

  function refusedWrite(key: string, outcome: WriteOutcome, err: unknown): AppError {
    log.warn(
      { layer: primary.name, key, reason: reasonOf(err) },
      outcome === 'unknown' ? `write of ${key}: outcome unknown` : `write of ${key} refused: primary down`,
    )
    if (outcome === 'unknown')
      return new AppError(
        'WRITE_OUTCOME_UNKNOWN',
        `the primary layer (${primary.name}) did not confirm the write of ${key}, and reading it back could not tell whether it landed; read ${key} before retrying`,
        { cause: err },
      )
    return new AppError(
      'STORE_UNAVAILABLE',
      `the primary layer (${primary.name}) could not be reached; nothing was written`,
      {
        cause: err,
      },
    )
  }

  /** The PHP API has no delete: blanking the document there would leave the legacy app, which reads a document
   * holding only `_updated_at` as present and empty, with a silently blank config. So while PHP holds the key, the
   * delete is refused and nothing is deleted anywhere; it must be removed on the PHP host first. */
  async function deletableLayers(key: string): Promise<readonly Layer[]> {
    const php = layers.find((l) => l.name === 'php')
    if (php === undefined) return layers
    const r = await php.get(key)
    if (r.state === 'hit')
      throw new AppError(
        'DELETE_REFUSED',
        `the PHP API holds ${key} and cannot delete it (blanking it would leave the legacy app an empty config); remove ${key}.json on the PHP host, then delete again`,
      )
    if (r.state === 'unavailable')
      throw new AppError(
        'STORE_UNAVAILABLE',
        `the php layer could not be reached, so ${key} may be there; nothing was deleted`,
      )
    return layers.filter((l) => l !== php)
  }

  /** Deletes `key` from one layer: its outcome, or undefined when the layer could not be reached. */
  async function deleteFrom(l: Layer, key: string): Promise<DeleteOutcome | undefined> {
    try {
      return await l.delete(key)
    } catch (err) {
      // A delete that timed out may have been applied: if the layer now answers absent, it was.
      const unknown = err instanceof LayerUnavailableError && err.outcome === 'unknown'
      if (unknown && (await l.get(key).catch(() => undefined))?.state === 'absent') return 'deleted'
      outages.unavailable(l.name, key, reasonOf(err))
      return undefined
    }
  }

  async function remove(key: string): Promise<Record<string, DeleteOutcome>> {
    checkWritable(parts, key)
    const targets = await deletableLayers(key)
    quota.forget(key)
    const done: Record<string, DeleteOutcome> = {}
    if (targets.length < layers.length) done.php = 'absent'
    const outcomes = await Promise.all(targets.map((l) => deleteFrom(l, key)))
    const down = targets.filter((l, i) => {
      const outcome = outcomes[i]
      if (outcome !== undefined) done[l.name] = outcome
      return outcome === undefined
    })
    for (const l of layers) if (done[l.name] !== undefined) lkg?.forget(l.name, key)
    cache.invalidate(key)
    await invalidation?.announce(key)
    if (down.length > 0) {
      const details = [
        ...Object.entries(done).map(([path, message]) => ({ path, message })),
        ...down.map((l) => ({ path: l.name, message: 'unavailable' })),
      ]
      const names = down.map((l) => l.name).join(', ')
      throw new AppError('STORE_UNAVAILABLE', `${key} could not be deleted from ${names}; retry the delete`, {
        details,
      })
    }
    if (Object.values(done).every((o) => o === 'absent'))
      throw new AppError('CONFIG_NOT_FOUND', `no layer holds ${key}`)
    return done
  }

  return { commit, remove }
}

export type Writer = ReturnType<typeof createWriter>
