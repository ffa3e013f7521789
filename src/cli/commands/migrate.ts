// `config-store migrate`: the legacy configs into Redis, as the dashboard's migrate button does.
import { isValidKey } from '../../../stores/layer.js'
import { UsageError } from '../../errors.js'
import { migrateToRedis } from '../../ops/migrate.js'
import type { MigrateReply } from '../../ops/schemas.js'
import { parse } from '../args.js'
import { type CliContext, cliActor, print, warn, withStore } from '../context.js'

export const usage = `config-store migrate [--dry-run] [--verify|--no-verify] [--require-redis] [--only KEY]... [--force] [--json]
  Copies the legacy PHP/file configs into Redis: the newest copy wins, newer Redis values are kept (unless --force),
  each write is a compare-and-set, and --verify (the default) reads each key back from Redis.
  --require-redis is accepted for the legacy script's sake: migrate always needs Redis.
  Exit 0 on success, 1 when a key failed, 2 on bad arguments, 3 when another migration is running.`

export async function run(args: string[], ctx: CliContext): Promise<number> {
  const { values } = parse(args, {
    'dry-run': { type: 'boolean' },
    verify: { type: 'boolean' },
    'no-verify': { type: 'boolean' },
    'require-redis': { type: 'boolean' },
    only: { type: 'string', multiple: true },
    force: { type: 'boolean' },
    json: { type: 'boolean' },
  })
  // The legacy script's --only: trimmed, lowercased, and a malformed name skipped with a warning.
  let keys: string[] | undefined
  if (values.only !== undefined) {
    keys = values.only
      .map((k) => k.trim().toLowerCase())
      .filter((k) => {
        if (!isValidKey(k)) warn(ctx, `ignoring --only ${k}: not a valid key name`)
        return isValidKey(k)
      })
    if (keys.length === 0) throw new UsageError('No valid values provided for --only')
  }
  return withStore(ctx, async (store, config) => {
    const reply = await migrateToRedis(store, {
      keys,
      dryRun: values['dry-run'],
      verify: values['no-verify'] ? false : (values.verify ?? true),
      force: values.force,
      lockTtlMs: config.MIGRATION_LOCK_TTL_MS,
      actor: cliActor(ctx),
    })
    if (values.json) return print(ctx, JSON.stringify(reply, null, 2), reply.exit_code)
    return print(ctx, [...reply.log, ...summary(reply)].join('\n'), reply.exit_code)
  })
}

/** The text-mode end of a migrate: each planned change with its diff (a dry run), then one summary line. */
function summary(reply: MigrateReply): string[] {
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
  const actions = [...counts].map(([action, n]) => `${n} ${action}`).join(', ')
  lines.push(`${reply.dry_run ? 'dry run: ' : ''}${reply.results.length} keys: ${actions || 'nothing to do'}`)
  return lines
}
