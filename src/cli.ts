#!/usr/bin/env node
// The `config-store` command line (operations.md "The command line"): the same configuration and store code as the
// server. Errors are one line on stderr; exit 0 on success, 1 on a failure, 2 on bad arguments, 3 when the
// migration lock is held.
import { randomBytes } from 'node:crypto'
import { lstatSync, readFileSync, renameSync, rmSync, type Stats, writeFileSync } from 'node:fs'
import { basename, dirname, join } from 'node:path'
import { type ParseArgsConfig, parseArgs } from 'node:util'
import pino from 'pino'
import { isDocument, isValidKey, LAYER_ORDER, type LayerName } from '../stores/types.js'
import { type AppConfig, ConfigError, loadConfig, readEnvironment } from './config.js'
import { AppError, reasonOf } from './errors.js'
import { createLogger } from './logger.js'
import { migrateToRedis } from './migrate.js'
import { missingFilesDir, openStore } from './open-store.js'
import { exitOnStartError, startServer } from './server.js'
import type { ConfigStore } from './store.js'
import { verifyConfigStore } from './verify.js'

class UsageError extends Error {}

const COMMANDS: Record<string, { usage: string; run: (args: string[]) => Promise<number> }> = {
  serve: {
    usage: `config-store serve
  Runs the HTTP service (the default command).`,
    run: async (args) => {
      parse(args, {})
      await startServer().catch(exitOnStartError)
      return -1 // keeps running until a signal
    },
  },

  check: {
    usage: `config-store check [--keys KEY ...] [--raw] [--fail-on-drift] [--json]
  Reads every configured layer directly and prints "key: OK" or "key: INVALID (reason)" per key.
  Exit 0 when all are valid, 1 otherwise, 2 on bad arguments.`,
    run: async (args) => {
      const [keys, rest] = takeList(args, '--keys')
      const { values } = parse(rest, {
        raw: { type: 'boolean' },
        'fail-on-drift': { type: 'boolean' },
        json: { type: 'boolean' },
      })
      return withStore(async (store) => {
        const reply = await verifyConfigStore(store, {
          keys,
          raw: values.raw,
          failOnDrift: values['fail-on-drift'],
          admin: true,
        }).catch(asUsage)
        for (const layer of reply.unreachable)
          process.stderr.write(`config-store: the ${layer} layer could not be reached; the check is incomplete\n`)
        if (values.json) return print(JSON.stringify(reply, null, 2), reply.exit_code)
        const lines = reply.results.map((r) =>
          r.status === 'OK'
            ? `${r.key}: OK`
            : r.status === 'MISSING'
              ? `${r.key}: MISSING`
              : `${r.key}: INVALID (${r.message})`,
        )
        for (const r of reply.results)
          for (const d of r.drift)
            lines.push(`${r.key}: DRIFT ${d.layers.join('/')}${d.newer ? ` (${d.newer} newer)` : ''}`)
        if (values.raw)
          for (const r of reply.results) if (r.payload) lines.push(`${r.key}: ${JSON.stringify(r.payload)}`)
        const count = (status: string) => reply.results.filter((r) => r.status === status).length
        lines.push(
          `${reply.results.length} keys checked: ${count('OK')} OK, ${count('INVALID')} INVALID, ${count('MISSING')} MISSING`,
          '-'.repeat(40),
        )
        return print(lines.join('\n'), reply.exit_code)
      })
    },
  },

  migrate: {
    usage: `config-store migrate [--dry-run] [--verify|--no-verify] [--require-redis] [--only KEY]... [--force] [--json]
  Copies the legacy PHP/file configs into Redis: the newest copy wins, newer Redis values are kept (unless --force),
  each write is a compare-and-set, and --verify (the default) reads each key back from Redis.
  --require-redis is accepted for the legacy script's sake: migrate always needs Redis.
  Exit 0 on success, 1 when a key failed, 2 on bad arguments, 3 when another migration is running.`,
    run: async (args) => {
      const { values } = parse(args, {
        'dry-run': { type: 'boolean' },
        verify: { type: 'boolean' },
        'no-verify': { type: 'boolean' },
        'require-redis': { type: 'boolean' },
        only: { type: 'string', multiple: true },
        force: { type: 'boolean' },
        json: { type: 'boolean' },
      })
      return withStore(async (store, config) => {
        let keys: string[] | undefined
        if (values.only !== undefined) {
          keys = values.only
            .map((k) => k.trim().toLowerCase())
            .filter((k) => {
              if (!isValidKey(k)) process.stderr.write(`config-store: ignoring --only ${k}: not a valid key name\n`)
              return isValidKey(k)
            })
          if (keys.length === 0) throw new UsageError('No valid values provided for --only')
        }
        const reply = await migrateToRedis(store, {
          keys,
          dryRun: values['dry-run'],
          verify: values['no-verify'] ? false : (values.verify ?? true),
          force: values.force,
          lockTtlMs: config.MIGRATION_LOCK_TTL_MS,
        })
        if (values.json) return print(JSON.stringify(reply, null, 2), reply.exit_code)
        return print([...reply.log, ...migrateSummary(reply)].join('\n'), reply.exit_code)
      })
    },
  },

  get: {
    usage: `config-store get KEY [--source redis|php|files]
  Prints the effective document of KEY (or that one layer's copy) as JSON.`,
    run: async (args) => {
      const { values, positionals } = parse(args, { source: { type: 'string' } }, 1)
      const key = positionals[0] as string
      const source = values.source
      if (source !== undefined && !LAYER_ORDER.includes(source as LayerName)) {
        throw new UsageError(`--source must be one of: ${LAYER_ORDER.join(', ')}`)
      }
      return withStore(async (store) => {
        const r = source === undefined ? await store.read(key) : await store.readFrom(source as LayerName, key)
        if (source === undefined && r.stale)
          process.stderr.write(
            `config-store: ${r.source} could not be reached; this is its last-known-good copy of ${key}\n`,
          )
        else if (source === undefined && r.source !== store.primary.name)
          process.stderr.write(
            `config-store: served by ${r.source}, a fallback: ${store.primary.name} could not answer for ${key}\n`,
          )
        return print(JSON.stringify(JSON.parse(r.json), null, 2), 0)
      })
    },
  },

  set: {
    usage: `config-store set KEY [FILE|-]
  Validates the JSON document in FILE (or on standard input) and writes it to the primary layer.`,
    run: async (args) => {
      const { positionals } = parse(args, {}, 1, 2)
      const [key, file = '-'] = positionals as [string, string?]
      const doc = readJson(file)
      if (!isDocument(doc))
        throw new UsageError(`${file === '-' ? 'standard input' : file} does not hold a JSON object`)
      return withStore(async (store) => {
        const w = await store.write(key, doc).catch((err: unknown) => {
          if (!(err instanceof AppError && err.details !== undefined)) throw err
          throw new AppError(err.code, [err.message, ...err.details.map((d) => `  ${d.path} ${d.message}`)].join('\n'))
        })
        return print(`${key}: written to ${w.source} (_updated_at ${w.updatedAt})`, 0)
      })
    },
  },

  export: {
    usage: `config-store export [--out FILE]
  Writes every key of the effective view as one JSON bundle (to standard output, or FILE with mode 0600).
  The bundle holds credentials (magic_link_tokens): keep it safe.`,
    run: async (args) => {
      const { values } = parse(args, { out: { type: 'string' } })
      return withStore(async (store) => {
        // The cut-over's rollback relies on this bundle: every configured layer must answer, and every key be read.
        const down = (await store.health()).filter((l) => !l.ok).map((l) => l.layer)
        if (down.length > 0)
          throw new AppError('STORE_UNAVAILABLE', `${down.join(', ')} could not be reached; nothing exported`)
        const configs: Record<string, unknown> = Object.create(null) // a key named __proto__ is a key
        for (const { key, source } of await store.list()) {
          if (source === null) continue
          const r = await store.read(key)
          if (r.stale)
            throw new AppError('STORE_UNAVAILABLE', `${r.source} could not be reached for ${key}; nothing exported`)
          configs[key] = JSON.parse(r.json)
        }
        const text = `${JSON.stringify({ format: BUNDLE_FORMAT, exported_at: new Date().toISOString(), configs }, null, 2)}\n`
        if (values.out === undefined) return print(text.trimEnd(), 0)
        writePrivate(values.out, text)
        return print(`exported ${Object.keys(configs).length} keys to ${values.out}`, 0)
      })
    },
  },

  import: {
    usage: `config-store import FILE [--dry-run]
  Writes every config of an export bundle to the primary layer, keeping each _updated_at. All or nothing: every
  document is validated first, and if a write fails the keys already written are put back as they were.`,
    run: async (args) => {
      const { values, positionals } = parse(args, { 'dry-run': { type: 'boolean' } }, 1, 1)
      const bundle = readJson(positionals[0] as string)
      if (!isDocument(bundle) || bundle.format !== BUNDLE_FORMAT || !isDocument(bundle.configs)) {
        throw new UsageError(`${positionals[0]} is not a config-store export bundle`)
      }
      const configs = bundle.configs
      return withStore(async (store) => importBundle(store, configs, values['dry-run'] === true))
    },
  },
}

