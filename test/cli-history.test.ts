// The command line's history commands — history, diff, rollback and watch — on real Redis and in files-only mode.
// Their changes are recorded as `cli:<user>`.
import { describe, expect, inject, it } from 'vitest'
import { tempDir, uniquePrefix } from './helpers/app.js'
import { runCli, spawnCli, startCli } from './helpers/cli.js'
import { until } from './helpers/wait.js'

const modes = {
  redis: () => ({
    CONFIG_FILES_DIR: tempDir('cli'),
    REDIS_URL: inject('redisUrl'),
    CONFIG_STORE_REDIS_PREFIX: uniquePrefix(),
  }),
  'files only': () => ({ CONFIG_FILES_DIR: tempDir('cli') }),
} as const

describe.each(Object.entries(modes))('%s', (_mode, envOf) => {
  it('history, diff and rollback; changes are by cli:<user>', async () => {
    const env = { ...envOf(), USER: 'ops-alice' }
    expect((await runCli(['set', 'k', '-'], env, '{"a": 1, "b": [1, 2]}')).stdout).toMatch(/as revision 1 /)
    expect((await runCli(['set', 'k', '-'], env, '{"a": 2, "b": [1]}')).stdout).toMatch(/as revision 2 /)
    const history = await runCli(['history', 'k'], env)
    expect(history.code).toBe(0)
    const lines = history.stdout.replace(/\n$/, '').split('\n')
    expect(lines).toHaveLength(2)
    expect(lines[0]).toMatch(/^ {3}2 {2}\d{4}-\d\d-\d\dT.*Z {2}write +cli +cli:ops-alice {2}[0-9a-f]{12}$/)
    expect(lines[1]).toMatch(/^ {3}1 /)
    const json = JSON.parse((await runCli(['history', 'k', '--json', '--limit', '1'], env)).stdout)
    expect(json).toEqual([expect.objectContaining({ revision: 2, actor: 'cli:ops-alice', via: 'cli' })])

    // Without FROM: what the latest change did.
    const last = JSON.parse((await runCli(['diff', 'k'], env)).stdout)
    expect(last.filter((o: { path: string }) => o.path !== '/_updated_at')).toEqual(
      expect.arrayContaining([
        { op: 'replace', path: '/a', value: 2 },
        { op: 'remove', path: '/b/1' },
      ]),
    )
    expect(JSON.parse((await runCli(['diff', 'k', '2'], env)).stdout)).toEqual([]) // revision 2 is current

    const back = await runCli(['rollback', 'k', '1'], env)
    expect(back).toMatchObject({ code: 0, stderr: '' })
    expect(back.stdout).toMatch(/^k: revision 1 written again to (redis|files) as revision 3 /)
    expect(JSON.parse((await runCli(['get', 'k'], env)).stdout)).toMatchObject({ a: 1, b: [1, 2] })
    expect(JSON.parse((await runCli(['history', 'k', '--json', '--limit', '1'], env)).stdout)[0]).toMatchObject({
      revision: 3,
      via: 'rollback',
      actor: 'cli:ops-alice',
    })
  })

  it('bad arguments are usage errors (exit 2); a revision not kept is exit 1; nothing is written', async () => {
    const env = envOf()
    await runCli(['set', 'k', '-'], env, '{"a": 1}')
    for (const args of [
      ['history'],
      ['history', 'k', '--limit', 'ten'],
      ['diff', 'k', 'x'],
      ['diff', 'k', '1', '0'],
      ['rollback', 'k'],
      ['rollback', 'k', '-1'],
      ['watch', 'Not A Key'],
    ]) {
      const res = await runCli(args, env)
      expect(res.code, args.join(' ')).toBe(2)
      expect(res.stderr, args.join(' ')).toMatch(/^config-store: /)
    }
    expect(await runCli(['history', 'Bad'], env)).toMatchObject({ code: 2 })
    const missing = await runCli(['rollback', 'k', '9'], env)
    expect(missing.code).toBe(1)
    expect(missing.stderr).toMatch(/k has no revision 9/)
    expect((await runCli(['diff', 'k'], env)).stdout).toMatch(/fewer than two revisions/)
    const never = await runCli(['history', 'never'], env)
    expect(never.code).toBe(1)
    expect(never.stderr).toMatch(/no such key: no layer holds never, and history has no revision of it/)
    const typo = await runCli(['history', 'kk'], env)
    expect(typo.stderr).toMatch(/no such key: .*; did you mean k\?/)
    expect(JSON.parse((await runCli(['history', 'k', '--json'], env)).stdout)).toHaveLength(1)
  })

  it('watch, in-process: a line per change, until interrupted', async () => {
    const env = { ...envOf(), USER: 'ops-carol' }
    const watching = startCli(['watch'], env)
    await until(() => watching.out.stderr.includes('watching every key'), 5000)
    await runCli(['set', 'k', '-'], env, '{"v": 1}')
    await runCli(['rollback', 'k', '1'], env)
    await until(() => watching.out.stdout.split('\n').filter(Boolean).length === 2, 5000)
    const lines = watching.out.stdout.split('\n').filter(Boolean)
    expect(lines[0]).toMatch(/^\d{4}-.*Z {2}k {2}r1 {2}write {2}by cli:ops-carol \(cli\) {2}[0-9a-f]{12}$/)
    expect(lines[1]).toMatch(/ {2}k {2}r2 {2}write {2}by cli:ops-carol \(rollback\) /)
    watching.interrupt()
    expect(await watching.done).toBe(0)
  })

  it('watch prints a line per change as it happens, only of the keys asked for, until interrupted', async () => {
    const env = { ...envOf(), USER: 'ops-bob' }
    const watching = spawnCli(['watch', 'k', 'j', '--json'], env)
    await until(() => watching.out.stderr.includes('watching k, j'), 20_000)
    await runCli(['set', 'k', '-'], env, '{"v": 1}')
    await runCli(['set', 'other', '-'], env, '{"v": 1}')
    await runCli(['set', 'j', '-'], env, '{"v": 1}')
    await until(() => watching.out.stdout.trim().split('\n').length === 2, 5000)
    const events = watching.out.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l))
    expect(events.map((e) => [e.key, e.revision, e.actor, e.via])).toEqual([
      ['k', 1, 'cli:ops-bob', 'cli'],
      ['j', 1, 'cli:ops-bob', 'cli'],
    ])
    expect(events[0].id).toBeTruthy()
    watching.child.kill('SIGINT')
    expect(await watching.exited).toBe(0)
  }, 30_000)
})
