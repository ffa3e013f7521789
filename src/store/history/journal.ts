// History without Redis (docs/history.md "In the files directory"): a journal in `<CONFIG_FILES_DIR>/.history/`.
//   <key>.jsonl     the key's revisions, oldest first, one JSON line each, with its document
//   .changes.jsonl  the change feed: one line per revision of any key, `id` counting up from 1
//   .lock           held while a write and its revision are made, by whichever process sharing the directory
// The service's own names start with a dot, which no key name has, so no key reaches them (a key named `changes`
// once shared the feed's file: a feed found under that old name is moved to the new one when the journal opens).
// Lines are only ever appended (and fsynced); a line cut short by a crash is skipped when read, and the next append
// starts on a line of its own. Files are trimmed by writing a shorter copy and renaming it over the old one.
import { type FileHandle, rename, rm, stat } from 'node:fs/promises'
import { hostname } from 'node:os'
import { join } from 'node:path'
import { AppError, LayerUnavailableError, reasonOf } from '../../errors.js'
import { createNew, openToRead, privateDir, readPrivate } from '../private-files.js'
import { type Change, type Feed, type History, Listeners, type Recorded, type Seen, sha256Hex } from './history.js'
import { appendLine, indexRevisions, keepFrom, type RevisionIndex, readDocument } from './revision-file.js'
import type { ChangeEvent, FeedEvent, Revision } from './schemas.js'
import { eventOf } from './schemas.js'

/** A lock older than this was left by a process that died holding it (one on another host cannot be asked). */
const STALE_LOCK_MS = 10_000
const LOCK_WAIT_MS = 10_000
const POLL_MS = 250
const HOST = hostname()

/** Whether the lock's text (`pid@host`) names a process of this host that is gone. */
function heldByTheDead(text: string): boolean {
  const m = /^(\d+)@(.+)$/.exec(text)
  if (m === null || m[2] !== HOST) return false
  try {
    process.kill(Number(m[1]), 0)
    return false
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ESRCH'
  }
}

/** The complete lines of a journal file, parsed; a line that does not parse (cut short by a crash) is skipped. */
function parseLines<T>(text: string): { items: T[]; clean: boolean } {
  const items: T[] = []
  for (const line of text.split('\n')) {
    if (line === '') continue
    try {
      items.push(JSON.parse(line) as T)
    } catch {
      // a torn line
    }
  }
  return { items, clean: text === '' || text.endsWith('\n') }
}

/** Replaces `path` with `text`, whole or not at all. */
async function replace(path: string, text: string): Promise<void> {
  const tmp = `${path}.${process.pid}.tmp`
  await rm(tmp, { force: true }) // one left by a crash of a process with this pid
  const fh = await createNew(tmp)
  try {
    await fh.writeFile(text)
    await fh.datasync()
  } finally {
    await fh.close()
  }
  await rename(tmp, path)
}

export interface JournalOptions {
  /** The files directory: the journal is its `.history` folder. */
  dir: string
  /** How long a write waits for the lock before it is refused (at most 10 s; REQUEST_TIMEOUT_MS bounds it). */
  lockWaitMs?: number
  max: number
  feedMax: number
  onListeners?: (count: number) => void
}

