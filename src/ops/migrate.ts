// Migrate (docs/operations.md "Migrate"): copy the legacy PHP/file configs into Redis safely and repeatably. The newest candidate
// wins, Redis values that are newer are kept (docs/legacy.md, defect 5), every write is a compare-and-set against what was
// read, and verification reads Redis directly. One migration at a time, across all instances.

import { type ConfigDocument, type Layer, rawOf } from '../../stores/layer.js'
import type { RedisLayer } from '../../stores/redis-layer.js'
import { AppError, type ErrorDetail } from '../errors.js'
import { canonicalHash, canonicalJson, compareStamps } from '../store/canonical.js'
import type { ConfigStore } from '../store/layered-store.js'
import type { MigrateReply, MigrateResult } from './schemas.js'
import { presentKeys, selectKeys } from './verify.js'

export interface MigrateOptions {
  keys?: string[] | undefined
  dryRun?: boolean | undefined
  verify?: boolean | undefined
  force?: boolean | undefined
  lockTtlMs: number
  /** Who runs it: the revisions it makes name them, with via `migrate`. */
  actor: string
  /** Test seam: runs between reading Redis and the compare-and-set, where a concurrent writer would strike. */
  beforeWrite?: (key: string) => Promise<void>
}

const LOCK = 'migration_lock'

/** The document's `_updated_at`, as a part to spread into another. */
const stampOf = (doc: Record<string, unknown>) =>
  typeof doc._updated_at === 'string' ? { _updated_at: doc._updated_at } : {}

export async function migrateToRedis(store: ConfigStore, options: MigrateOptions): Promise<MigrateReply> {
  const redis = store.layers().find((l): l is RedisLayer => l.name === 'redis')
  if (redis === undefined) {
    throw new AppError(
      'STORE_UNAVAILABLE',
      'migrate needs Redis: set REDIS_URL, REDIS_SENTINELS or REDIS_CLUSTER_NODES, and leave CONFIG_STORE_DISABLE_REDIS off',
    )
  }
  const keys = selectKeys(store.validator, options.keys, undefined, (await presentKeys(store)).keys)
  const health = await redis.health()
  if (!health.ok)
    throw new AppError('STORE_UNAVAILABLE', `Redis could not be reached (${health.error}); nothing was migrated`)
  const release = await redis.tryLock(LOCK, options.lockTtlMs)
  if (release === null)
    throw new AppError('MIGRATION_IN_PROGRESS', 'another migration is running; try again when it ends')

  const log: string[] = []
  const results: MigrateResult[] = []
  try {
    for (const key of keys) results.push(await migrateKey(store, redis, key, options, log))
  } finally {
    await release()
  }
  const success = results.every((r) => !['invalid', 'conflict', 'failed'].includes(r.action) && r.verified !== false)
  return {
    status: 'success',
    success,
    exit_code: success ? 0 : 1,
    dry_run: options.dryRun === true,
    keys,
    log,
    results,
    timestamp: new Date().toISOString(),
  }
}

