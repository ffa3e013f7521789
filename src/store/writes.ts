// Writes and deletes (docs/architecture.md "Writes" and "Deletes"): a write goes to the primary only, and its answer
// says only what is known — written, not written, or an outcome that reading back could not settle. A delete reaches
// every layer, so that no lower layer can resurrect the key.
import { type ConfigDocument, type DeleteOutcome, type Hit, type Layer, rawOf } from '../../stores/layer.js'
import { AppError, LayerUnavailableError, reasonOf, type WriteOutcome } from '../errors.js'
import { canonicalJson } from './canonical.js'
import { checkPreconditions, etagOf, type Preconditions } from './etag.js'
import type { KeyQuota } from './key-quota.js'
import { checkWritable, type StoreParts } from './parts.js'

export interface Written {
  key: string
  doc: ConfigDocument
  /** The document's JSON text, as written. */
  json: string
  source: Layer['name']
  updatedAt: string
  /** The strong ETag of the document as written. */
  etag: string
}

/** How many times a conditional write is made again because the key changed under it, before it gives up. */
const SWAP_ATTEMPTS = 100

export function createWriter(parts: StoreParts, quota: KeyQuota) {
  const { layers, primary, cache, log, outages, lkg, invalidation, counts, changes } = parts

  // Writes to a primary that cannot swap atomically (files, PHP) are serialised per key in this process, so that a
  // conditional write's check and its write are not split by another write of the same instance.
  const queues = new Map<string, Promise<unknown>>()
  function serialised<T>(key: string, fn: () => Promise<T>): Promise<T> {
    if (primary.swap !== undefined) return fn()
    const run = (queues.get(key) ?? Promise.resolve()).then(fn, fn)
    const tail = run.then(
      () => undefined,
      () => undefined,
    )
    queues.set(key, tail)
    void tail.then(() => {
      if (queues.get(key) === tail) queues.delete(key)
    })
    return run
  }

  /** Writes `doc` (stamped already) to the primary; 503 and nothing written when it is down. */
  async function commit(key: string, doc: ConfigDocument): Promise<Written> {
    await quota.check(key)
    const json = JSON.stringify(doc)
    const written = await serialised(key, () =>
      land(key, doc, json, async () => {
        await primary.set(key, doc, json)
        return true
      }),
    )
    return written as Written
  }

  /** The document as every layer holds it now, read directly: the primary's copy, else the first lower layer's; and
   * the text the primary holds (null: none), which a swap compares against. */
  async function current(key: string): Promise<{ base: Hit | undefined; expected: string | null }> {
    for (const l of layers) {
      const r = await l.get(key)
      if (r.state === 'unavailable')
        throw new AppError(
          'STORE_UNAVAILABLE',
          `the ${l.name} layer could not be reached, so the current ${key} is not known; nothing was written`,
        )
      if (r.state === 'hit') return { base: r, expected: l === primary ? rawOf(r) : null }
    }
    return { base: undefined, expected: null }
  }

  /** A write made from the current document (`build` gets it, or undefined), atomically: when another write lands
   * between the read and the write, it is made again from the newer document. `preconditions` are checked against
   * the current document each time (412 when they fail). */
  async function commitIf(
    key: string,
    build: (base: ConfigDocument | undefined) => ConfigDocument,
    preconditions: Preconditions = {},
  ): Promise<Written> {
    for (let attempt = 1; ; attempt++) {
      const { base, expected } = await current(key)
      checkPreconditions(key, base?.json, preconditions)
      const doc = build(base?.doc)
      const json = JSON.stringify(doc)
      await quota.check(key)
      const written = await serialised(key, () =>
        land(key, doc, json, async () => {
          if (primary.swap !== undefined) return primary.swap(key, expected, json)
          const now = await primary.get(key)
          if (now.state === 'unavailable') throw new LayerUnavailableError(primary.name, now.reason)
          if ((now.state === 'hit' ? rawOf(now) : null) !== expected) return false
          await primary.set(key, doc, json)
          return true
        }),
      )
      if (written !== undefined) return written
      if (attempt >= SWAP_ATTEMPTS)
        throw new AppError(
          'STORE_UNAVAILABLE',
          `${key} kept changing while it was written (${SWAP_ATTEMPTS} attempts); nothing was written`,
        )
    }
  }

  /** Runs `apply` (a write of `doc`: false when it did not apply, the key having changed) and settles its outcome. */
  async function land(
    key: string,
    doc: ConfigDocument,
    json: string,
    apply: () => Promise<boolean>,
  ): Promise<Written | undefined> {
    let written: Written = { key, doc, json, source: primary.name, updatedAt: doc._updated_at as string, etag: '' }
    try {
      if (!(await apply())) return undefined
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
    written.etag = etagOf(written.json)
    lkg?.see(primary.name, key, written)
    changes.changed(key)
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
    const updatedAt = r.updatedAt ?? (doc._updated_at as string)
    return { key, doc: r.doc, json: r.json, source: primary.name, updatedAt, etag: etagOf(r.json) }
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

  /** With preconditions, the primary's copy is deleted first, atomically against them (a swap to nothing); the
   * lower layers' copies then go as in any delete. Answers whether the primary's copy was deleted so. */
  async function removePrimaryIf(key: string, preconditions: Preconditions): Promise<boolean> {
    for (let attempt = 1; attempt <= SWAP_ATTEMPTS; attempt++) {
      const { base, expected } = await current(key)
      checkPreconditions(key, base?.json, preconditions)
      if (primary.swap === undefined || expected === null) return false // serialised, or held only below the primary
      try {
        if (await primary.swap(key, expected, null)) return true
      } catch (err) {
        throw refusedWrite(key, 'not_written', err)
      }
    }
    throw new AppError('STORE_UNAVAILABLE', `${key} kept changing while it was deleted; nothing was deleted`)
  }

  function remove(key: string, preconditions: Preconditions = {}): Promise<Record<string, DeleteOutcome>> {
    checkWritable(parts, key)
    const conditional = preconditions.ifMatch !== undefined || preconditions.ifNoneMatch !== undefined
    return serialised(key, async () => {
      const swapped = conditional ? await removePrimaryIf(key, preconditions) : false
      return removeAll(key, swapped)
    })
  }

  async function removeAll(key: string, primaryDeleted: boolean): Promise<Record<string, DeleteOutcome>> {
    const targets = await deletableLayers(key)
    quota.forget(key)
    const done: Record<string, DeleteOutcome> = {}
    if (targets.length < layers.length) done.php = 'absent'
    const outcomes = await Promise.all(targets.map((l) => deleteFrom(l, key)))
    const down = targets.filter((l, i) => {
      const outcome = outcomes[i]
      if (outcome !== undefined) done[l.name] = l === primary && primaryDeleted ? 'deleted' : outcome
      return outcome === undefined
    })
    for (const l of layers) if (done[l.name] !== undefined) lkg?.forget(l.name, key)
    cache.invalidate(key)
    changes.changed(key)
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

  return { commit, commitIf, remove }
}

export type Writer = ReturnType<typeof createWriter>
