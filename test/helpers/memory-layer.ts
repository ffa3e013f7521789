// A layer held in memory, for unit tests of the store without Redis, PHP or files. It can be switched down (every
// call fails as a real layer does when it cannot be reached), and a write can be made to fail after it was applied
// or before, the two outcomes a timeout leaves a real client unable to tell apart.
import { LayerUnavailableError } from '../../src/errors.js'
import { type ConfigDocument, hitFromDoc, type Layer, type LayerName, type ReadResult } from '../../stores/layer.js'

export interface MemoryLayer extends Layer {
  docs: Map<string, ConfigDocument>
  /** While true, every call fails (reads answer unavailable). */
  down: boolean
  /** The next `set` fails with outcome unknown: 'applied' stores the document first, 'lost' does not. */
  failNextSet: 'applied' | 'lost' | undefined
  /** Keys whose writes fail, not applied. */
  refuse: Set<string>
  calls: { get: number; set: number; health: number }
  /** Reads take their copy at once, then answer only when `release` is called (a slow reply in flight). */
  holdReads(): { release(): void }
}

export function memoryLayer(name: LayerName, initial: Record<string, ConfigDocument> = {}): MemoryLayer {
  let held: Promise<void> | undefined
  const layer: MemoryLayer = {
    name,
    docs: new Map(Object.entries(initial)),
    down: false,
    failNextSet: undefined,
    refuse: new Set(),
    calls: { get: 0, set: 0, health: 0 },
    async get(key): Promise<ReadResult> {
      layer.calls.get++
      if (layer.down) return { state: 'unavailable', reason: `${name} is down` }
      const doc = layer.docs.get(key)
      const copy: ReadResult = doc === undefined ? { state: 'absent' } : hitFromDoc(structuredClone(doc))
      await held
      return copy
    },
    holdReads() {
      let release = () => {}
      held = new Promise((resolve) => {
        release = () => {
          held = undefined
          resolve()
        }
      })
      return { release }
    },
    async set(key, doc) {
      layer.calls.set++
      if (layer.down) throw new LayerUnavailableError(name, 'down')
      if (layer.refuse.has(key)) throw new LayerUnavailableError(name, `refused ${key}`)
      const failure = layer.failNextSet
      layer.failNextSet = undefined
      if (failure !== 'lost') layer.docs.set(key, structuredClone(doc))
      if (failure !== undefined) throw new LayerUnavailableError(name, 'timed out', undefined, 'unknown')
    },
    async delete(key) {
      if (layer.down) throw new LayerUnavailableError(name, 'down')
      return layer.docs.delete(key) ? 'deleted' : 'absent'
    },
    async listKeys() {
      if (layer.down) throw new LayerUnavailableError(name, 'down')
      return [...layer.docs.keys()]
    },
    async health() {
      layer.calls.health++
      return layer.down ? { ok: false, latencyMs: 0, error: `${name} is down` } : { ok: true, latencyMs: 0 }
    },
  }
  return layer
}
