// The config-store command line against real Redis, a loopback PHP server and real files: in-process through the
// binary's own `main`, and as a real process where the process itself is what is tested (exit status, stdin).
import { readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { Redis } from 'ioredis'
import { describe, expect, inject, it } from 'vitest'
import { startRedisServer } from '../scripts/redis-server.js'
import { VERSION } from '../src/version.js'
import { redisClientForFile, tempDir, uniquePrefix } from './helpers/app.js'
import { runCli, spawnCliDone } from './helpers/cli.js'
import { buildLegacyWorld, token } from './helpers/legacy-world.js'
import { phpServerForFile } from './helpers/php-server.js'

const cli = runCli

const VALID = {
  magic_link_tokens: { abc: token },
  polling_config: { active_days: [1, 2], enable_polling: true },
  processing_prefs: { retry_count: 1 },
  routing_rules: { rules: [] },
  runtime_flags: {},
  webhook_config: { webhook_url: '' },
}

const php = phpServerForFile()
const redis = redisClientForFile()

// Webhook hosts resolve through the tests' DNS server, as for the apps of test/helpers/app.ts.
const filesEnv = () => ({ CONFIG_FILES_DIR: tempDir('cli'), CONFIG_WEBHOOK_DNS_SERVERS: inject('dnsServer') })
const redisEnv = () => ({ ...filesEnv(), REDIS_URL: inject('redisUrl'), CONFIG_STORE_REDIS_PREFIX: uniquePrefix() })

describe('config-store', () => {
  it('--help, <command> --help, and an unknown command (one line, exit 2)', async () => {
    const help = await cli(['--help'], filesEnv())
    expect(help.code).toBe(0)
    for (const c of ['serve', 'check', 'migrate', 'get', 'set', 'export', 'import'])
      expect(help.stdout).toContain(`config-store ${c}`)
    expect(await cli(['--version'], filesEnv())).toEqual({ code: 0, stdout: `${VERSION}\n`, stderr: '' })
    const sub = await cli(['migrate', '--help'], filesEnv())
    expect(sub.stdout).toMatch(/^config-store migrate \[--dry-run\]/)
    const bad = await cli(['frobnicate'], filesEnv())
    expect(bad).toMatchObject({
      code: 2,
      stdout: '',
      stderr: 'config-store: unknown command "frobnicate" (see config-store --help)\n',
    })
    const flag = await cli(['check', '--nope'], filesEnv())
    expect(flag.code).toBe(2)
    expect(flag.stderr.trim().split('\n')).toHaveLength(1)
  })

  it('a bad environment variable: one line naming it, exit 1', async () => {
    const res = await cli(['check'], { ...filesEnv(), CONFIG_STORE_MODE: 'sideways' })
    expect(res.code).toBe(1)
    expect(res.stderr).toMatch(/^config-store: invalid configuration: CONFIG_STORE_MODE: .*\(got "sideways"\)\n$/)
  })
})

describe('config-store check', () => {
  it('on a new store, names the keys the legacy app needs and says how to fill them', async () => {
    const fresh = await cli(['check'], filesEnv())
    expect(fresh.code).toBe(1)
    expect(fresh.stdout.split('\n')).toEqual([
      'magic_link_tokens: MISSING',
      'processing_prefs: MISSING',
      'routing_rules: OK',
      'runtime_flags: OK',
      'webhook_config: MISSING',
      '5 keys checked: 2 OK, 0 INVALID, 3 MISSING',
      "missing: magic_link_tokens, processing_prefs, webhook_config. No layer holds them, and every layer answered: the legacy app's own check calls an absent key INVALID (payload is empty), so this check fails. A new store holds none yet: write each with config-store set KEY FILE, or bring the legacy app's with config-store migrate.",
      '',
    ])
  })

  it('prints the legacy lines and exits 0 / 1 / 2', async () => {
    const env = filesEnv()
    for (const [key, doc] of Object.entries(VALID))
      writeFileSync(join(env.CONFIG_FILES_DIR, `${key}.json`), JSON.stringify(doc))
    // The legacy app's key list: webhook_time_window, held by no layer, is not required; webhook_config is (exit 1) …
    rmSync(join(env.CONFIG_FILES_DIR, 'webhook_config.json'))
    const missing = await cli(['check'], env)
    expect(missing.code).toBe(1)
    expect(missing.stdout).toContain('webhook_config: MISSING\n6 keys checked: 5 OK, 0 INVALID, 1 MISSING\n')
    expect(missing.stdout).toMatch(
      /\nmissing: webhook_config\. No layer holds it, and every layer answered: .* config-store set KEY FILE, or .* config-store migrate\.\n$/,
    )
    writeFileSync(join(env.CONFIG_FILES_DIR, 'webhook_config.json'), JSON.stringify(VALID.webhook_config))
    // … and an absent routing_rules is OK ("empty (allowed)"), as the legacy check has it.
    writeFileSync(join(env.CONFIG_FILES_DIR, 'webhook_time_window.json'), '{"start":"","end":""}')
    rmSync(join(env.CONFIG_FILES_DIR, 'routing_rules.json'))
    writeFileSync(join(env.CONFIG_FILES_DIR, 'team_a_flags.json'), '{"a":1}') // a key of no schema is checked too
    const ok = await cli(['check'], env)
    expect(ok.code).toBe(0)
    const keys = [...Object.keys(VALID), 'team_a_flags', 'webhook_time_window'].sort()
    expect(ok.stdout).toBe(
      `${keys.map((k) => `${k}: OK`).join('\n')}\n8 keys checked: 8 OK, 0 INVALID, 0 MISSING\nall keys checked are valid.\n`,
    )
    const asJson = JSON.parse((await cli(['check', '--json', '--keys', 'routing_rules'], env)).stdout)
    expect(asJson.results[0]).toMatchObject({ status: 'OK', message: 'empty (allowed)' })

    writeFileSync(join(env.CONFIG_FILES_DIR, 'polling_config.json'), JSON.stringify({ active_days: [9] }))
    const bad = await cli(['check', '--keys', 'polling_config', 'webhook_config'], env)
    expect(bad.code).toBe(1)
    expect(bad.stdout.split('\n').slice(0, 3)).toEqual([
      'polling_config: INVALID (files: /active_days/0 must be <= 6)',
      'webhook_config: OK',
      '2 keys checked: 1 OK, 1 INVALID, 0 MISSING',
    ])

    const json = await cli(['check', '--json', '--keys', 'polling_config'], env)
    expect(json.code).toBe(1)
    expect(JSON.parse(json.stdout)).toMatchObject({
      ok: false,
      exit_code: 1,
      keys: ['polling_config'],
      results: [{ status: 'INVALID' }],
    })

    const nope = await cli(['check', '--keys', 'nope'], env) // any valid key name: this one is held by no layer
    expect(nope).toMatchObject({ code: 1, stdout: expect.stringContaining('nope: MISSING') })
    const malformed = await cli(['check', '--keys', 'Not_A_Key'], env)
    expect(malformed.code).toBe(2)
    expect(malformed.stderr).toMatch(/^config-store: not valid key names: Not_A_Key/)
  })
})

describe('config-store migrate', () => {
  it('--only handling, dry run, the real run, exit codes 0 / 1 / 2 / 3', async () => {
    const env = { ...redisEnv(), EXTERNAL_CONFIG_BASE_URL: php.url, CONFIG_API_TOKEN: php.token }
    await buildLegacyWorld({ dir: env.CONFIG_FILES_DIR, php, redis, prefix: env.CONFIG_STORE_REDIS_PREFIX })

    const none = await cli(['migrate', '--only', '../x', '--only', 'Also Bad'], env)
    expect(none.code).toBe(2)
    expect(none.stderr).toContain('No valid values provided for --only')

    const dry = await cli(['migrate', '--dry-run', '--only', 'polling_config', '--only', 'no/pe'], env)
    expect(dry.code).toBe(0)
    expect(dry.stdout).toMatch(
      /^polling_config: DRY \(source=php\)\npolling_config: would change added .*\ndry run: 1 keys: 1 would_migrate\n$/,
    )
    expect(dry.stderr).toContain('ignoring --only no/pe')
    expect(await redis.get(`${env.CONFIG_STORE_REDIS_PREFIX}polling_config`)).toBeNull()

    const run = await cli(['migrate', '--only', 'POLLING_CONFIG'], env)
    expect(run).toMatchObject({
      code: 0,
      stdout: 'polling_config: OK (source=php)\npolling_config: VERIFY OK\n1 keys: 1 migrated\n',
    })

    const json = await cli(['migrate', '--json', '--no-verify', '--require-redis'], env)
    expect(json.code).toBe(1) // routing_rules is invalid in the legacy world
    expect(JSON.parse(json.stdout)).toMatchObject({ success: false, exit_code: 1, dry_run: false })

    await redis.set(`${env.CONFIG_STORE_REDIS_PREFIX}:migration_lock`, 'held-by-another', 'PX', 10_000)
    const locked = await cli(['migrate'], env)
    expect(locked.code).toBe(3)
    expect(locked.stderr).toBe('config-store: another migration is running; try again when it ends\n')
    php.files.clear()
  })
})

describe('config-store get, set, export, import', () => {
  it('set from standard input and from a file; get the effective value or one layer', async () => {
    const env = redisEnv()
    const set = await cli(['set', 'runtime_flags', '-'], env, '{"gmail_ingress_enabled": true}')
    expect(set.code).toBe(0)
    expect(set.stdout).toMatch(/^runtime_flags: written to redis as revision 1 \(_updated_at \d{4}-.*Z\)\n$/)
    const file = join(env.CONFIG_FILES_DIR, 'in.json')
    writeFileSync(file, '{"webhook_url": "https://hooks.acme.test/x"}')
    expect((await cli(['set', 'webhook_config', file], env)).code).toBe(0)

    const get = await cli(['get', 'runtime_flags'], env)
    expect(get.code).toBe(0)
    expect(JSON.parse(get.stdout)).toMatchObject({ gmail_ingress_enabled: true })
    expect((await cli(['get', 'runtime_flags', '--source', 'files'], env)).stderr).toBe(
      'config-store: the files layer does not hold runtime_flags\n',
    )
    expect((await cli(['get', 'runtime_flags', '--source', 'php'], env)).stderr).toBe(
      'config-store: the php layer is not configured\n',
    )
    expect((await cli(['get', '../etc/passwd'], env)).code).toBe(2)
    expect(await cli(['get', 'runtime_flag'], env)).toMatchObject({
      code: 1,
      stderr: 'config-store: no layer holds runtime_flag; did you mean runtime_flags?\n',
    })
    const typo = await cli(['set', 'webhook_confg', '-'], env, '{"webhook_url": "https://hooks.acme.test/y"}')
    expect(typo.code).toBe(0)
    expect(typo.stderr).toBe(
      'config-store: warning: webhook_confg is a new key, a typo away from webhook_config: if webhook_config was meant, write it and delete webhook_confg\n',
    )

    const invalid = await cli(['set', 'polling_config', '-'], env, '{"active_days": [9]}')
    expect(invalid.code).toBe(1)
    expect(invalid.stderr).toBe(
      'config-store: polling_config does not match its schema\n  /active_days/0 must be <= 6\n',
    )
    const notJson = await cli(['set', 'polling_config', '-'], env, '{oops')
    expect(notJson).toMatchObject({ code: 2, stderr: 'config-store: standard input is not valid JSON\n' })
    expect(await redis.get(`${env.CONFIG_STORE_REDIS_PREFIX}polling_config`)).toBeNull()
  })

  it('export → import round trip gives back the same content, byte for byte', async () => {
    const env = redisEnv()
    for (const [key, doc] of Object.entries(VALID)) await cli(['set', key, '-'], env, JSON.stringify(doc))
    const bundles = tempDir('bundles') // outside CONFIG_FILES_DIR, where a .json file would be a key
    const a = join(bundles, 'a.json')
    const b = join(bundles, 'b.json')
    expect((await cli(['export', '--out', a], env)).stdout).toBe(`exported 6 keys to ${a}\n`)

    await cli(['set', 'polling_config', '-'], env, '{"active_days": [5]}')
    await redis.del(`${env.CONFIG_STORE_REDIS_PREFIX}webhook_config`)

    const dry = await cli(['import', a, '--dry-run'], env)
    const same = (key: string) => `  ${key}: unchanged (redis holds it as the bundle does; no new revision)`
    expect(dry.stdout.split('\n')).toEqual([
      'would import 6 keys into redis: 2 to write, 4 unchanged',
      same('magic_link_tokens'),
      '  polling_config: would be written',
      same('processing_prefs'),
      same('routing_rules'),
      same('runtime_flags'),
      '  webhook_config: would be written',
      '',
    ])
    expect(await redis.get(`${env.CONFIG_STORE_REDIS_PREFIX}webhook_config`)).toBeNull()

    const imported = await cli(['import', a], env)
    expect(imported.code).toBe(0)
    expect(imported.stdout).toMatch(/^imported 6 keys into redis: 2 written, 4 unchanged\n/)
    await cli(['export', '--out', b], env)
    const configs = (file: string) => JSON.stringify(JSON.parse(readFileSync(file, 'utf8')).configs, null, 2)
    expect(configs(b)).toBe(configs(a))
    // the same bundle again changes nothing, and says so for each key: no new revision anywhere
    const revisions = async () => JSON.parse((await cli(['history', 'polling_config', '--json'], env)).stdout).length
    const before = await revisions()
    const again = await cli(['import', a], env)
    expect(again.stdout.split('\n')[0]).toBe('imported 6 keys into redis: 0 written, 6 unchanged')
    expect(again.stdout.split('\n').slice(1, -1)).toEqual(
      Object.keys(JSON.parse(readFileSync(a, 'utf8')).configs)
        .sort()
        .map(same),
    )
    expect(await revisions()).toBe(before)
  })

  it('import is all or nothing: one invalid document and nothing is written', async () => {
    const env = redisEnv()
    const bundle = join(env.CONFIG_FILES_DIR, 'bundle.json')
    writeFileSync(
      bundle,
      JSON.stringify({
        format: 'config-store-export/1',
        configs: { runtime_flags: { gmail_ingress_enabled: true }, polling_config: { active_days: [8] } },
      }),
    )
    const res = await cli(['import', bundle], env)
    expect(res.code).toBe(1)
    expect(res.stderr).toBe(
      'config-store: import refused, nothing written: polling_config /active_days/0 must be <= 6\n',
    )
    expect(await redis.keys(`${env.CONFIG_STORE_REDIS_PREFIX}*`)).toEqual([]) // no config, and no revision
    writeFileSync(bundle, '{"configs": {}}')
    expect((await cli(['import', bundle], env)).stderr).toBe(
      `config-store: ${bundle} is not a config-store export bundle\n`,
    )
  })

  it('import is all or nothing: a write that fails midway puts back the keys already written', async () => {
    const server = await startRedisServer()
    const admin = new Redis(server.url)
    const env = { ...filesEnv(), REDIS_URL: server.url, CONFIG_STORE_REDIS_PREFIX: 'p:' }
    const bundle = join(tempDir('bundles'), 'bundle.json')
    const big = { notes: 'x'.repeat(3_000_000) }
    writeFileSync(
      bundle,
      JSON.stringify({
        format: 'config-store-export/1',
        configs: { first_key: { a: 1 }, big_key: big, third_key: { c: 3 } },
      }),
    )
    // Redis refuses writes (OOM) near maxmemory while reads and DEL still work: a write after first_key fails for real.
    const used = Number(/used_memory:(\d+)/.exec(await admin.info('memory'))?.[1])
    await admin.config('SET', 'maxmemory', String(used + 1_500_000))
    const res = await cli(['import', bundle], env)
    expect(res.code).toBe(1)
    expect(res.stderr).toMatch(/^config-store: import failed at (big_key|third_key) \(.*\); rolled back first_key/) // first_key was written
    expect(res.stderr).not.toMatch(/COULD NOT/)
    // No config key is left; history (names under `p::`) says first_key was imported, then put back.
    expect((await admin.keys('p:*')).filter((k) => !k.startsWith('p::'))).toEqual([])
    const revisions = (await admin.lrange('p::history:{p:first_key}', 0, -1)).map((r) => JSON.parse(r))
    expect(revisions.map((r) => [r.revision, r.op, r.via])).toEqual([
      [2, 'delete', 'import'],
      [1, 'write', 'import'],
    ])
    admin.disconnect()
    await server.stop()
  })
})

describe('config-store as a process', () => {
  it('exit status 2 for an unknown command, 1 for a bad variable, 3 for a held migration lock', async () => {
    const unknown = await spawnCliDone(['frobnicate'], filesEnv())
    expect(unknown).toEqual({
      code: 2,
      stdout: '',
      stderr: 'config-store: unknown command "frobnicate" (see config-store --help)\n',
    })
    const badEnv = await spawnCliDone(['check'], { ...filesEnv(), CONFIG_STORE_MODE: 'sideways' })
    expect(badEnv.code).toBe(1)
    expect(badEnv.stderr).toMatch(/^config-store: invalid configuration: CONFIG_STORE_MODE: /)
    const env = redisEnv()
    await redis.set(`${env.CONFIG_STORE_REDIS_PREFIX}:migration_lock`, 'held-by-another', 'PX', 10_000)
    expect((await spawnCliDone(['migrate'], env)).code).toBe(3)
  })

  it('set reads the document from its real standard input, and get prints it', async () => {
    const env = filesEnv()
    const set = await spawnCliDone(['set', 'runtime_flags'], env, '{"gmail_ingress_enabled": false}')
    expect(set).toMatchObject({ code: 0, stdout: expect.stringMatching(/^runtime_flags: written to files/) })
    const get = await spawnCliDone(['get', 'runtime_flags'], env)
    expect(JSON.parse(get.stdout)).toMatchObject({ gmail_ingress_enabled: false })
  })
})
