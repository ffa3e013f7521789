// Writes and deletes (docs/architecture.md "Writes" and "Deletes"): a write goes to the primary only, and its answer
// says only what is known — written, not written, or an outcome that reading back could not settle. A delete reaches
// every layer, so that no lower layer can resurrect the key.
import { type ConfigDocument, type DeleteOutcome, type Hit, type Layer, rawOf } from '../../stores/layer.js'
import { AppError, LayerUnavailableError, reasonOf, type WriteOutcome } from '../errors.js'
import { canonicalJson } from './canonical.js'
import { checkPreconditions, etagOf, etagOfSha, type Preconditions } from './etag.js'
import { type Recorded, sha256Hex } from './history/history.js'
import type { Attribution } from './history/schemas.js'
import type { KeyQuota } from './key-quota.js'
import { checkWritable, type StoreParts } from './parts.js'

/** How a write is made: its preconditions (If-Match, If-None-Match), and who makes it. */
export interface WriteOptions extends Preconditions {
  by?: Attribution | undefined
}

export const ANONYMOUS: Attribution = { actor: 'anonymous', via: 'api' }

/** A delete's outcome: per layer, whether it held the key; and the revision it made (null: not known). */
export interface Removed {
  layers: Record<string, DeleteOutcome>
  revision: number | null
}

export interface Written {
  key: string
  doc: ConfigDocument
  /** The document's JSON text, as written. */
  json: string
  source: Layer['name']
  updatedAt: string
  /** The strong ETag of the document as written. */
  etag: string
  /** The revision this write made; null when it landed but its revision could not be recorded or known. */
  revision: number | null
  /** Whether the write made a new key (no layer listed it, at most a second before). */
  created?: boolean
}

/** What a write did: not applied (false: the key changed under it), or applied, with its revision when recorded. */
type Applied = false | { recorded: Recorded | null }

/** How many times a conditional write is made again because the key changed under it, before it gives up. */
const SWAP_ATTEMPTS = 100

