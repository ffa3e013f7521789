// The per-request child logger that is made only when a line gets through: every level forwards with the request's
// bindings, levels below the parent's write nothing, and the level can be read and changed.
import { describe, expect, it } from 'vitest'
import { lazyChildLogger } from '../src/logger.js'
import { captureLogger } from './helpers/app.js'

describe('lazyChildLogger', () => {
  it('forwards each enabled level with its bindings, and nothing below the parent level', async () => {
    const { logger, lines } = captureLogger('trace')
    const child = lazyChildLogger(logger, { reqId: 'r1' }, {})
    expect(child.level).toBe('trace')
    child.trace('t')
    child.debug('d')
    child.info('i')
    child.warn('w')
    child.error('e')
    child.fatal('f')
    child.silent('s')
    child.child({ extra: 1 }).info('grandchild')
    await new Promise((r) => setImmediate(r))
    expect(lines.map((l) => [l.level, l.msg, l.reqId])).toEqual([
      [10, 't', 'r1'],
      [20, 'd', 'r1'],
      [30, 'i', 'r1'],
      [40, 'w', 'r1'],
      [50, 'e', 'r1'],
      [60, 'f', 'r1'],
      [30, 'grandchild', 'r1'],
    ])
    expect(lines.at(-1)).toMatchObject({ extra: 1 })
  })

  it('writes nothing below the parent level; a level set on it applies to it alone', async () => {
    const { logger, lines } = captureLogger('warn')
    const child = lazyChildLogger(logger, { reqId: 'r2' }, {})
    child.info('not written')
    child.debug('not written')
    child.trace('not written')
    expect(lines).toEqual([])
    child.level = 'error'
    expect(child.level).toBe('error')
    expect(logger.level).toBe('warn')
    child.warn('below its own level now')
    child.error('written')
    await new Promise((r) => setImmediate(r))
    expect(lines.map((l) => l.msg)).toEqual(['written'])
  })
})