async function migrateKey(
  store: ConfigStore,
  redis: RedisLayer,
  key: string,
  options: MigrateOptions,
  log: string[],
): Promise<MigrateResult> {
  const done = (
    action: MigrateResult['action'],
    source: MigrateResult['source'],
    reason: string | null,
    line: string,
    extra: Partial<MigrateResult> = {},
  ): MigrateResult => {
    log.push(`${key}: ${line}`)
    return { key, action, source, reason, verified: null, ...extra }
  }

  // 1. The candidates, read directly: PHP first, so that it wins a tie.
  const sources = store
    .layers()
    .filter((l): l is Layer & { name: 'php' | 'files' } => l.name === 'php' || l.name === 'files')
  sources.sort((a, b) => (a.name === 'php' ? -1 : b.name === 'php' ? 1 : 0))
  let best: { source: 'php' | 'files'; doc: ConfigDocument } | undefined
  for (const layer of sources) {
    const read = await layer.get(key)
    if (read.state === 'unavailable') {
      return done(
        'failed',
        layer.name,
        `${layer.name} unavailable: ${read.reason}`,
        `FAILED (${layer.name} unavailable; cannot tell which copy is newest)`,
      )
    }
    if (read.state === 'hit' && (best === undefined || compareStamps(read.doc, best.doc) > 0)) {
      best = { source: layer.name, doc: read.doc }
    }
  }
  if (best === undefined) return done('not_found', null, 'no PHP or file copy', 'source file not found; skip')
  const { source } = best

  // 2. The key's schema.
  const checked = store.validator.validate(key, best.doc)
  const errors: ErrorDetail[] = checked.ok ? [] : checked.errors
  if (errors.length > 0 && !options.force) {
    const reason = errors.map((e) => `${e.path} ${e.message}`).join('; ')
    return done('invalid', source, reason, `INVALID (${reason})`, { errors })
  }

  // 3. Against what Redis holds now.
  const current = await redis.get(key)
  if (current.state === 'unavailable')
    return done('failed', source, `redis unavailable: ${current.reason}`, 'FAILED (redis unavailable)')
  const existing = current.state === 'hit' ? current.doc : undefined
  if (existing && canonicalHash(existing) === canonicalHash(best.doc)) {
    return done('unchanged', source, 'Redis already holds this content', `UNCHANGED (source=${source})`)
  }
  if (existing && !options.force) {
    // Never revert what the legacy app wrote: its polling, webhook and preference writers change Redis without
    // refreshing `_updated_at`, so a tie (or a Redis copy without a stamp) keeps Redis, reported as drift.
    const order = typeof existing._updated_at === 'string' ? compareStamps(existing, best.doc) : 0
    if (order > 0) {
      const reason = `Redis is newer (${existing._updated_at} > ${best.doc._updated_at ?? 'no _updated_at'})`
      return done('skipped', source, reason, `SKIPPED (${reason})`)
    }
    if (order === 0) {
      const reason = `drift: Redis and ${source} differ with the same _updated_at (${existing._updated_at ?? 'none'}); Redis kept`
      return done('skipped', source, reason, `SKIPPED (${reason})`)
    }
  }
  // Forced over its schema, a key the legacy app reads its own way (runtime_flags) is written as it reads it, so that
  // Redis never holds a document the legacy app reads differently from what verify reports of it.
  const reading = errors.length > 0 ? store.validator.spec(key)?.legacyReading : undefined
  const chosen = reading === undefined ? best.doc : { ...reading(best.doc), ...stampOf(best.doc) }
  const doc = typeof chosen._updated_at === 'string' ? chosen : { ...chosen, _updated_at: new Date().toISOString() }
  const forced =
    errors.length === 0
      ? null
      : reading === undefined
        ? 'written despite schema errors (force)'
        : `written as the legacy app reads it (force): ${JSON.stringify(reading(best.doc))}`
  if (options.dryRun) {
    return done('would_migrate', source, forced, `DRY (source=${source})`, { diff: diff(existing, doc) })
  }

  // 4. Compare-and-set against the value read in step 3.
  await options.beforeWrite?.(key)
  let written: boolean
  try {
    // Against the bytes read, not a re-serialisation: Python's `json.dumps` spacing is not ours. Redis as the primary:
    // a revision of the key, made in the same script; below the primary (php_first), a copy that changes no revision.
    const expected = current.state === 'hit' ? rawOf(current) : null
    written =
      store.layers()[0] === redis
        ? await store.compareAndSet(key, expected, doc, { actor: options.actor, via: 'migrate' })
        : await redis.swap(key, expected, JSON.stringify(doc))
  } catch (err) {
    return done('failed', source, (err as Error).message, 'FAILED (redis write failed)')
  }
  store.forget(key)
  if (!written)
    return done(
      'conflict',
      source,
      'Redis changed during the migration; its value was kept',
      'CONFLICT (redis changed during the migration; left as it is)',
    )
  const result = done('migrated', source, forced, `OK (source=${source})`)

  // 5. Read back from Redis itself, never through the fallback chain (docs/legacy.md, defect 4).
  if (options.verify !== false) {
    const back = await redis.get(key)
    result.verified = back.state === 'hit' && canonicalHash(back.doc) === canonicalHash(doc)
    log.push(`${key}: ${result.verified ? 'VERIFY OK' : 'VERIFY FAILED'}`)
  }
  return result
}

function diff(before: ConfigDocument | undefined, after: ConfigDocument) {
  const fields = (d: ConfigDocument | undefined) => Object.keys(d ?? {}).filter((f) => f !== '_updated_at')
  const was = fields(before)
  const now = fields(after)
  const value = (d: ConfigDocument | undefined, f: string) => canonicalJson({ v: d?.[f] })
  return {
    added: now.filter((f) => !was.includes(f)),
    removed: was.filter((f) => !now.includes(f)),
    changed: now.filter((f) => was.includes(f) && value(before, f) !== value(after, f)),
  }
}