const BUNDLE_FORMAT = 'config-store-export/1'

/** The text-mode end of a migrate: each planned change with its diff (a dry run), then one summary line. */
function migrateSummary(reply: Awaited<ReturnType<typeof migrateToRedis>>): string[] {
  const lines: string[] = []
  for (const r of reply.results) {
    if (r.diff === undefined) continue
    const parts = (['added', 'removed', 'changed'] as const)
      .filter((p) => r.diff?.[p].length)
      .map((p) => `${p} ${r.diff?.[p].join(', ')}`)
    lines.push(`${r.key}: would change ${parts.length > 0 ? parts.join('; ') : 'only _updated_at'}`)
  }
  const counts = new Map<string, number>()
  for (const r of reply.results) counts.set(r.action, (counts.get(r.action) ?? 0) + 1)
  const summary = [...counts].map(([action, n]) => `${n} ${action}`).join(', ')
  lines.push(`${reply.dry_run ? 'dry run: ' : ''}${reply.results.length} keys: ${summary || 'nothing to do'}`)
  return lines
}

const HELP = `usage: config-store <command> [options]

commands:
${Object.values(COMMANDS)
  .map((c) => `  ${c.usage.split('\n')[0]}`)
  .join('\n')}

Configuration comes from the environment and ./.env, as for the server (see README.md).
"config-store <command> --help" describes a command.
`

