import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { createFileLayer, type FileLayer } from '../../stores/file-layer.js'
import { tempDir } from '../helpers/app.js'
import { layerContract } from './contract.js'

layerContract('files', async () => {
  const dir = tempDir()
  return {
    layer: createFileLayer({ dir }),
    // Even root cannot create files below a regular file: the directory becomes unusable for real.
    breakIt: async () => {
      rmSync(dir, { recursive: true })
      writeFileSync(dir, 'not a directory')
    },
    cleanup: async () => rmSync(dir, { recursive: true, force: true }),
  }
})

/** Waits (up to 2 s) until the store serves `from` for `key`: files changed behind its back are seen once the
 * directory's watch event has arrived, within milliseconds. */
async function seen(store: FileLayer, key: string, from: string): Promise<void> {
  const deadline = Date.now() + 2000
  for (;;) {
    const read = await store.get(key)
    if (read.state === 'hit' && read.doc.from === from) return
    if (Date.now() > deadline) throw new Error(`${key} still reads ${JSON.stringify(read)}`)
    await new Promise((r) => setTimeout(r, 5))
  }
}

describe('files layer', () => {
  it('remembers file texts while the directory watch says they are unchanged, and sees outside changes', async () => {
    const dir = tempDir()
    const store = createFileLayer({ dir })
    writeFileSync(join(dir, 'watched.json'), JSON.stringify({ from: 'first' }))
    await seen(store, 'watched', 'first')
    writeFileSync(join(dir, 'watched.json'), JSON.stringify({ from: 'edited by hand' }))
    await seen(store, 'watched', 'edited by hand')
    await store.set('watched', { from: 'own write' })
    expect(await store.get('watched')).toMatchObject({ doc: { from: 'own write' } }) // at once, no event needed
    rmSync(join(dir, 'watched.json'))
    const deadline = Date.now() + 2000
    while ((await store.get('watched')).state !== 'absent' && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 5))
    expect(await store.get('watched')).toEqual({ state: 'absent' })
    // The directory replaced: the old watch ends, and the new directory's files are read.
    rmSync(dir, { recursive: true })
    mkdirSync(dir)
    writeFileSync(join(dir, 'watched.json'), JSON.stringify({ from: 'new directory' }))
    await seen(store, 'watched', 'new directory')
    store.close()
  })

  it('writes <dir>/<key>.json pretty-printed, atomically (no temp file left behind)', async () => {
    const dir = tempDir()
    const store = createFileLayer({ dir: join(dir, 'created', 'on', 'write') })
    await store.set('polling_config', { enable_polling: true, note: 'été' })
    const written = join(dir, 'created', 'on', 'write')
    expect(readdirSync(written)).toEqual(['polling_config.json'])
    expect(readFileSync(join(written, 'polling_config.json'), 'utf8')).toBe(
      '{\n  "enable_polling": true,\n  "note": "été"\n}\n',
    )
  })

  it('magic_link_tokens in the legacy order: magic_links.json, then magic_link_tokens.json; written to the first', async () => {
    const dir = tempDir()
    const store = createFileLayer({ dir })
    writeFileSync(join(dir, 'magic_link_tokens.json'), JSON.stringify({ from: 'magic_link_tokens' }))
    expect(await store.get('magic_link_tokens')).toMatchObject({ doc: { from: 'magic_link_tokens' } })
    writeFileSync(join(dir, 'magic_links.json'), JSON.stringify({ from: 'magic_links' }))
    await seen(store, 'magic_link_tokens', 'magic_links') // the legacy MagicLinkService's file wins, as in the legacy app
    await store.set('magic_link_tokens', { from: 'service' })
    expect(JSON.parse(readFileSync(join(dir, 'magic_links.json'), 'utf8'))).toEqual({ from: 'service' })
    expect(await store.listKeys()).toEqual(['magic_link_tokens'])
    expect(await store.delete('magic_link_tokens')).toBe('deleted')
    expect(await store.get('magic_link_tokens')).toEqual({ state: 'absent' })
    store.close()
  })

  it('with MAGIC_LINK_TOKENS_FILE, that file is read and written first', async () => {
    const dir = tempDir()
    const alt = join(tempDir('alt'), 'tokens.json')
    const store = createFileLayer({ dir, magicLinkTokensFile: alt })
    writeFileSync(join(dir, 'magic_links.json'), JSON.stringify({ from: 'magic_links' }))
    expect(await store.get('magic_link_tokens')).toMatchObject({ doc: { from: 'magic_links' } })
    writeFileSync(alt, JSON.stringify({ from: 'alt' }))
    expect(await store.get('magic_link_tokens')).toMatchObject({ doc: { from: 'alt' } }) // outside the directory: read each time
    await store.set('magic_link_tokens', { from: 'service' })
    expect(JSON.parse(readFileSync(alt, 'utf8'))).toEqual({ from: 'service' })
    store.close()
  })

  it('answers unavailable for a file that is not a JSON object, and skips files that are not keys', async () => {
    const dir = tempDir()
    writeFileSync(join(dir, 'broken.json'), '{"a":')
    writeFileSync(join(dir, 'list.json'), '[1]')
    writeFileSync(join(dir, 'Not A Key.json'), '{}')
    writeFileSync(join(dir, 'notes.txt'), 'x')
    mkdirSync(join(dir, 'sub'))
    const store = createFileLayer({ dir })
    expect((await store.get('broken')).state).toBe('unavailable')
    expect((await store.get('list')).state).toBe('unavailable')
    expect(await store.listKeys()).toEqual(['broken', 'list'])
  })

  it('lists nothing, and is healthy, before the directory exists', async () => {
    const store = createFileLayer({ dir: join(tempDir(), 'later') })
    expect(await store.listKeys()).toEqual([])
    expect((await store.health()).ok).toBe(true)
  })
})
