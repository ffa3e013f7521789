// The CONFIG_MAX_KEYS quota. Keys known to exist need no count; a new key is counted against every layer's listing
// (taken at most once a COUNT_MS). Several instances creating keys at the same moment may overshoot by the writes in
// flight; the PHP API cannot list, so a PHP-only store is not counted.
import type { Layer } from '../../stores/layer.js'
import { AppError } from '../errors.js'

/** How long a count of the keys is trusted. */
const COUNT_MS = 1000

export interface KeyQuota {
  /** Throws QUOTA_EXCEEDED when writing `key` would make more keys than the quota allows. Answers whether `key` is
   * a new one (no layer listed it). */
  check(key: string): Promise<boolean>
  /** The keys the layers listed (at most COUNT_MS ago; a layer that could not list adds none). */
  known(): Promise<ReadonlySet<string>>
  /** `key` was deleted: the next write of it is counted again. */
  forget(key: string): void
}

export function createKeyQuota(layers: readonly Layer[], maxKeys: number): KeyQuota {
  const existing = new Set<string>()
  let counted: { at: number; keys: Promise<Set<string>> } | undefined

  function allKeys(): Promise<Set<string>> {
    if (counted === undefined || Date.now() - counted.at > COUNT_MS) {
      const keys = Promise.all(layers.map((l) => l.listKeys().catch(() => []))).then((lists) => new Set(lists.flat()))
      counted = { at: Date.now(), keys }
    }
    return counted.keys
  }

  return {
    async check(key) {
      if (existing.has(key)) return false
      const keys = await allKeys()
      const created = !keys.has(key)
      if (created && keys.size >= maxKeys) {
        throw new AppError('QUOTA_EXCEEDED', `the store holds ${keys.size} keys, the most CONFIG_MAX_KEYS allows`)
      }
      if (existing.size < maxKeys) existing.add(key)
      keys.add(key)
      return created
    },
    known: allKeys,
    forget(key) {
      existing.delete(key)
      counted = undefined
    },
  }
}
