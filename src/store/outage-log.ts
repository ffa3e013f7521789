// What the store says about layers that fail: one WARN line per layer, key and kind of event, then at most one every
// WARN_EVERY_MS with the number of repeats in between (a layer that is down must not turn every read into log lines),
// and per layer the count of reads and writes it could not answer since start-up (shown by /ready).
import type { FastifyBaseLogger as Logger } from 'fastify'
import type { LayerName } from '../../stores/layer.js'

const WARN_EVERY_MS = 10_000
/** Distinct events remembered at most; past this the memory starts again (a flood of keys cannot grow it). */
const EVENTS_MAX = 10_000

export interface OutageLog {
  /** A WARN line for the event `id`, unless one was written in the last WARN_EVERY_MS. */
  warn(id: string, fields: Record<string, unknown>, message: string): void
  /** `layer` could not answer for `key` (`*` for a listing). */
  unavailable(layer: LayerName, key: string, reason: string): void
  /** Per layer, how many times it could not answer. */
  counts(): Readonly<Partial<Record<LayerName, number>>>
}

export function createOutageLog(log: Logger): OutageLog {
  const quiet = new Map<string, { until: number; repeats: number }>()
  const counts: Partial<Record<LayerName, number>> = {}

  function warn(id: string, fields: Record<string, unknown>, message: string): void {
    const now = Date.now()
    const seen = quiet.get(id)
    if (seen !== undefined && now < seen.until) {
      seen.repeats++
      return
    }
    log.warn(seen?.repeats ? { ...fields, repeats: seen.repeats } : fields, message)
    if (quiet.size >= EVENTS_MAX) quiet.clear()
    quiet.set(id, { until: now + WARN_EVERY_MS, repeats: 0 })
  }

  return {
    warn,
    unavailable(layer, key, reason) {
      counts[layer] = (counts[layer] ?? 0) + 1
      warn(`down:${layer}:${key}`, { layer, key, reason }, `${layer} layer unavailable for ${key}`)
    },
    counts: () => counts,
  }
}
