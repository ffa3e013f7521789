// The files-only history journal on its own, in real temp directories: what an interrupted write leaves behind, a
// lock left by a process that died, trimming, and two journals (two processes) on one directory.
import { appendFileSync, mkdirSync, readFileSync, utimesSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import type { Change } from '../../src/store/history/history.js'
import { createJournal } from '../../src/store/history/journal.js'
import type { FeedEvent } from '../../src/store/history/schemas.js'
import { tempDir } from '../helpers/app.js'
import { until } from '../helpers/wait.js'

const change = (doc: object | null, actor = 'tester'): Change => ({
  by: { actor, via: 'api' },
  time: new Date().toISOString(),
  json: doc === null ? null : JSON.stringify(doc),
  source: 'files',
})

describe('the history journal', () => {
  it('a line cut short by a crash is skipped, and the next revision starts on a line of its own', async () => {
    const dir = tempDir('journal')
    const j = createJournal({ dir, max: 100, feedMax: 100 })
    await j.exclusive('k', () => j.record('k', change({ v: 1 })))
    // A crash in the middle of appending revision 2 (and its feed line).
    appendFileSync(join(dir, '.history', 'k.jsonl'), '{"revision":2,"time":"2026-')
    appendFileSync(join(dir, '.history', 'changes.jsonl'), '{"id":2,"key":"k"')
    const reopened = createJournal({ dir, max: 100, feedMax: 100 })
    expect((await reopened.list('k', 10)).map((r) => r.revision)).toEqual([1])
    const r = await reopened.exclusive('k', () => reopened.record('k', change({ v: 2 })))
    expect(r.revision.revision).toBe(2)
    expect((await reopened.list('k', 10)).map((x) => x.revision)).toEqual([2, 1])
    expect((await reopened.document('k', 2))?.json).toBe('{"v":2}')
    const feed = await reopened.feed.after('0')
    expect(feed !== 'reset' && feed.events.map((e) => [e.id, e.event.revision])).toEqual([
      ['1', 1],
      ['2', 2],
    ])
    // The torn lines stay as lines of their own, and every other line parses.
    for (const file of ['k.jsonl', 'changes.jsonl']) {
      const lines = readFileSync(join(dir, '.history', file), 'utf8')
        .split('\n')
        .filter(Boolean)
      const parses = (l: string) => {
        try {
          JSON.parse(l)
          return true
        } catch {
          return false
        }
      }
      expect(lines.map(parses), file).toEqual([true, false, true])
    }
  })

  it('a lock left by a process that died is taken over once stale', async () => {
    const dir = tempDir('journal')
    mkdirSync(join(dir, '.history'), { recursive: true })
    const lock = join(dir, '.history', '.lock')
    writeFileSync(lock, '99999999')
    const old = new Date(Date.now() - 60_000)
    utimesSync(lock, old, old)
    const j = createJournal({ dir, max: 100, feedMax: 100 })
    const r = await j.exclusive('k', () => j.record('k', change({ v: 1 })))
    expect(r.revision.revision).toBe(1)
  })

  it('keeps the newest `max` revisions of a key, and trims the files it grows', async () => {
    const dir = tempDir('journal')
    const j = createJournal({ dir, max: 5, feedMax: 10 })
    for (let i = 1; i <= 60; i++) await j.exclusive('k', () => j.record('k', change({ i })))
    expect((await j.list('k', 100)).map((r) => r.revision)).toEqual([60, 59, 58, 57, 56])
    expect(await j.document('k', 55)).toBeUndefined()
    const lines = (file: string) =>
      readFileSync(join(dir, '.history', file), 'utf8')
        .split('\n')
        .filter(Boolean)
    expect(lines('k.jsonl').length).toBeLessThanOrEqual(5 + 10)
    expect(lines('changes.jsonl').length).toBeLessThanOrEqual(10 + 10)
    expect(await j.feed.after('3')).toBe('reset')
    const recent = await j.feed.after('58')
    expect(recent !== 'reset' && recent.events.map((e) => e.id)).toEqual(['59', '60'])
  })

  it('two journals on one directory (two processes) number revisions without gaps, and hear each other', async () => {
    const dir = tempDir('journal')
    const a = createJournal({ dir, max: 1000, feedMax: 1000 })
    const b = createJournal({ dir, max: 1000, feedMax: 1000 })
    const heard: FeedEvent[] = []
    const sub = b.feed.subscribe((e) => heard.push(e))
    await sub.ready
    await Promise.all(
      Array.from({ length: 20 }, (_, i) => {
        const j = i % 2 ? a : b
        return j.exclusive('k', () => j.record('k', change({ i }, i % 2 ? 'a' : 'b')))
      }),
    )
    expect((await a.list('k', 100)).map((r) => r.revision)).toEqual(Array.from({ length: 20 }, (_, i) => 20 - i))
    await until(() => heard.length === 20)
    expect(heard.map((e) => Number(e.id))).toEqual(Array.from({ length: 20 }, (_, i) => i + 1))
    sub.close()
    await Promise.all([a.close(), b.close()])
  })

  it('an observation records a change only when the latest revision is not that document', async () => {
    const dir = tempDir('journal')
    const j = createJournal({ dir, max: 100, feedMax: 100 })
    await j.exclusive('k', () => j.record('k', change({ v: 1 })))
    expect(await j.observe('k', async () => ({ json: '{"v":1}' }), 'files')).toBeUndefined()
    const seen = await j.observe('k', async () => ({ json: '{"v":2}' }), 'files')
    expect(seen?.revision).toMatchObject({ revision: 2, actor: 'external', via: 'external', op: 'write' })
    const gone = await j.observe('k', async () => undefined, 'files')
    expect(gone?.revision).toMatchObject({ revision: 3, op: 'delete', after: null })
    expect(await j.observe('k', async () => undefined, 'files')).toBeUndefined()
    expect(await j.observe('never', async () => undefined, 'files')).toBeUndefined()
  })
})
