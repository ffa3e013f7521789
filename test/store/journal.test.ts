// The files-only history journal on its own, in real temp directories: what an interrupted write leaves behind, a
// lock left by a process that died, trimming, and two journals (two processes) on one directory.
import { appendFileSync, mkdirSync, readFileSync, statSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs'
import { hostname } from 'node:os'
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
    appendFileSync(join(dir, '.history', '.changes.jsonl'), '{"id":2,"key":"k"')
    const reopened = createJournal({ dir, max: 100, feedMax: 100 })
    expect((await reopened.list('k', 10)).map((r) => r.revision)).toEqual([1])
    expect((await reopened.document('k', 1))?.json).toBe('{"v":1}')
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
    for (const file of ['k.jsonl', '.changes.jsonl']) {
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

  it('a lock held by a process of this host that is gone is taken at once; a live holder is waited for, then named', async () => {
    const dir = tempDir('journal')
    mkdirSync(join(dir, '.history'), { recursive: true })
    const lock = join(dir, '.history', '.lock')
    writeFileSync(lock, `99999999@${hostname()}`) // fresh, but its pid is no process
    const j = createJournal({ dir, max: 100, feedMax: 100, lockWaitMs: 300 })
    expect((await j.exclusive('k', () => j.record('k', change({ v: 1 })))).revision.revision).toBe(1)
    writeFileSync(lock, `${process.pid}@${hostname()}`) // a live holder (this very process, for the test)
    const err = await j.exclusive('k', () => j.record('k', change({ v: 2 }))).catch((e: Error) => e)
    expect(err).toBeInstanceOf(Error)
    expect((err as Error).message).toBe(
      `the history journal ${lock} stayed locked for 300 ms by ${process.pid}@${hostname()} (a write in progress elsewhere, or a process on another host that stopped holding it: such a lock is taken once it is 10 s old); nothing was written`,
    )
  })

  it('a clean close waits for the write holding the lock, and leaves no lock behind', async () => {
    const dir = tempDir('journal')
    const j = createJournal({ dir, max: 100, feedMax: 100 })
    let release: () => void = () => undefined
    const held = j.exclusive('k', () => new Promise<void>((r) => (release = r)))
    await until(() => {
      try {
        return readFileSync(join(dir, '.history', '.lock'), 'utf8') !== ''
      } catch {
        return false
      }
    })
    const closed = j.close()
    release()
    await Promise.all([held, closed])
    expect(() => statSync(join(dir, '.history', '.lock'))).toThrow(/ENOENT/)
  })

  it('every file and folder it makes is owner-only whatever the umask, and an older wider one is narrowed', async () => {
    const dir = tempDir('journal')
    const umask = process.umask(0o000) // the widest: files 0666 and folders 0777 unless the service says otherwise
    try {
      const j = createJournal({ dir, max: 100, feedMax: 100 })
      await j.exclusive('k', () => j.record('k', change({ secret: 's3cr3t' })))
      const mode = (file: string) => statSync(join(dir, '.history', file)).mode & 0o777
      expect(mode('')).toBe(0o700)
      expect(mode('k.jsonl')).toBe(0o600)
      expect(mode('.changes.jsonl')).toBe(0o600)
      // a folder and a file as an older version left them
      const old = tempDir('journal')
      mkdirSync(join(old, '.history'), { mode: 0o755 })
      writeFileSync(join(old, '.history', 'k.jsonl'), '', { mode: 0o644 })
      const reopened = createJournal({ dir: old, max: 100, feedMax: 100 })
      await reopened.exclusive('k', () => reopened.record('k', change({ secret: 'again' })))
      expect(statSync(join(old, '.history')).mode & 0o777).toBe(0o700)
      expect(statSync(join(old, '.history', 'k.jsonl')).mode & 0o777).toBe(0o600)
    } finally {
      process.umask(umask)
    }
  })

  it('never writes or reads through a symbolic link planted in its folder', async () => {
    const dir = tempDir('journal')
    const outside = join(tempDir('outside'), 'stolen.jsonl')
    writeFileSync(outside, '')
    mkdirSync(join(dir, '.history'), { recursive: true, mode: 0o700 })
    symlinkSync(outside, join(dir, '.history', 'magic_link_tokens.jsonl'))
    const j = createJournal({ dir, max: 100, feedMax: 100 })
    const err = await j
      .exclusive('magic_link_tokens', () => j.record('magic_link_tokens', change({ abc: { token: 'x' } })))
      .catch((e: Error) => e)
    expect(err).toMatchObject({ code: 'STORE_UNAVAILABLE' })
    expect(readFileSync(outside, 'utf8')).toBe('')
    await expect(j.list('magic_link_tokens', 10)).rejects.toMatchObject({ code: 'ELOOP' })
  })

  it('a key named like its own files (changes, lock, a temp file) cannot reach them; an old feed file is moved', async () => {
    const dir = tempDir('journal')
    mkdirSync(join(dir, '.history'), { recursive: true })
    // a journal from before 0.3: its feed was changes.jsonl
    writeFileSync(join(dir, '.history', 'changes.jsonl'), '{"id":1,"key":"a","revision":1}\n')
    const j = createJournal({ dir, max: 100, feedMax: 100 })
    for (const key of ['changes', 'lock', 'history', 'lkg', 'tmp'])
      await j.exclusive(key, () => j.record(key, change({ key })))
    const feed = await j.feed.after('0')
    expect(feed !== 'reset' && feed.events.map((e) => [e.id, e.event.key])).toEqual([
      ['1', 'a'],
      ['2', 'changes'],
      ['3', 'lock'],
      ['4', 'history'],
      ['5', 'lkg'],
      ['6', 'tmp'],
    ])
    expect((await j.list('changes', 10)).map((r) => r.revision)).toEqual([1])
    expect((await j.document('changes', 1))?.json).toBe('{"key":"changes"}')
  })

  it('keeps the newest `max` revisions of a key, and trims the files it grows', async () => {
    const dir = tempDir('journal')
    const j = createJournal({ dir, max: 5, feedMax: 10 })
    for (let i = 1; i <= 60; i++) await j.exclusive('k', () => j.record('k', change({ i })))
    expect((await j.list('k', 100)).map((r) => r.revision)).toEqual([60, 59, 58, 57, 56])
    expect(await j.document('k', 55)).toBeUndefined()
    // documents are read from the file where their lines now are, here and in a process that scans it afresh
    expect((await j.document('k', 56))?.json).toBe('{"i":56}')
    expect((await createJournal({ dir, max: 5, feedMax: 10 }).document('k', 60))?.json).toBe('{"i":60}')
    const lines = (file: string) =>
      readFileSync(join(dir, '.history', file), 'utf8')
        .split('\n')
        .filter(Boolean)
    expect(lines('k.jsonl').length).toBeLessThanOrEqual(5 + 10)
    expect(lines('.changes.jsonl').length).toBeLessThanOrEqual(10 + 10)
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