async function importBundle(store: ConfigStore, configs: Record<string, unknown>, dryRun: boolean): Promise<number> {
  const problems: string[] = []
  for (const [key, doc] of Object.entries(configs)) {
    const result = isDocument(doc)
      ? store.validator.validate(key, doc)
      : { ok: false as const, errors: [{ path: '/', message: 'is not an object' }] }
    if (!/^[a-z0-9_-]{1,128}$/.test(key)) problems.push(`${key}: not a valid key name`)
    else if (!store.validator.accepts(key)) problems.push(`${key}: has no schema (CONFIG_STORE_UNKNOWN_KEYS=reject)`)
    else if (!result.ok) problems.push(...result.errors.map((e) => `${key} ${e.path} ${e.message}`))
  }
  if (problems.length > 0)
    throw new AppError('VALIDATION_FAILED', `import refused, nothing written: ${problems.join('; ')}`)
  const keys = Object.keys(configs)
  if (dryRun) return print(`would import ${keys.length} keys: ${keys.join(', ')}`, 0)

  const before = new Map<string, Awaited<ReturnType<ConfigStore['primary']['get']>>>()
  for (const key of keys) {
    const read = await store.primary.get(key)
    if (read.state === 'unavailable')
      throw new AppError(
        'STORE_UNAVAILABLE',
        `the primary layer (${store.primary.name}) could not be reached; nothing written`,
      )
    before.set(key, read)
  }
  const written: string[] = []
  try {
    for (const key of keys) {
      await store.restore(key, configs[key] as Record<string, unknown>)
      written.push(key)
    }
  } catch (err) {
    const failed = keys[written.length] as string
    // A write whose outcome is unknown may have landed: it is put back too.
    const undo = err instanceof AppError && err.code === 'WRITE_OUTCOME_UNKNOWN' ? [...written, failed] : written
    const notUndone: string[] = []
    for (const key of undo) {
      const old = before.get(key)
      try {
        await (old?.state === 'hit' ? store.primary.set(key, old.doc, old.json) : store.primary.delete(key))
      } catch (undoErr) {
        notUndone.push(`${key} (${reasonOf(undoErr)})`)
      }
      store.cache.invalidate(key)
    }
    const undone = undo.filter((k) => !notUndone.some((n) => n.startsWith(`${k} (`)))
    const rolledBack = undone.length > 0 ? `rolled back ${undone.join(', ')}` : 'nothing to roll back'
    const left =
      notUndone.length > 0
        ? `; COULD NOT roll back ${notUndone.join(', ')}: they may hold the imported values — check them with config-store get`
        : ''
    throw new AppError(
      'STORE_UNAVAILABLE',
      `import failed at ${failed} (${(err as Error).message}); ${rolledBack}${left}`,
    )
  }
  return print(`imported ${keys.length} keys into ${store.primary.name}: ${keys.join(', ')}`, 0)
}

