// Files the service writes that may hold a document (the history journal, the last-known-good snapshot): owner-only
// whatever the umask (0600 files, 0700 folders, and an older file or folder made wider is narrowed on first use),
// and never reached through a symbolic link, so a link planted in their place cannot send a secret elsewhere or
// read one from elsewhere. The files layer keeps its own rules for its directory (stores/file-layer.ts).
import { constants } from 'node:fs'
import { chmod, type FileHandle, lstat, mkdir, open } from 'node:fs/promises'

const { O_APPEND, O_CREAT, O_EXCL, O_NOFOLLOW, O_RDONLY, O_WRONLY } = constants

/** Paths already narrowed to their owner by this process. */
const narrowed = new Set<string>()

async function owned(fh: FileHandle, path: string): Promise<FileHandle> {
  if (narrowed.has(path)) return fh
  const s = await fh.stat()
  if ((s.mode & 0o077) !== 0) await fh.chmod(0o600)
  narrowed.add(path)
  return fh
}

/** Makes `dir` (0700) or checks the one there: a folder, not a link, narrowed to its owner. */
export async function privateDir(dir: string): Promise<void> {
  if (narrowed.has(dir)) return
  await mkdir(dir, { recursive: true, mode: 0o700 })
  const s = await lstat(dir)
  if (!s.isDirectory()) throw Object.assign(new Error(`${dir} is not a folder (a symbolic link?)`), { code: 'ELOOP' })
  if ((s.mode & 0o077) !== 0) await chmod(dir, 0o700)
  narrowed.add(dir)
}

/** Opens `path` to append (created 0600); a symbolic link is refused (ELOOP). */
export async function openToAppend(path: string): Promise<FileHandle> {
  return owned(await open(path, O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW, 0o600), path)
}

/** Creates `path`, which must not exist (0600; never through a link). */
export function createNew(path: string): Promise<FileHandle> {
  return open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0o600)
}

/** Opens `path` to read; a symbolic link is refused (ELOOP). */
export function openToRead(path: string): Promise<FileHandle> {
  return open(path, O_RDONLY | O_NOFOLLOW)
}

/** The whole text of `path`, never through a symbolic link. */
export async function readPrivate(path: string): Promise<string> {
  const fh = await openToRead(path)
  try {
    return await fh.readFile('utf8')
  } finally {
    await fh.close()
  }
}