export function createJournal({ dir, max, feedMax, onListeners, lockWaitMs = LOCK_WAIT_MS }: JournalOptions): History {
  const root = join(dir, '.history')
  const lockPath = join(root, '.lock')
  const feedPath = join(root, '.changes.jsonl')
  const oldFeedPath = join(root, 'changes.jsonl')
  const pathOf = (key: string) => join(root, `${key}.jsonl`)
  const unavailable = (err: unknown) =>
    err instanceof AppError ? err : new LayerUnavailableError('files', `history journal: ${reasonOf(err)}`, err)
  /** The lock cannot be taken: nothing was written, since a write waits for it. */
  const unusable = (err: unknown) =>
    new AppError(
      'STORE_UNAVAILABLE',
      `the history journal in ${root} cannot be written (${reasonOf(err)}), so the primary layer (files) takes no write; nothing was written`,
      { cause: err },
    )

  // One holder at a time: first in this process, then across processes through the lock file.
  let chain: Promise<unknown> = Promise.resolve()
  function locked<T>(fn: () => Promise<T>): Promise<T> {
    const run = chain.then(async () => {
      await acquire()
      try {
        return await fn()
      } finally {
        await rm(lockPath, { force: true })
      }
    })
    chain = run.catch(() => undefined)
    return run
  }

  async function acquire(): Promise<void> {
    const deadline = Date.now() + lockWaitMs
    for (let wait = 1; ; wait = Math.min(wait * 2, 50)) {
      let fh: FileHandle | undefined
      try {
        await privateDir(root)
        fh = await createNew(lockPath)
        await fh.writeFile(`${process.pid}@${HOST}`)
        return
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code
        if (code !== 'EEXIST') throw unusable(err)
      } finally {
        await fh?.close()
      }
      const held = await stat(lockPath).catch(() => undefined)
      const holder = await readPrivate(lockPath).catch(() => '')
      if ((held !== undefined && Date.now() - held.mtimeMs > STALE_LOCK_MS) || heldByTheDead(holder)) {
        await rm(lockPath, { force: true })
        continue
      }
      if (Date.now() > deadline)
        throw new AppError(
          'STORE_UNAVAILABLE',
          `the history journal ${lockPath} stayed locked for ${lockWaitMs} ms by ${holder || 'another process'} (a write in progress elsewhere, or a process on another host that stopped holding it: such a lock is taken once it is ${STALE_LOCK_MS / 1000} s old); nothing was written`,
        )
      await new Promise((r) => setTimeout(r, wait))
    }
  }

  // What each key's file held when last read or written here (each revision's metadata and where its line is, never
  // its document), valid while its size is unchanged.
  const memo = new Map<string, RevisionIndex>()
  async function entriesOf(key: string): Promise<RevisionIndex> {
    const size = await stat(pathOf(key)).then(
      (s) => s.size,
      () => -1,
    )
    if (size < 0) return { size: 0, entries: [], clean: true }
    const known = memo.get(key)
    if (known?.size === size) return known
    const read = await indexRevisions(pathOf(key))
    memo.set(key, read)
    return read
  }
  /** The revisions kept: the newest `max`, oldest first. */
  const kept = <T>(entries: T[]) => (entries.length > max ? entries.slice(-max) : entries)

  async function appendRevision(key: string, change: Change): Promise<Recorded> {
    const { entries, clean, size } = await entriesOf(key)
    const head = entries[entries.length - 1]
    const revision: Revision = {
      revision: (head?.revision ?? 0) + 1,
      time: change.time,
      actor: change.by.actor,
      via: change.by.via,
      op: change.json === null ? 'delete' : 'write',
      before: head?.after ?? null,
      after: change.json === null ? null : sha256Hex(change.json),
      source: change.source,
    }
    const line = `${JSON.stringify(revision).slice(0, -1)},"document":${change.json ?? 'null'}}\n`
    const length = Buffer.byteLength(line) - 1
    const path = pathOf(key)
    if (entries.length + 1 > max + Math.max(10, max / 2)) {
      // Trimmed to the newest `max`: the lines kept copied to a new file, renamed into place.
      const keep = max > 1 ? entries.slice(-(max - 1)) : []
      const from = keep[0]?.at ?? size
      const shifted = keep.map((e) => ({ ...e, at: e.at - from }))
      const start = size - from + (clean ? 0 : 1)
      await keepFrom(path, from, line, clean)
      memo.set(key, {
        size: start + length + 1,
        entries: [...shifted, { ...revision, at: start, length }],
        clean: true,
      })
    } else {
      const at = size + (clean ? 0 : 1)
      const grown = await appendLine(path, line, clean)
      memo.set(key, { size: grown, entries: [...entries, { ...revision, at, length }], clean: true })
    }
    const id = await appendEvent(eventOf(key, revision))
    return { revision, id }
  }

  // The feed: its lines as last read (by offset), the newest id, and the newest id told to listeners.
  const feedState = { offset: 0, ino: -1, clean: true, first: 0, last: 0, told: 0 }
  const listeners = new Listeners(onListeners)
  let poll: NodeJS.Timeout | undefined

  /** Reads the feed's lines added since last read (by any process) and tells listeners of each, in order. */
  async function catchUp(): Promise<void> {
    const s = await stat(feedPath).catch(() => undefined)
    if (s === undefined) {
      Object.assign(feedState, { offset: 0, ino: -1, clean: true, first: 0, last: 0 })
      return
    }
    if (s.ino !== feedState.ino || s.size < feedState.offset) {
      // Trimmed (renamed over) or new: read it whole.
      Object.assign(feedState, { offset: 0, ino: s.ino, first: 0 })
    }
    if (s.size === feedState.offset) return
    const fh = await openToRead(feedPath)
    let text: string
    try {
      const buf = Buffer.alloc(s.size - feedState.offset)
      const { bytesRead } = await fh.read(buf, 0, buf.length, feedState.offset)
      text = buf.subarray(0, bytesRead).toString('utf8')
    } finally {
      await fh.close()
    }
    // Only whole lines: one being appended now is read next time.
    const end = text.lastIndexOf('\n') + 1
    const { items } = parseLines<{ id: number } & ChangeEvent>(text.slice(0, end))
    feedState.offset += Buffer.byteLength(text.slice(0, end))
    feedState.clean = true
    for (const item of items) {
      if (typeof item.id !== 'number') continue // not a feed line (a key's revision, from before the rename)
      if (feedState.first === 0) feedState.first = item.id
      feedState.last = Math.max(feedState.last, item.id)
      if (item.id <= feedState.told) continue
      feedState.told = item.id
      const { id, ...event } = item
      listeners.emit({ id: String(id), event })
    }
  }

  async function appendEvent(event: ChangeEvent): Promise<string> {
    await catchUp()
    const s = await stat(feedPath).catch(() => undefined)
    const clean = s === undefined || s.size === feedState.offset ? feedState.clean : false
    const id = feedState.last + 1
    const line = `${JSON.stringify({ id, ...event })}\n`
    if (feedState.first > 0 && id - feedState.first + 1 > feedMax + Math.max(10, feedMax / 2)) {
      const text = await readPrivate(feedPath)
      const { items } = parseLines<{ id: number }>(text)
      await replace(
        feedPath,
        `${items
          .slice(-(feedMax - 1))
          .map((i) => JSON.stringify(i))
          .join('\n')}\n${line}`,
      )
    } else {
      await appendLine(feedPath, line, clean)
    }
    await catchUp()
    return String(id)
  }

  async function readFeed(): Promise<Array<{ id: number } & ChangeEvent>> {
    const text = await readPrivate(feedPath).catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return ''
      throw err
    })
    return parseLines<{ id: number } & ChangeEvent>(text).items.filter((i) => typeof i.id === 'number')
  }

  const feed: Feed = {
    isPosition: (id) => /^\d{1,15}$/.test(id),
    compare: (a, b) => Number(a) - Number(b),
    get listeners() {
      return listeners.size
    },
    subscribe(fn) {
      const close = listeners.add(fn)
      // Other processes' events come through the file: looked for while anyone listens.
      poll ??= setInterval(() => {
        if (listeners.size === 0) {
          clearInterval(poll)
          poll = undefined
        } else void catchUp().catch(() => undefined)
      }, POLL_MS)
      return { close, ready: started }
    },
    async after(id) {
      const items = await readFeed()
      const last = items[items.length - 1]?.id ?? 0
      const position = String(last)
      if (id === undefined) return { events: [], position }
      if (!/^\d{1,15}$/.test(id)) return 'reset'
      const from = Number(id)
      const first = items[0]?.id ?? last + 1
      if (from > last || (from < first - 1 && items.length > 0)) return 'reset'
      const events = items
        .filter((i) => i.id > from)
        .map(({ id: n, ...event }): FeedEvent => ({ id: String(n), event }))
      return { events, position }
    },
  }
  /** A feed under its old name (before 0.3) becomes the feed under its new one; a key named `changes` keeps its own. */
  async function moveOldFeed(): Promise<void> {
    if ((await stat(feedPath).catch(() => undefined)) !== undefined) return
    const old = await readPrivate(oldFeedPath).catch(() => undefined)
    const first =
      old === undefined ? undefined : parseLines<Record<string, unknown>>(old.slice(0, old.indexOf('\n') + 1))
    if (first?.items[0] !== undefined && typeof first.items[0].id === 'number') await rename(oldFeedPath, feedPath)
  }
  // Listeners hear of events from the ones recorded after they subscribed: start from what the file holds now.
  const started = moveOldFeed()
    .catch(() => undefined)
    .then(catchUp)
    .then(
      () => {
        feedState.told = feedState.last
      },
      () => undefined,
    )

  return {
    kind: 'journal',
    feed,
    exclusive: (_key, fn) => locked(fn),
    async record(key, change) {
      await started
      try {
        return await appendRevision(key, change)
      } catch (err) {
        throw unavailable(err)
      }
    },
    observe: (key, current, source) =>
      locked(async () => {
        await started
        const seen: Seen | undefined = await current()
        const { entries } = await entriesOf(key)
        const head = entries[entries.length - 1]
        const sha = seen === undefined ? null : sha256Hex(seen.json)
        if ((head?.after ?? null) === sha) return undefined
        const change: Change = {
          by: { actor: 'external', via: 'external' },
          time: new Date().toISOString(),
          json: seen?.json ?? null,
          source,
        }
        return appendRevision(key, change)
      }),
    async list(key, limit, before) {
      const { entries } = await entriesOf(key)
      return kept(entries)
        .filter((e) => before === undefined || e.revision < before)
        .reverse()
        .slice(0, limit)
        .map(({ at: _a, length: _l, ...r }) => r)
    },
    async document(key, revision) {
      // Read from the file when asked for; once more after a fresh scan if another process trimmed it meanwhile.
      for (let attempt = 0; attempt < 2; attempt++) {
        if (attempt > 0) memo.delete(key)
        const found = kept((await entriesOf(key)).entries).find((e) => e.revision === revision)
        if (found === undefined) return undefined
        const read = await readDocument(pathOf(key), found)
        if (read === undefined) continue
        const { at: _a, length: _l, ...r } = found
        return { revision: r, json: read.json }
      }
      return undefined
    },
    async close() {
      clearInterval(poll)
      poll = undefined
      await chain // a write or an observation holding the lock releases it before the process ends
    },
  }
}