function parse<const T extends NonNullable<ParseArgsConfig['options']>>(
  args: string[],
  options: T,
  minPositionals = 0,
  maxPositionals = minPositionals,
) {
  let parsed: ReturnType<typeof parseArgs<{ args: string[]; options: T; allowPositionals: true; strict: true }>>
  try {
    parsed = parseArgs({ args, options, allowPositionals: true, strict: true })
  } catch (err) {
    throw new UsageError((err as Error).message.split('\n')[0] as string)
  }
  const n = parsed.positionals.length
  if (n < minPositionals || n > maxPositionals)
    throw new UsageError(
      `expected ${minPositionals === maxPositionals ? minPositionals : `${minPositionals} to ${maxPositionals}`} argument(s), got ${n}`,
    )
  return parsed
}

/** `--keys a b c` (the legacy script's form) and `--keys a --keys b` both work. */
function takeList(args: string[], flag: string): [string[] | undefined, string[]] {
  let list: string[] | undefined
  const rest: string[] = []
  for (let i = 0; i < args.length; i++) {
    if (args[i] !== flag) {
      rest.push(args[i] as string)
      continue
    }
    list ??= []
    while (i + 1 < args.length && !(args[i + 1] as string).startsWith('-')) list.push(args[++i] as string)
  }
  if (list?.length === 0) throw new UsageError(`${flag} needs at least one key`)
  return [list, rest]
}

/** Writes a file that holds credentials: never through a symlink, and always ending 0600 (a new file renamed over the
 * old one, so an existing 0644 file does not keep its mode). */
function writePrivate(path: string, text: string): void {
  let existing: Stats | undefined
  try {
    existing = lstatSync(path)
  } catch {}
  if (existing?.isSymbolicLink()) throw new UsageError(`${path} is a symlink; refusing to write credentials through it`)
  if (existing !== undefined && !existing.isFile()) throw new UsageError(`${path} is not a regular file`)
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`)
  try {
    writeFileSync(tmp, text, { mode: 0o600, flag: 'wx' })
    renameSync(tmp, path)
  } catch (err) {
    rmSync(tmp, { force: true })
    throw new UsageError(`cannot write ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`)
  }
}

function readJson(file: string): unknown {
  let text: string
  try {
    text = readFileSync(file === '-' ? 0 : file, 'utf8')
  } catch (err) {
    throw new UsageError(`cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`)
  }
  try {
    return JSON.parse(text)
  } catch {
    throw new UsageError(`${file === '-' ? 'standard input' : file} is not valid JSON`)
  }
}

const asUsage = (err: unknown): never => {
  throw err instanceof AppError && err.code === 'BAD_REQUEST' ? new UsageError(err.message) : err
}

function print(text: string, code: number): number {
  if (text) process.stdout.write(`${text}\n`)
  return code
}

async function withStore(fn: (store: ConfigStore, config: AppConfig) => Promise<number>): Promise<number> {
  const config = loadConfig(readEnvironment())
  // Quiet unless LOG_LEVEL asks: stdout is for the command's output, logs go to stderr.
  const logger = createLogger(process.env.LOG_LEVEL ? config.LOG_LEVEL : 'silent', pino.destination(2))
  const missing = missingFilesDir(config)
  if (missing !== undefined) process.stderr.write(`config-store: warning: ${missing}\n`)
  const opened = await openStore(config, logger)
  await opened.connected
  try {
    return await fn(opened.store, config)
  } finally {
    await opened.close()
  }
}

export async function main(argv: string[]): Promise<number> {
  const [name = 'serve', ...args] = argv
  if (name === '--help' || name === '-h' || name === 'help') return print(HELP.trimEnd(), 0)
  const command = COMMANDS[name]
  if (command === undefined) throw new UsageError(`unknown command "${name}" (see config-store --help)`)
  if (args.includes('--help') || args.includes('-h')) return print(command.usage, 0)
  return command.run(args)
}

function exitCodeOf(err: unknown): number {
  if (err instanceof UsageError) return 2
  if (err instanceof AppError) return err.code === 'MIGRATION_IN_PROGRESS' ? 3 : err.code === 'INVALID_KEY' ? 2 : 1
  return 1
}

main(process.argv.slice(2)).then(
  (code) => {
    if (code >= 0) process.exitCode = code
  },
  (err: unknown) => {
    const line = err instanceof Error ? err.message : String(err)
    process.stderr.write(`config-store: ${err instanceof ConfigError ? `invalid configuration: ${line}` : line}\n`)
    process.exitCode = exitCodeOf(err)
  },
)