export function createWriter(parts: StoreParts, quota: KeyQuota) {
  const { layers, primary, cache, log, outages, lkg, invalidation, counts, changes, history } = parts
  // Redis as the primary, with its history beside it: a write and its revision are one script. Any other primary's
  // writes are made while history holds the key (in this process, and for the journal in every process), so that a
  // conditional write's check, its write and its revision are not split by another write.
  const swap = primary.name === 'redis' ? history.swap : undefined
  // With history off, a primary that swaps atomically (Redis) needs no serialising either.
  const atomic = swap !== undefined || (history.kind === 'off' && primary.swap !== undefined)
  const serialised = <T>(key: string, fn: () => Promise<T>): Promise<T> => (atomic ? fn() : history.exclusive(key, fn))

  /** Records a change the primary made (not through a Redis script): a failure to record does not undo the write,
   * whose answer then says it has no revision. */
  async function record(key: string, json: string | null, by: Attribution): Promise<Recorded | null> {
    if (history.kind === 'off') return null
    try {
      return await history.record(key, { by, json, time: new Date().toISOString(), source: primary.name })
    } catch (err) {
      log.warn({ key, reason: reasonOf(err) }, `the change of ${key} was made, but its revision could not be recorded`)
      return null
    }
  }

  /** Records a write the primary took: as it stores it (PHP stamps its own `_updated_at`, so it is read back). */
  async function recordWrite(key: string, doc: ConfigDocument, json: string, by: Attribution) {
    const stored = primary.name === 'php' ? ((await readBack(key, doc, json))?.json ?? json) : json
    return record(key, stored, by)
  }

  /** One structured line per change: who, what, how, and the hashes (never the content of the document). */
  function audit(key: string, recorded: Recorded | null, by: Attribution): void {
    const r = recorded?.revision
    log.info(
      {
        audit: true,
        key,
        actor: by.actor,
        via: by.via,
        revision: r?.revision ?? null,
        before: r?.before,
        after: r?.after,
      },
      `config change: ${key} by ${by.actor} (${by.via})`,
    )
  }

  /** Writes `doc` (stamped already) to the primary; 503 and nothing written when it is down. */
  async function commit(key: string, doc: ConfigDocument, by: Attribution = ANONYMOUS): Promise<Written> {
    const created = await quota.check(key)
    const json = JSON.stringify(doc)
    const written = await serialised(key, () =>
      land(key, doc, json, by, async () => {
        if (swap !== undefined) return { recorded: (await swap(key, undefined, json, by, now())) as Recorded }
        await primary.set(key, doc, json)
        return { recorded: await recordWrite(key, doc, json, by) }
      }),
    )
    return { ...(written as Written), created }
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
    by: Attribution = ANONYMOUS,
  ): Promise<Written> {
    for (let attempt = 1; ; attempt++) {
      const { base, expected } = await current(key)
      checkPreconditions(key, base?.json, preconditions)
      const doc = build(base?.doc)
      const json = JSON.stringify(doc)
      const created = await quota.check(key)
      const written = await serialised(key, () => land(key, doc, json, by, () => writeIf(key, expected, doc, json, by)))
      if (written !== undefined) return { ...written, created }
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
    by: Attribution,
    apply: () => Promise<Applied>,
  ): Promise<Written | undefined> {
    const updatedAt = doc._updated_at as string
    let written: Written = { key, doc, json, source: primary.name, updatedAt, etag: '', revision: null }
    let recorded: Recorded | null = null
    try {
      const applied = await apply()
      if (applied === false) return undefined
      recorded = applied.recorded
    } catch (err) {
      // Even a failed write may have landed (a timeout after the server applied it): never trust the old value.
      cache.invalidate(key)
      const outcome = err instanceof LayerUnavailableError ? err.outcome : 'unknown'
      const landed = outcome === 'unknown' ? await readBack(key, doc, json) : undefined
      if (landed === undefined) {
        counts.writes[outcome === 'not_written' ? 'refused' : 'unknown']++
        throw refusedWrite(key, outcome, err)
      }
      log.info(
        { layer: primary.name, key, reason: reasonOf(err) },
        `write of ${key} failed, but reading back shows it landed`,
      )
      written = landed
      // It landed with its revision (one script), or its revision was never made: the latest one says which.
      recorded = await latestOf(key, landed.json)
    }
    audit(key, recorded, by)
    counts.writes.ok++
    cache.invalidate(key)
    // PHP stamps its own `_updated_at` (whole seconds): answer what the next read serves, not our stamp.
    if (primary.name === 'php') written = (await readBack(key, doc, json)) ?? written
    written.revision = recorded?.revision.revision ?? null
    // The revision hashed the document as written already: its digest is the tag.
    const after = recorded?.revision.after
    written.etag = after ? etagOfSha(after) : etagOf(written.json)
    // Redis stores the compact text as written: a read of it (our own change notice's refresh) needs no parse.
    if (primary.name === 'redis') primary.wrote?.(key, written.json, written.updatedAt, written.etag)
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
    return { key, doc: r.doc, json: r.json, source: primary.name, updatedAt, etag: etagOf(r.json), revision: null }
  }

  /** The latest revision of `key`, when it is the document `json`. */
  async function latestOf(key: string, json: string): Promise<Recorded | null> {
    const [latest] = await history.list(key, 1).catch(() => [])
    return latest !== undefined && latest.after === sha256Hex(json) ? { revision: latest, id: '' } : null
  }

  function refusedWrite(key: string, outcome: WriteOutcome, err: unknown): AppError {
    log.warn(
      { layer: primary.name, key, reason: reasonOf(err) },
      outcome === 'not_written' ? `write of ${key} refused: primary down` : `write of ${key}: outcome unknown`,
    )
    if (outcome === 'unreplicated')
      return new AppError(
        'WRITE_OUTCOME_UNKNOWN',
        `the Redis master applied the write of ${key}, but its replicas are not known to hold it (REDIS_WRITE_REPLICAS), so a failover may still drop it (${reasonOf(err)}); read ${key} before retrying`,
        { cause: err },
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

  /** Deletes `key` from one layer: its outcome, or undefined when the layer could not be reached. (`failed`: the
   * error of a delete already tried.) */
  async function deleteFrom(l: Layer, key: string, failed?: unknown): Promise<DeleteOutcome | undefined> {
    try {
      if (failed !== undefined) throw failed
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
   * lower layers' copies then go as in any delete. Answers the revision when the primary's copy was deleted so. */
  async function removePrimaryIf(
    key: string,
    preconditions: Preconditions,
    by: Attribution,
  ): Promise<Recorded | null | undefined> {
    for (let attempt = 1; attempt <= SWAP_ATTEMPTS; attempt++) {
      const { base, expected } = await current(key)
      checkPreconditions(key, base?.json, preconditions)
      if (!atomic || expected === null) return undefined // serialised, or held only below the primary
      let done: Recorded | boolean | 'absent'
      try {
        // With history, its script; with history off, the layer's own swap (null: deleted, no revision).
        done =
          swap !== undefined
            ? await swap(key, expected, null, by, now())
            : await (primary.swap as NonNullable<Layer['swap']>)(key, expected, null)
      } catch (err) {
        throw refusedWrite(key, err instanceof LayerUnavailableError ? err.outcome : 'unknown', err)
      }
      if (done === true) return null
      if (done !== false && done !== 'absent') return done
    }
    throw new AppError('STORE_UNAVAILABLE', `${key} kept changing while it was deleted; nothing was deleted`)
  }

  function remove(key: string, options: WriteOptions = {}): Promise<Removed> {
    checkWritable(parts, key)
    const by = options.by ?? ANONYMOUS
    const conditional = options.ifMatch !== undefined || options.ifNoneMatch !== undefined
    return serialised(key, async () => {
      const swapped = conditional ? await removePrimaryIf(key, options, by) : undefined
      return removeAll(key, swapped, by)
    })
  }

  /** `swapped`: the primary's copy was deleted already, by a conditional delete (with its revision, or null). */
  async function removeAll(key: string, swapped: Recorded | null | undefined, by: Attribution): Promise<Removed> {
    const targets = await deletableLayers(key)
    quota.forget(key)
    const done: Record<string, DeleteOutcome> = {}
    if (targets.length < layers.length) done.php = 'absent'
    let recorded: Recorded | null | undefined = swapped
    let readBack = false
    // The primary's copy goes with its revision, in one script, when it can.
    const deletePrimary = async (): Promise<DeleteOutcome | undefined> => {
      if (swapped !== undefined || swap === undefined) return deleteFrom(primary, key)
      try {
        const result = await swap(key, undefined, null, by, now())
        if (result === 'absent') return 'absent'
        recorded = result as Recorded
        return 'deleted'
      } catch (err) {
        readBack = true
        return deleteFrom(primary, key, err)
      }
    }
    const outcomes = await Promise.all(targets.map((l) => (l === primary ? deletePrimary() : deleteFrom(l, key))))
    const down = targets.filter((l, i) => {
      const outcome = outcomes[i]
      if (outcome !== undefined) done[l.name] = l === primary && swapped !== undefined ? 'deleted' : outcome
      return outcome === undefined
    })
    for (const l of layers) if (done[l.name] !== undefined) lkg?.forget(l.name, key)
    cache.invalidate(key)
    const deleted = Object.values(done).includes('deleted')
    if (deleted) {
      if (recorded === undefined) recorded = readBack ? await latestDelete(key, by) : await record(key, null, by)
      audit(key, recorded, by)
    }
    changes.changed(key)
    await invalidation?.announce(key)
    if (down.length > 0) {
      const details = [
        ...Object.entries(done).map(([path, message]) => ({ path, message })),
        ...down.map((l) => ({ path: l.name, message: 'unavailable' })),
      ]
      const names = down.map((l) => l.name).join(', ')
      throw new AppError('STORE_UNAVAILABLE', `${key} is not known to be deleted from ${names}; retry the delete`, {
        details,
      })
    }
    if (!deleted) throw new AppError('CONFIG_NOT_FOUND', `no layer holds ${key}`)
    return { layers: done, revision: recorded?.revision.revision ?? null }
  }

  /** A delete through Redis whose outcome had to be read back: the latest revision when it is a delete (the script
   * ran), else a revision for it. */
  async function latestDelete(key: string, by: Attribution): Promise<Recorded | null> {
    const [latest] = await history.list(key, 1).catch(() => [])
    if (latest?.op === 'delete') return { revision: latest, id: '' }
    return record(key, null, by)
  }

  /** Puts the primary's copy back as it was (`json`, or absent for null), with its revision: an import's undo. */
  function putBack(key: string, json: string | null, by: Attribution): Promise<void> {
    return serialised(key, async () => {
      cache.invalidate(key)
      if (swap !== undefined) {
        const recorded = await swap(key, undefined, json, by, now())
        if (recorded !== false && recorded !== 'absent') audit(key, recorded, by)
      } else {
        await (json === null ? primary.delete(key) : primary.set(key, JSON.parse(json), json))
        audit(key, await record(key, json, by), by)
      }
      cache.invalidate(key)
      changes.changed(key)
      await invalidation?.announce(key)
    })
  }

  /** Writes `doc` as it is (no stamp, no schema) when the primary still holds `expected` (its raw text, null for
   * absent): a migration's compare-and-set, with its revision. Answers whether it applied. */
  async function compareAndSet(key: string, expected: string | null, doc: ConfigDocument, by: Attribution) {
    const json = JSON.stringify(doc)
    const written = await serialised(key, () => land(key, doc, json, by, () => writeIf(key, expected, doc, json, by)))
    return written !== undefined
  }

  /** Writes `doc` when the primary still holds `expected` (its raw text, null for absent), with its revision: false
   * when it does not. Atomic in one script with Redis; otherwise inside `serialised`. */
  async function writeIf(
    key: string,
    expected: string | null,
    doc: ConfigDocument,
    json: string,
    by: Attribution,
  ): Promise<Applied> {
    if (swap !== undefined) {
      const done = await swap(key, expected, json, by, now())
      return done === false ? false : { recorded: done as Recorded }
    }
    if (primary.swap !== undefined) {
      if (!(await primary.swap(key, expected, json))) return false
    } else {
      const held = await primary.get(key)
      if (held.state === 'unavailable') throw new LayerUnavailableError(primary.name, held.reason)
      if ((held.state === 'hit' ? rawOf(held) : null) !== expected) return false
      await primary.set(key, doc, json)
    }
    return { recorded: await recordWrite(key, doc, json, by) }
  }

  return { commit, commitIf, remove, putBack, compareAndSet }
}

const now = () => new Date().toISOString()

export type Writer = ReturnType<typeof createWriter>
