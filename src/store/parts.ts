// What the store's modules share: the layers in order, their primary, and the helpers around them. Built once by
// createConfigStore; nothing outside src/store/ sees it.
import type { FastifyBaseLogger as Logger } from 'fastify'
import { isValidKey, type Layer, type LayerName, type ReadResult } from '../../stores/layer.js'
import { AppError } from '../errors.js'
import type { ConfigCache } from './cache.js'
import type { KeyChanges } from './changes.js'
import type { History } from './history/history.js'
import type { Invalidation } from './invalidation.js'
import type { LastKnownGood } from './last-known-good.js'
import type { OutageLog } from './outage-log.js'
import type { DocumentValidator } from './validation.js'

/** What the store did since start-up, counted as plain numbers (read by /metrics when it is scraped). */
export interface StoreCounts {
  /** Per layer, its answers: hit, absent, unavailable. */
  reads: Record<LayerName, Record<ReadResult['state'], number>>
  /** Per layer, the answers it served while a layer above it was down (a fallback). */
  fallbacks: Record<LayerName, number>
  /** Per layer, the answers served from its last-known-good copy. */
  stale: Record<LayerName, number>
  /** Writes by outcome: written, refused (known not written), unknown. */
  writes: { ok: number; refused: number; unknown: number }
}

export function newCounts(): StoreCounts {
  const perLayer = () => ({ redis: 0, php: 0, files: 0 })
  const states = () => ({ hit: 0, absent: 0, unavailable: 0 })
  return {
    reads: { redis: states(), php: states(), files: states() },
    fallbacks: perLayer(),
    stale: perLayer(),
    writes: { ok: 0, refused: 0, unknown: 0 },
  }
}

export interface StoreParts {
  layers: readonly Layer[]
  primary: Layer
  validator: DocumentValidator
  cache: ConfigCache
  log: Logger
  outages: OutageLog
  invalidation: Invalidation | undefined
  lkg: LastKnownGood | undefined
  counts: StoreCounts
  changes: KeyChanges
  history: History
}

/** One layer's answer, remembered as that layer's last-known-good copy (or its absence). */
export async function getFrom({ lkg, counts }: StoreParts, l: Layer, key: string): Promise<ReadResult> {
  const r = await l.get(key)
  counts.reads[l.name][r.state]++
  // (A replica's copy may lag: it is no last-known-good copy of the master's.)
  if (lkg !== undefined && !(r.state === 'hit' && r.stale)) {
    if (r.state === 'hit' && !(r.reused && lkg.knows(l.name, key))) lkg.see(l.name, key, r)
    else if (r.state === 'absent') lkg.forget(l.name, key)
  }
  return r
}

/** A key that does not match the rule never becomes a file path or a Redis key (docs/keys.md). */
export function checkKey(key: string): void {
  if (!isValidKey(key))
    throw new AppError('INVALID_KEY', `invalid key ${JSON.stringify(key)}: it must match ^[a-z0-9_-]{1,128}$`)
}

/** Valid, and not another name of a key: a write never replaces a secret through a legacy file name. */
export function checkWritable({ validator }: StoreParts, key: string): void {
  checkKey(key)
  const target = validator.aliasOf(key)
  if (target !== undefined)
    throw new AppError('INVALID_KEY', `${key} is a legacy file name of ${target}; write or delete ${target} itself`)
}

export function layerNamed({ layers }: StoreParts, name: LayerName): Layer {
  const found = layers.find((l) => l.name === name)
  if (found === undefined) throw new AppError('BAD_REQUEST', `the ${name} layer is not configured`)
  return found
}
