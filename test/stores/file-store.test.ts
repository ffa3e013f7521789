import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { createFileStore } from '../../stores/file-store.js'
import { tempDir } from '../helpers/app.js'
import { layerContract } from './contract.js'

layerContract('files', async () => {
  const dir = tempDir()
  return {
    layer: createFileStore({ dir }),
    // Even root cannot create files below a regular file: the directory becomes unusable for real.
    breakIt: async () => {
      rmSync(dir, { recursive: true })
      writeFileSync(dir, 'not a directory')
    },
    cleanup: async () => rmSync(dir, { recursive: true, force: true }),
  }
})

describe('files layer', () => {
  it('writes <dir>/<key>.json pretty-printed, atomically (no temp file left behind)', async () => {
    const dir = tempDir()
    const store = createFileStore({ dir: join(dir, 'created', 'on', 'write') })
    await store.set('polling_config', { enable_polling: true, note: 'été' })
    const written = join(dir, 'created', 'on', 'write')
    expect(readdirSync(written)).toEqual(['polling_config.json'])
    expect(readFileSync(join(written, 'polling_config.json'), 'utf8')).toBe(
      '{\n  "enable_polling": true,\n  "note": "été"\n}\n',
    )
  })

  it('reads magic_link_tokens from MAGIC_LINK_TOKENS_FILE, then magic_link_tokens.json, then magic_links.json', async () => {
    const dir = tempDir()
    const alt = join(tempDir('alt'), 'tokens.json')
    const store = createFileStore({ dir, magicLinkTokensFile: alt })
    writeFileSync(join(dir, 'magic_links.json'), JSON.stringify({ from: 'magic_links' }))
    expect(await store.get('magic_link_tokens')).toMatchObject({ doc: { from: 'magic_links' } })
    expect(await store.listKeys()).toEqual(['magic_link_tokens'])
    writeFileSync(join(dir, 'magic_link_tokens.json'), JSON.stringify({ from: 'magic_link_tokens' }))
    expect(await store.get('magic_link_tokens')).toMatchObject({ doc: { from: 'magic_link_tokens' } })
    writeFileSync(alt, JSON.stringify({ from: 'alt' }))
    expect(await store.get('magic_link_tokens')).toMatchObject({ doc: { from: 'alt' } })
    expect(await store.delete('magic_link_tokens')).toBe('deleted')
    expect(await store.get('magic_link_tokens')).toEqual({ state: 'absent' })
  })

  it('answers unavailable for a file that is not a JSON object, and skips files that are not keys', async () => {
    const dir = tempDir()
    writeFileSync(join(dir, 'broken.json'), '{"a":')
    writeFileSync(join(dir, 'list.json'), '[1]')
    writeFileSync(join(dir, 'Not A Key.json'), '{}')
    writeFileSync(join(dir, 'notes.txt'), 'x')
    mkdirSync(join(dir, 'sub'))
    const store = createFileStore({ dir })
    expect((await store.get('broken')).state).toBe('unavailable')
    expect((await store.get('list')).state).toBe('unavailable')
    expect(await store.listKeys()).toEqual(['broken', 'list'])
  })

  it('lists nothing, and is healthy, before the directory exists', async () => {
    const store = createFileStore({ dir: join(tempDir(), 'later') })
    expect(await store.listKeys()).toEqual([])
    expect((await store.health()).ok).toBe(true)
  })
})
