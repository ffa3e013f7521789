// A key's revision file in the journal (`<key>.jsonl`, oldest first): what is kept in memory of it is each revision's
// metadata and where its line lies, never its document, which is read from the file when asked for. A file is
// scanned in chunks, and trimmed by copying the lines it keeps, so no step holds a whole file (up to
// CONFIG_HISTORY_MAX documents) in memory.
import { rename, rm } from 'node:fs/promises'
import { createNew, openToAppend, openToRead } from '../private-files.js'
import type { Revision } from './schemas.js'

/** A revision, and the bytes of its line in the file. */
export interface Indexed extends Revision {
  at: number
  length: number
}

export interface RevisionIndex {
  /** The file's size when scanned (or written here). */
  size: number
  entries: Indexed[]
  /** The file ends with a newline (a line cut short by a crash does not). */
  clean: boolean
}

const CHUNK = 1024 * 1024
/** A line is a revision's fields, then its document, last: `{…,"document":…}`. */
const DOCUMENT = Buffer.from(',"document":')

/** A line's revision (its document left unread), or undefined for a line that is not one (cut short by a crash). */
function revisionOf(line: Buffer): Revision | undefined {
  const cut = line.indexOf(DOCUMENT)
  try {
    const r = JSON.parse(cut < 0 ? line.toString('utf8') : `${line.subarray(0, cut).toString('utf8')}}`) as Revision
    return typeof r.revision === 'number' ? r : undefined
  } catch {
    return undefined
  }
}

/** Scans `path` (absent: empty) for its revisions and where they are. */
export async function indexRevisions(path: string): Promise<RevisionIndex> {
  const fh = await openToRead(path).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return undefined
    throw err
  })
  if (fh === undefined) return { size: 0, entries: [], clean: true }
  try {
    const entries: Indexed[] = []
    const buf = Buffer.alloc(CHUNK)
    let pending: Buffer[] = []
    let lineStart = 0
    let position = 0
    for (;;) {
      const { bytesRead } = await fh.read(buf, 0, CHUNK, position)
      if (bytesRead === 0) break
      const chunk = buf.subarray(0, bytesRead)
      let from = 0
      for (let nl = chunk.indexOf(10, from); nl >= 0; nl = chunk.indexOf(10, from)) {
        const line =
          pending.length === 0 ? chunk.subarray(from, nl) : Buffer.concat([...pending, chunk.subarray(from, nl)])
        pending = []
        const r = revisionOf(line)
        if (r !== undefined) entries.push({ ...r, at: lineStart, length: line.length })
        lineStart += line.length + 1
        from = nl + 1
      }
      if (from < bytesRead) pending.push(Buffer.from(chunk.subarray(from)))
      position += bytesRead
    }
    return { size: position, entries, clean: pending.length === 0 }
  } finally {
    await fh.close()
  }
}

/** The document of `entry`'s line (compact JSON text; null for a delete), or undefined when that line no longer holds
 * that revision (the file was trimmed by another process meanwhile). */
export async function readDocument(path: string, entry: Indexed): Promise<{ json: string | null } | undefined> {
  const fh = await openToRead(path)
  try {
    const line = Buffer.alloc(entry.length)
    const { bytesRead } = await fh.read(line, 0, entry.length, entry.at)
    const parsed = JSON.parse(line.subarray(0, bytesRead).toString('utf8')) as Revision & { document: unknown }
    if (parsed.revision !== entry.revision || parsed.after !== entry.after) return undefined
    return { json: parsed.op === 'delete' ? null : JSON.stringify(parsed.document) }
  } catch {
    return undefined
  } finally {
    await fh.close()
  }
}

/** Appends `line` (ending in a newline) to `path`, after a newline when the file is not `clean`: the new size. */
export async function appendLine(path: string, line: string, clean: boolean): Promise<number> {
  const fh = await openToAppend(path)
  try {
    await fh.write(clean ? line : `\n${line}`)
    await fh.datasync()
    return (await fh.stat()).size
  } finally {
    await fh.close()
  }
}

/** Replaces `path` by its bytes from `from` on (whole lines), then `extra` (after a newline when the file does not
 * end `clean`): copied in chunks to a new file renamed over it, so a crash leaves the old file or the new one. */
export async function keepFrom(path: string, from: number, extra: string, clean: boolean): Promise<void> {
  const tmp = `${path}.${process.pid}.tmp`
  await rm(tmp, { force: true }) // one left by a crash of a process with this pid
  const out = await createNew(tmp)
  try {
    const src = await openToRead(path)
    try {
      const buf = Buffer.alloc(CHUNK)
      let position = from
      for (;;) {
        const { bytesRead } = await src.read(buf, 0, CHUNK, position)
        if (bytesRead === 0) break
        await out.write(buf.subarray(0, bytesRead))
        position += bytesRead
      }
    } finally {
      await src.close()
    }
    await out.write(clean ? extra : `\n${extra}`)
    await out.datasync()
  } finally {
    await out.close()
  }
  await rename(tmp, path)
}
