// The one contract every layer passes (docs/architecture.md "Layers"): same interface, same outcomes.
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { LayerUnavailableError } from '../../src/errors.js'
import type { Layer, ReadResult } from '../../stores/layer.js'

export interface ContractSubject {
  layer: Layer
  /** Makes the layer unable to answer, the way it really fails (connection gone, directory unusable). */
  breakIt(): Promise<void>
  cleanup(): Promise<void>
}

/** A layer may stamp `_updated_at` itself (the PHP API does); everything else must come back as it was stored. */
function content(read: ReadResult) {
  if (read.state !== 'hit') return read
  const { _updated_at: _, ...doc } = read.doc
  return doc
}

export function layerContract(name: string, open: () => Promise<ContractSubject>): void {
  describe(`layer contract: ${name}`, () => {
    let subject: ContractSubject
    let layer: Layer
    beforeEach(async () => {
      subject = await open()
      layer = subject.layer
    })
    afterEach(() => subject.cleanup())

    it('answers absent for a key never written', async () => {
      expect(await layer.get('never_written')).toEqual({ state: 'absent' })
    })

    it('returns what was stored, as a document and as JSON text', async () => {
      const doc = { enabled: true, list: [1, 2], nested: { a: 'b' } }
      await layer.set('contract_key', { ...doc, _updated_at: '2026-11-21T09:15:02.123Z' })
      const read = await layer.get('contract_key')
      expect(content(read)).toEqual(doc)
      expect(read.state === 'hit' && typeof read.doc._updated_at).toBe('string')
      expect(read.state === 'hit' && JSON.parse(read.json)).toEqual(read.state === 'hit' && read.doc)
    })

    it('replaces the whole document on set', async () => {
      await layer.set('replace_me', { a: 1, b: 2 })
      await layer.set('replace_me', { c: 3 })
      const read = await layer.get('replace_me')
      expect(content(read)).toEqual({ c: 3 })
    })

    it('keeps UTF-8 text intact', async () => {
      const doc = { name: 'Équipe été ✓ 日本 🚀', quote: '"\\' }
      await layer.set('utf8', doc)
      const read = await layer.get('utf8')
      expect(content(read)).toEqual(doc)
    })

    it('handles the longest and most varied key names', async () => {
      const key = `a-_0${'z'.repeat(124)}`
      expect(key).toHaveLength(128)
      await layer.set(key, { ok: true })
      expect((await layer.get(key)).state).toBe('hit')
    })

    it('deletes: deleted once, absent afterwards', async () => {
      await layer.set('to_delete', { x: 1 })
      expect(await layer.delete('to_delete')).toBe('deleted')
      expect(await layer.get('to_delete')).toEqual({ state: 'absent' })
      expect(await layer.delete('to_delete')).toBe('absent')
    })

    it('lists the keys it can list, and never a deleted one', async () => {
      await layer.set('listed_a', { a: 1 })
      await layer.set('listed_b', { b: 1 })
      await layer.delete('listed_b')
      const keys = await layer.listKeys()
      expect(keys).not.toContain('listed_b')
      if (layer.name !== 'php') expect(keys).toContain('listed_a') // the PHP API has no listing
    })

    it('reports itself healthy while it answers', async () => {
      const health = await layer.health()
      expect(health.ok).toBe(true)
      expect(health.latencyMs).toBeGreaterThanOrEqual(0)
    })

    it('answers unavailable, and throws its own error on writes, when it cannot answer', async () => {
      await layer.set('before_break', { a: 1 })
      await subject.breakIt()
      await expect(layer.set('after_break', { a: 1 })).rejects.toBeInstanceOf(LayerUnavailableError)
      await expect(layer.delete('before_break')).rejects.toBeInstanceOf(LayerUnavailableError)
      const read = await layer.get('before_break')
      expect(read.state).toBe('unavailable')
      expect(read.state === 'unavailable' && read.reason.length).toBeGreaterThan(0)
      expect((await layer.health()).ok).toBe(false)
    })
  })
}
